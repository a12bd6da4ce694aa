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
    assert len(blocks) == 3
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


def test_readme_failover_example_is_valid_python_with_real_names() -> None:
    """The failover example needs two real providers' keys, so it is compiled, not run; the
    names it imports must exist."""
    import ast

    block = _blocks()[2]
    compile(block, "<README failover example>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    import antiphon.providers

    for node in ast.walk(ast.parse(block)):
        if isinstance(node, ast.ImportFrom) and node.module == "antiphon.providers":
            for alias in node.names:
                assert hasattr(antiphon.providers, alias.name), alias.name
