"""A private ``redis-server`` for the tests: started once per test session on a free loopback
port, with its data in a temporary directory, and stopped at the end.

``make test`` installs the Debian package first when it is missing (``scripts/ensure-redis``);
tests that need Redis are skipped, saying why, only when no ``redis-server`` can be found.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


class RedisServer:
    """One running ``redis-server`` process.

    Attributes:
        port: Its loopback port.
        url: The URL a client connects to.
        directory: Its working directory (the AOF files).
    """

    def __init__(self, directory: Path, *extra: str) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.skip("redis-server is not installed (scripts/ensure-redis installs it)")
        self.directory = directory
        last = ""
        for _ in range(5):  # a free port can be taken between finding and binding it
            self.port = _free_port()
            self.url = f"redis://127.0.0.1:{self.port}/0"
            self.process = subprocess.Popen(
                [
                    executable,
                    "--port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--dir", str(directory),
                    "--save", "",
                    "--appendonly", "yes",
                    "--appendfsync", "everysec",
                    *extra,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            if self._wait_ready(deadline=time.monotonic() + 15):
                return
            self.process.kill()
            out, _ = self.process.communicate()
            last = out.decode(errors="replace")[-2000:]
        raise RuntimeError(f"redis-server did not start:\n{last}")

    def _wait_ready(self, *, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(64).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.02)  # polling the server's readiness, not waiting for an outcome
        return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The tests' private Redis (skips the test when redis-server is not installed)."""
    with tempfile.TemporaryDirectory(prefix="antiphon-redis-") as tmp:
        server = RedisServer(Path(tmp))
        try:
            yield server
        finally:
            server.stop()
