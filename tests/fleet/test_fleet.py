"""A fleet of two worker processes sharing one Redis journal and one emulator.

Worker A runs a session with a tool call in flight; A dies (SIGKILL) or is paused (SIGSTOP)
past its lease; worker B, on standby, finds the expired lease, claims the session, resumes it
and carries the conversation on. The emulator (in this process) says what the provider saw:
the history intact on B's connection, the tool's output delivered exactly once. A paused A
that comes back (SIGCONT) is refused on its next write and stops.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from _redis_server import RedisServer
from antiphon.emulators.openai import OpenAIEmulator
from antiphon.journal import RedisJournal
from antiphon.protocol import SessionClosed, ToolCallFinished, ToolCallRequested

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

WORKER = Path(__file__).resolve().parents[2] / "examples" / "fleet" / "worker.py"
LEASE_TTL_S = 1.0
DEADLINE_S = 60.0  # guards against a hang only; every wait below is for a condition


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the emulator's websocket server


class Worker:
    """A worker subprocess whose JSON lines are collected in a file."""

    def __init__(self, out: Path, *args: str) -> None:
        self.out = out
        self._file = out.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), *args], stdout=self._file, stderr=subprocess.STDOUT
        )

    def lines(self) -> list[dict[str, Any]]:
        found = []
        for line in self.out.read_text().splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found

    def first(self, event: str) -> dict[str, Any] | None:
        return next((e for e in self.lines() if e["event"] == event), None)

    async def wait_for(self, event: str) -> dict[str, Any]:
        with anyio.fail_after(DEADLINE_S):
            while (found := self.first(event)) is None:
                if self.process.poll() is not None:
                    pytest.fail(f"worker exited before {event!r}:\n{self.out.read_text()}")
                await anyio.sleep(0.02)
        return found

    async def wait_exit(self) -> int:
        with anyio.fail_after(DEADLINE_S):
            while (code := self.process.poll()) is None:
                await anyio.sleep(0.02)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._file.close()


@contextmanager
def fleet(tmp_path: Path, redis_url: str, emulator_url: str) -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def spawn(name: str, *args: str) -> Worker:
        common = ["--redis", redis_url, "--prefix", str(tmp_path), "--url", emulator_url]
        worker = Worker(tmp_path / f"{name}.out", *common, "--lease-ttl", str(LEASE_TTL_S), *args)
        workers.append(worker)
        return worker

    try:
        yield spawn
    finally:
        for worker in workers:
            worker.stop()


def _outputs(emu: OpenAIEmulator, call_id: str) -> list[dict[str, Any]]:
    """Every function_call_output the emulator received for ``call_id``, on any connection."""
    return [
        frame
        for record in emu.records
        for frame in record.frames
        if frame.get("type") == "conversation.item.create"
        and frame.get("item", {}).get("type") == "function_call_output"
        and frame["item"].get("call_id") == call_id
    ]


def _primed_items(record: Any) -> list[dict[str, Any]]:
    return [f["item"] for f in record.frames if f.get("type") == "conversation.item.create"]


async def _wait_records(emu: OpenAIEmulator, count: int) -> None:
    with anyio.fail_after(DEADLINE_S):
        while len(emu.records) < count:
            await anyio.sleep(0.02)


def _assert_carried_on(
    emu: OpenAIEmulator, journal: RedisJournal, session_id: str, *, idempotent: bool = True
) -> str:
    """Check what the provider saw after the take-over; returns the tool output it got."""
    events = list(journal.events(session_id))
    calls = [e for e in events if isinstance(e, ToolCallRequested)]
    assert len(calls) == 1
    call_id = calls[0].call_id
    # B's connection was primed with the history A had: the user's question and the call.
    b_items = _primed_items(emu.records[-1])
    texts = [c.get("text") for i in b_items for c in i.get("content", []) if "text" in c]
    assert "What's the weather in Paris?" in texts
    assert any(i.get("type") == "function_call" and i.get("call_id") == call_id for i in b_items)
    # The tool's output reached the provider exactly once, on B's connection.
    outputs = _outputs(emu, call_id)
    assert len(outputs) == 1, outputs
    output = str(outputs[0]["item"]["output"])
    if idempotent:
        assert "sunny and 21 degrees in Paris" in output
    finished = [e for e in events if isinstance(e, ToolCallFinished) and e.call_id == call_id]
    assert len(finished) == 1
    assert isinstance(events[-1], SessionClosed)
    return output


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "non_idempotent"])
async def test_sigkill_worker_b_resumes_the_session(
    redis_server: RedisServer, tmp_path: Path, idempotent: bool
) -> None:
    flags = [] if idempotent else ["--non-idempotent"]
    async with OpenAIEmulator() as emu:
        with fleet(tmp_path, redis_server.url, emu.url) as spawn:
            b = spawn("b", *flags, "standby")
            await b.wait_for("standby")
            a = spawn("a", *flags, "--session-id", "call-1", "--tool-delay", "60", "start")
            await a.wait_for("tool_started")  # the call is in flight
            killed_at = time.time()
            a.process.send_signal(signal.SIGKILL)
            assert await a.wait_exit() == -signal.SIGKILL
            claimed = await b.wait_for("claimed")
            audio = await b.wait_for("audio")
            assert await b.wait_exit() == 0, b.out.read_text()
            await _wait_records(emu, 2)
        kill_to_audio_ms = (audio["t"] - killed_at) * 1000
        print(
            f"\nfleet: SIGKILL -> claimed {(claimed['t'] - killed_at) * 1000:.0f} ms,"
            f" -> audio {kill_to_audio_ms:.0f} ms (lease {LEASE_TTL_S} s)"
        )
    journal = RedisJournal(redis_server.url, prefix=str(tmp_path))
    try:
        output = _assert_carried_on(emu, journal, "call-1", idempotent=idempotent)
        reconnected = b.first("reconnected")
        assert reconnected is not None
        if idempotent:  # the call may have run: it runs again, once
            assert b.first("tool_started") is not None
            assert reconnected["state_restored"] is True
        else:  # it may have taken effect: never run twice, the model hears "unknown"
            assert b.first("tool_started") is None
            assert '"unknown"' in output
            assert reconnected["state_restored"] is False
        assert kill_to_audio_ms < (LEASE_TTL_S + 10) * 1000
        assert journal.expired() == []  # B released the lease when it closed the session
    finally:
        journal.close()


async def test_sigstop_worker_a_is_fenced_off_when_it_continues(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with OpenAIEmulator() as emu:
        with fleet(tmp_path, redis_server.url, emu.url) as spawn:
            b = spawn("b", "standby")
            await b.wait_for("standby")
            # A's tool takes 1.5 leases: it finishes only after A was stopped and continued.
            a = spawn(
                "a", "--session-id", "call-2", "--tool-delay", str(LEASE_TTL_S * 1.5), "start"
            )
            await a.wait_for("tool_started")
            os.kill(a.process.pid, signal.SIGSTOP)
            await b.wait_for("claimed")  # A's lease expired while it was stopped
            await b.wait_for("audio")
            assert await b.wait_exit() == 0, b.out.read_text()
            journal = RedisJournal(redis_server.url, prefix=str(tmp_path))
            try:
                before = [r.seq for r in journal.records("call-2")]
                os.kill(a.process.pid, signal.SIGCONT)
                ended = await a.wait_for("ended")
                await a.wait_exit()
                # Not one event of A's was written after B took the session.
                assert [r.seq for r in journal.records("call-2")] == before
                assert ended["reason"] == "failed"
                # The renewal (or the append) after SIGCONT was refused with LeaseLost, which
                # closed A's writer; the session reports the journal failure it ended with.
                assert ended["error"].startswith(("LeaseLost", "JournalError")), ended
                await _wait_records(emu, 2)
                _assert_carried_on(emu, journal, "call-2")
            finally:
                journal.close()


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_watch_expired_hands_each_dead_session_over_once(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    from antiphon import watch_expired

    journal = RedisJournal(redis_server.url, prefix=str(tmp_path), lease_ttl_s=0.2)
    dead = journal.writer("dead")  # never renewed: its lease runs out
    alive = journal.writer("alive")
    done = journal.writer("done")
    done.close()  # released: not expired
    handed: list[str] = []

    async def on_expired(session_id: str) -> None:
        handed.append(session_id)
        alive.flush()  # the live session renews in the meantime

    with anyio.fail_after(DEADLINE_S):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: watch_expired(journal, on_expired, interval_s=0.02))
            while not handed:
                alive.flush()
                await anyio.sleep(0.02)
            # Seen again on later polls, but handed over only once...
            polls = 0
            while polls < 5:
                alive.flush()
                await anyio.sleep(0.02)
                polls += 1
            assert handed == ["dead"]
            # ...and once claimed, it is no longer expired.
            journal.claim("dead")
            assert "dead" not in journal.expired()
            tg.cancel_scope.cancel()
    assert dead.closed is False
    journal.close()
