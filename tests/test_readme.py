"""The README's library example runs as written (against the in-process scripted provider)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _run(block: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, timeout=60, check=False
    )


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def test_readme_python_example_runs() -> None:
    blocks = _blocks()
    assert len(blocks) == 2
    result = _run(blocks[0])
    assert result.returncode == 0, result.stderr
    assert "reconnected: closed:1006 state restored: False" in result.stdout
    assert "assistant: Goodbye!" in result.stdout
    assert "'frames_evicted': 0" in result.stdout


def test_readme_tools_example_runs() -> None:
    result = _run(_blocks()[1])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "approve book",
        "assistant: Booked: thai for 2, Friday at 19h",
    ]
