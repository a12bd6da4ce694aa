"""Smoke test of ``python -m benches load``: a tiny bounded run on loopback, figures as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.e2e
def test_load_bench_smoke() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    cmd = [sys.executable, "-m", "benches", "load", "--sessions", "3", "--seconds", "1"]
    cmd += ["--deadline", "60", "--json"]
    done = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["provider"], result["sessions"], result["completed"]) == ("openai", 3, True)
    for key in ("loop_lateness_ms", "send_slip_ms"):
        assert set(result[key]) >= {"p50", "p99", "max"}
    assert result["realtime_factor"] > 0
    # Reported, not asserted: timings depend on the machine. Frames do not.
    assert result["frames"]["lost"] == 0
    assert result["frames"]["expected"] == 3 * result["chunks_per_session"]
