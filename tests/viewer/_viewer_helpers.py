"""``antiphon journal serve`` in a subprocess, for the viewer's tests."""

from __future__ import annotations

import contextlib
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

DEADLINE_S = 60  # guards against a hang only; waits end as soon as their condition holds


@contextlib.contextmanager
def serving(path: Path) -> Iterator[str]:
    """Run ``antiphon journal serve PATH --port 0``; yields the page's URL once it listens."""
    command = [sys.executable, "-m", "antiphon.cli", "journal", "serve", str(path), "--port", "0"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as proc:
        stdout = proc.stdout
        assert stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in stdout], daemon=True).start()
        try:
            line = lines.get(timeout=DEADLINE_S)
            assert "serving" in line, line
            yield line.split(" at ", 1)[1].split()[0]
        finally:
            proc.terminate()
            proc.wait(timeout=DEADLINE_S)
