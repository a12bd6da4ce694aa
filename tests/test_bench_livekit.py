"""Smoke test of ``python -m benches livekit``: both clients run, and antiphon's figures hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("livekit.plugins.openai")

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.e2e
def test_livekit_bench_runs_both_clients() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, "-m", "benches", "livekit", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert "Fault." in report["method"]
    results = {r["client"]: r for r in report["results"]}
    assert set(results) == {"plugin", "antiphon"}
    ours = results["antiphon"]
    assert ours["connections"] == 2  # the drop happened, and one reconnect followed
    assert ours["user_frames_lost"] == 0
    assert ours["tool_calls"] == 1
    assert ours["tool_calls_unanswered"] == 0
    assert ours["tool_calls_answered_twice"] == 0
    assert ours["outputs_without_their_call"] == 0
    assert ours["survived"] is True
    assert ours["tool_reply_heard"] is True
    assert ours["unrecoverable_errors"] == 0
    assert ours["reconnect_gap_ms"] is not None
