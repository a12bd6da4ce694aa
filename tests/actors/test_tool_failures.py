"""Whatever a tool does, its call gets exactly one output that the journal and the wire can
carry, and the executor keeps running: results that cannot be encoded, tools that raise
``CancelledError`` themselves, arguments nested too deep, and sync tools that hang past the
end of the process's work."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

import anyio
import pytest

from antiphon.actors import Session, open_session, tool
from antiphon.actors.tool_executor import ToolExecutor
from antiphon.events import Reconnected, ReplyEnded, SessionEvent
from antiphon.events import ToolCallFinished as AppToolCallFinished
from antiphon.journal import MemoryJournal
from antiphon.journal._record import MAX_RECORD_BYTES
from antiphon.protocol import (
    Event,
    GenerationEndReason,
    ToolCallFinished,
    ToolCallRequested,
    ToolOutcome,
    decode_event,
    encode_event,
)
from antiphon.testing import ScriptedProvider, Turn


class Journalled:
    """Records events as a journal would: each one is encoded, so a record the journal could
    not hold fails here just as it would in a session."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, events: Sequence[Event]) -> None:
        for event in events:
            data = encode_event(event)
            assert len(data) <= MAX_RECORD_BYTES
            self.events.append(decode_event(data))

    def finished(self) -> list[ToolCallFinished]:
        return [e for e in self.events if isinstance(e, ToolCallFinished)]


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr refuses")


def _self_referential() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


async def _run(tools: list[Any], calls: list[ToolCallRequested]) -> Journalled:
    record = Journalled()
    built = [tool(t) for t in tools]
    executor = ToolExecutor(tools={t.name: t for t in built}, record=record)
    async with anyio.create_task_group() as tg:
        await tg.start(executor.run)
        for call in calls:
            await executor.send(call)
        with anyio.fail_after(30):
            while len(record.finished()) < len(calls):
                await anyio.sleep(0.005)
        # The executor is still alive: a later call still runs.
        await executor.send(ToolCallRequested(call_id="after", name=built[0].name))
        with anyio.fail_after(30):
            while len(record.finished()) < len(calls) + 1:
                await anyio.sleep(0.005)
        tg.cancel_scope.cancel()
    return record


def _by_id(record: Journalled) -> dict[str, ToolCallFinished]:
    finished = record.finished()
    by_id = {f.call_id: f for f in finished}
    assert len(by_id) == len(finished), "exactly one output per call"
    return by_id


@pytest.mark.anyio
async def test_results_that_cannot_be_encoded_are_error_outputs_that_say_why() -> None:
    def recursive() -> object:
        return _self_referential()

    def bad_repr() -> object:
        return BadRepr()

    def surrogate() -> str:
        return "file-\udcff.txt"  # what os.listdir returns for a non-UTF-8 name

    def nested_surrogate() -> dict[str, str]:
        return {"name": "\ud800"}

    def huge() -> str:
        return "x" * (MAX_RECORD_BYTES + 1)

    async def exception_with_bad_text() -> None:
        raise ValueError("bad \udcff name")

    record = await _run(
        [recursive, bad_repr, surrogate, nested_surrogate, huge, exception_with_bad_text],
        [
            ToolCallRequested(call_id="recursive", name="recursive"),
            ToolCallRequested(call_id="bad_repr", name="bad_repr"),
            ToolCallRequested(call_id="surrogate", name="surrogate"),
            ToolCallRequested(call_id="nested", name="nested_surrogate"),
            ToolCallRequested(call_id="huge", name="huge"),
            ToolCallRequested(call_id="exc", name="exception_with_bad_text"),
        ],
    )
    by_id = _by_id(record)
    for call_id in ("recursive", "bad_repr", "surrogate", "nested", "huge", "exc"):
        finished = by_id[call_id]
        assert finished.outcome is ToolOutcome.ERROR, call_id
        body = json.loads(finished.output)
        assert body["outcome"] == "error"
        assert body["error"], call_id
    assert "deeply" in json.loads(by_id["recursive"].output)["error"]
    assert "surrogate" in json.loads(by_id["surrogate"].output)["error"]
    assert "surrogate" in json.loads(by_id["nested"].output)["error"]
    assert "too large" in json.loads(by_id["huge"].output)["error"]
    assert "ValueError" in json.loads(by_id["exc"].output)["error"]


@pytest.mark.anyio
async def test_a_tool_raising_cancelled_error_itself_gets_an_error_output() -> None:
    async def cancels_itself() -> None:
        raise asyncio.CancelledError("the tool gave up")

    def cancels_in_thread() -> None:
        raise asyncio.CancelledError

    record = await _run(
        [cancels_itself, cancels_in_thread],
        [
            ToolCallRequested(call_id="a", name="cancels_itself"),
            ToolCallRequested(call_id="b", name="cancels_in_thread"),
        ],
    )
    by_id = _by_id(record)
    for call_id in ("a", "b"):
        assert by_id[call_id].outcome is ToolOutcome.ERROR
        assert "CancelledError" in json.loads(by_id[call_id].output)["error"]


@pytest.mark.anyio
async def test_arguments_nested_too_deep_are_an_error_output() -> None:
    def takes_anything(value: Any = None) -> str:
        return "ran"

    deep = '{"value": ' + "[" * 10_000 + "]" * 10_000 + "}"
    record = await _run(
        [takes_anything], [ToolCallRequested(call_id="deep", name="takes_anything", arguments=deep)]
    )
    finished = _by_id(record)["deep"]
    assert finished.outcome is ToolOutcome.ERROR
    assert "deeply" in json.loads(finished.output)["error"]


_HUNG_TOOL_SCRIPT = textwrap.dedent(
    """
    import threading, anyio
    from antiphon.actors import tool
    from antiphon.actors.tool_executor import ToolExecutor
    from antiphon.protocol import ToolCallFinished, ToolCallRequested

    def hangs() -> str:
        threading.Event().wait()  # never returns
        return "never"

    async def main() -> None:
        finished = []
        record = lambda events: finished.extend(
            e for e in events if isinstance(e, ToolCallFinished)
        )
        executor = ToolExecutor(tools={"hangs": tool(timeout_s=0.05)(hangs)}, record=record)
        async with anyio.create_task_group() as tg:
            await tg.start(executor.run)
            await executor.send(ToolCallRequested(call_id="c", name="hangs"))
            while not finished:
                await anyio.sleep(0.005)
            tg.cancel_scope.cancel()
        print(finished[0].outcome.value, flush=True)

    anyio.run(main, backend=BACKEND)
    """
)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_hung_sync_tool_does_not_keep_the_process_alive(backend: str) -> None:
    script = _HUNG_TOOL_SCRIPT.replace("BACKEND", repr(backend))
    # The deadline only guards against the hang this test is about.
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "timeout"


@pytest.mark.anyio
async def test_in_a_session_nothing_restarts_and_each_call_is_answered_once() -> None:
    def listing() -> list[str]:
        return ["report-\udcff.txt"]  # a non-UTF-8 file name, as os.listdir returns it

    async def gives_up() -> None:
        raise asyncio.CancelledError

    def anything(value: Any = None) -> object:
        return _self_referential()

    deep = '{"value": ' + "[" * 10_000 + "]" * 10_000 + "}"
    script = (
        Turn(text="A: {output}", tool="listing", arguments="{}"),
        Turn(text="B: {output}", tool="gives_up", arguments="{}"),
        Turn(text="C: {output}", tool="anything", arguments=deep),
        Turn(text="D: {output}", tool="anything", arguments="{}"),
    )
    provider = ScriptedProvider(commit_every=5, script=script)
    events: list[SessionEvent] = []
    frame = b"\x10\x00" * 320

    def replies() -> int:
        return sum(
            isinstance(e, ReplyEnded) and e.reason is GenerationEndReason.COMPLETED for e in events
        )

    async def read(session: Session) -> None:
        async for event in session.events():
            events.append(event)

    async with open_session(
        provider, tools=[listing, gives_up, anything], journal=MemoryJournal()
    ) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(read, session)
            for turn in range(len(script)):
                for _ in range(5):
                    await session.send_audio(frame, sample_rate=16_000)
                with anyio.fail_after(30):
                    while replies() < turn + 1:
                        await anyio.sleep(0.005)
            stats = session.statistics()
            await session.aclose()
    assert not [e for e in events if isinstance(e, Reconnected)]
    assert stats.restarts == {} or not any(stats.restarts.values())
    finished = [e for e in events if isinstance(e, AppToolCallFinished)]
    assert [e.outcome for e in finished] == [ToolOutcome.ERROR] * 4
    outputs = [o for r in provider.records for o in r.tool_outputs]
    assert sorted(c for c, _ in outputs) == sorted(e.call_id for e in finished)
    assert len(provider.records) == 1, "one connection: nothing restarted"
