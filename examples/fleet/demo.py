"""Two workers, one Redis, one emulator: worker A dies mid tool call, worker B carries on.

Run from the repository root (needs ``redis-server`` on PATH: ``scripts/ensure-redis``)::

    .venv/bin/python examples/fleet/demo.py

It starts a private ``redis-server`` on a free loopback port and the OpenAI emulator, then
worker B on standby and worker A with a session whose tool call takes a long time. While the
call is in flight, A is killed (SIGKILL). B finds A's expired lease, claims the session,
resumes it (the tool is idempotent, so it runs again, once) and the model's answer plays. The
demo prints each worker's steps, the time from the kill to B's first audio, and what the
journal holds.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LEASE_TTL_S = 1.0
DEADLINE_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_line(path: Path, event: str) -> dict[str, Any]:
    """The first JSON line of ``event`` a worker printed (waits for it)."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        for line in path.read_text().splitlines():
            if line.startswith("{") and json.loads(line)["event"] == event:
                found: dict[str, Any] = json.loads(line)
                return found
        time.sleep(0.02)
    raise SystemExit(f"no {event!r} from {path.name}:\n{path.read_text()}")


def main() -> None:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not on PATH (scripts/ensure-redis installs it)")
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="antiphon-fleet-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        redis_url = f"redis://127.0.0.1:{port}/0"
        try:
            procs.append(
                subprocess.Popen(
                    [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp_name,
                     "--save", "", "--appendonly", "yes"],
                    stdout=subprocess.DEVNULL,
                )
            )  # fmt: skip
            emulator = subprocess.Popen(
                [sys.executable, "-m", "antiphon.emulators", "openai", "--port", "0"],
                stdout=subprocess.PIPE,
            )
            procs.append(emulator)
            assert emulator.stdout is not None
            url = json.loads(emulator.stdout.readline())["url"]
            common = ["--redis", redis_url, "--url", url, "--lease-ttl", str(LEASE_TTL_S)]
            outs = {name: tmp / f"{name}.out" for name in ("a", "b")}

            def worker(name: str, *args: str) -> subprocess.Popen[bytes]:
                out = outs[name].open("wb")
                proc = subprocess.Popen(
                    [sys.executable, str(HERE / "worker.py"), *common, *args], stdout=out
                )
                procs.append(proc)
                return proc

            worker("b", "standby")
            wait_line(outs["b"], "standby")
            a = worker("a", "--session-id", "call-1", "--tool-delay", "60", "start")
            wait_line(outs["a"], "tool_started")
            killed_at = time.time()
            a.send_signal(signal.SIGKILL)
            a.wait()
            claimed = wait_line(outs["b"], "claimed")
            audio = wait_line(outs["b"], "audio")
            wait_line(outs["b"], "exit")
            for name, out in outs.items():
                print(f"--- worker {name}")
                print(out.read_text().rstrip())
            print("---")
            print(f"A killed (SIGKILL) with a tool call in flight; lease {LEASE_TTL_S} s")
            print(f"B claimed the session after {(claimed['t'] - killed_at) * 1000:.0f} ms")
            print(f"kill to audio: {(audio['t'] - killed_at) * 1000:.0f} ms")
            summarize(redis_url)
        finally:
            for proc in reversed(procs):
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(timeout=10)


def summarize(redis_url: str) -> None:
    from antiphon.journal import RedisJournal
    from antiphon.protocol import ToolCallFinished, ToolCallRequested, ToolResultDelivered

    journal = RedisJournal(redis_url, prefix="fleet")
    try:
        events = list(journal.events("call-1"))
        for kind in (ToolCallRequested, ToolCallFinished, ToolResultDelivered):
            count = sum(isinstance(e, kind) for e in events)
            print(f"journal: {kind.__name__} x{count}")
        print(f"journal: {len(events)} events, last {type(events[-1]).__name__}")
    finally:
        journal.close()


if __name__ == "__main__":
    main()
