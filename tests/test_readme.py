"""The README's library example runs as written (against the in-process scripted provider)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert len(blocks) == 1
    result = subprocess.run(
        [sys.executable, "-c", blocks[0]], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "reconnected: closed:1006 state restored: False" in result.stdout
    assert "assistant: Goodbye!" in result.stdout
    assert "'frames_evicted': 0" in result.stdout
