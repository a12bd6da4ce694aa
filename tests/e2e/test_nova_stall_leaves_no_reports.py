"""A Nova session whose stream stalls leaves nothing for asyncio or the interpreter to report.

The stall makes the session give up on a silent stream while the SDK is waiting for the next
body chunk; awscrt's stream completion then resolved that (cancelled) chunk future and raised
``InvalidStateError`` into the void, printed as "Exception ignored in ...". Reports come from
garbage collection and interpreter exit, so the demo runs in its own processes (several:
whether a run shows it depends on timing).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("aws_sdk_bedrock_runtime")

RUNS = 3
REPORTS = ("Exception ignored", "never retrieved", "Traceback", "was destroyed but it is pending")


def test_stalled_nova_streams_print_no_tracebacks() -> None:
    argv = [sys.executable, "-m", "antiphon.cli", "demo", "--provider", "nova"]
    argv += ["--fault", "stall", "--speed", "0", "--quiet", "--json"]
    runs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(RUNS)
    ]
    for proc in runs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert json.loads(out)["user_frames_lost"] == 0
        assert not [r for r in REPORTS if r in err], err
