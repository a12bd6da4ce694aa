"""Per-tool call policies: approval by the app (journalled, across a reconnect and a resume,
never run twice) and the interruption policy. Every test asserts from the scripted provider's
own record of the tool outputs it received, and counts how often the tool really ran."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from _scripted_session import FAST, Events, all_outputs, send_all, until, user_frames

from antiphon.actors import Progress, open_session, resume_session, tool
from antiphon.actors.tool_executor import ToolExecutor
from antiphon.errors import ToolError
from antiphon.events import (
    Reconnected,
    ToolApprovalDenied,
    ToolApprovalGranted,
    ToolApprovalRequested,
    ToolCallFinished,
)
from antiphon.journal import FileJournal, MemoryJournal
from antiphon.protocol import (
    Event,
    ToolApproval,
    ToolCallProgress,
    ToolCallRequested,
    ToolCallStarted,
    ToolOutcome,
)
from antiphon.testing import Fault, ScriptedProvider, Trigger, Turn

pytestmark = pytest.mark.anyio

SCRIPT = (
    Turn(text="Refund: {output}", tool="refund", arguments='{"order": "A-17"}'),
    Turn(text="Anything else?"),
)


class Refunds:
    """A tool with an effect, that counts how often it really ran."""

    def __init__(self, **options: Any) -> None:
        self.runs: list[str] = []

        @tool(requires_approval=True, idempotent=False, **options)
        async def refund(order: str) -> str:
            """Refund an order."""
            self.runs.append(order)
            return f"refunded {order}"

        self.tool = refund


async def test_an_approved_call_runs_once_across_a_reconnect() -> None:
    refunds = Refunds()
    provider = ScriptedProvider(commit_every=5, script=SCRIPT)
    provider.fault(Fault.drop(), at=Trigger.tool_call())  # the connection dies with the call
    events = Events()
    async with open_session(
        provider, tools=[refunds.tool], journal=MemoryJournal(), backoff=FAST
    ) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.run, session)
            await send_all(session, user_frames(5))
            await until(lambda: bool(events.of(ToolApprovalRequested)))
            (asked,) = events.of(ToolApprovalRequested)
            assert (asked.name, asked.arguments) == ("refund", '{"order": "A-17"}')
            await until(lambda: bool(events.of(Reconnected)))
            assert refunds.runs == [], "not run before the app decides"
            pending = session.state.pending_tool(asked.call_id)
            assert pending is not None
            assert pending.approval is ToolApproval.PENDING
            with pytest.raises(ToolError, match="no tool call 'nope'"):
                session.approve("nope")
            session.approve(asked.call_id)
            with pytest.raises(ToolError, match="already granted"):
                session.approve(asked.call_id)
            await until(lambda: events.replied("Refund:"))
            await session.aclose()
    assert refunds.runs == ["A-17"]
    assert all_outputs(provider) == [(asked.call_id, "refunded A-17")], "exactly one output"
    assert [type(e) for e in events.events if isinstance(e, ToolApprovalGranted)] == [
        ToolApprovalGranted
    ]


async def test_a_denied_call_never_runs_and_the_model_is_told_why() -> None:
    refunds = Refunds()
    provider = ScriptedProvider(commit_every=5, script=SCRIPT)
    provider.fault(Fault.drop(), at=Trigger.tool_call())
    events = Events()
    async with open_session(
        provider, tools=[refunds.tool], journal=MemoryJournal(), backoff=FAST
    ) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.run, session)
            await send_all(session, user_frames(5))
            await until(lambda: bool(events.of(ToolApprovalRequested)))
            (asked,) = events.of(ToolApprovalRequested)
            await until(lambda: bool(events.of(Reconnected)))
            session.deny(asked.call_id, "the caller is not the account holder")
            with pytest.raises(ToolError, match="waiting for approval"):
                session.approve(asked.call_id)
            await until(lambda: events.replied("Refund:"))
            await session.aclose()
    assert refunds.runs == []
    ((call_id, output),) = all_outputs(provider)
    assert call_id == asked.call_id
    assert json.loads(output) == {
        "error": "the caller is not the account holder",
        "outcome": "denied",
    }
    (denied,) = events.of(ToolApprovalDenied)
    assert denied.reason == "the caller is not the account holder"
    (finished,) = events.of(ToolCallFinished)
    assert finished.outcome is ToolOutcome.ERROR


async def test_an_approval_pending_at_a_crash_is_still_pending_after_resume(
    tmp_path: Path,
) -> None:
    refunds = Refunds()
    provider = ScriptedProvider(commit_every=5, script=SCRIPT)
    live, crashed = tmp_path / "live", tmp_path / "crashed"
    first = Events()
    async with open_session(
        provider,
        tools=[refunds.tool],
        journal=FileJournal(live),
        session_id="refund-1",
        backoff=FAST,
    ) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.run, session)
            await send_all(session, user_frames(5))
            await until(lambda: bool(first.of(ToolApprovalRequested)))
            shutil.copytree(live, crashed)  # the process dies before the app decides
            await session.aclose()
    (asked,) = first.of(ToolApprovalRequested)

    events = Events()
    async with resume_session(
        FileJournal(crashed), "refund-1", provider, tools=[refunds.tool], backoff=FAST
    ) as resumed:
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.run, resumed)
            await until(lambda: bool(events.of(ToolApprovalRequested)))
            (again,) = events.of(ToolApprovalRequested)
            assert again.call_id == asked.call_id
            assert refunds.runs == []
            await until(lambda: resumed._executor.awaiting_approval(asked.call_id))
            resumed.approve(asked.call_id)
            await until(lambda: events.replied("Refund:"))
            await resumed.aclose()
    assert refunds.runs == ["A-17"], "run once, after the approval"
    assert all_outputs(provider) == [(asked.call_id, "refunded A-17")]


async def test_an_approval_that_never_comes_times_out_as_the_calls_one_output() -> None:
    refunds = Refunds(approval_timeout_s=0.05)
    provider = ScriptedProvider(commit_every=5, script=SCRIPT)
    events = Events()
    async with open_session(
        provider, tools=[refunds.tool], journal=MemoryJournal(), backoff=FAST
    ) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.run, session)
            await send_all(session, user_frames(5))
            await until(lambda: events.replied("Refund:"))
            (asked,) = events.of(ToolApprovalRequested)
            with pytest.raises(ToolError, match="waiting for approval"):
                session.approve(asked.call_id)
            await session.aclose()
    assert refunds.runs == []
    ((_, output),) = all_outputs(provider)
    assert json.loads(output)["outcome"] == "timeout"
    assert events.of(ToolCallFinished)[0].outcome is ToolOutcome.TIMEOUT


# --- interruption policy ------------------------------------------------------------------


class Recorded:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, events: Sequence[Event]) -> None:
        self.events.extend(events)

    def finished(self) -> list[ToolCallFinished]:
        return [e for e in self.events if isinstance(e, ToolCallFinished)]


async def test_a_tool_that_is_not_cancellable_finishes_after_an_interruption() -> None:
    release = anyio.Event()
    effects: list[str] = []

    @tool(cancel_on_interruption=False)
    async def book(slot: str) -> str:
        await release.wait()
        effects.append(slot)
        return f"booked {slot}"

    @tool
    async def lookup(q: str) -> str:
        await anyio.sleep_forever()
        return q

    record = Recorded()
    executor = ToolExecutor(tools={"book": book, "lookup": lookup}, record=record)
    async with anyio.create_task_group() as tg:
        await tg.start(executor.run)
        await executor.send(ToolCallRequested(call_id="b", name="book", arguments='{"slot": "9"}'))
        await executor.send(ToolCallRequested(call_id="l", name="lookup", arguments='{"q": "x"}'))
        await until(lambda: sum(isinstance(e, ToolCallStarted) for e in record.events) == 2)
        executor.cancel(["b", "l"], "interrupted")
        await until(lambda: len(record.finished()) == 1)
        assert record.finished()[0].outcome is ToolOutcome.CANCELLED  # the lookup
        release.set()
        await until(lambda: len(record.finished()) == 2)
        tg.cancel_scope.cancel()
    by_id = {f.call_id: f for f in record.finished()}
    assert len(by_id) == 2, "exactly one output per call"
    assert (by_id["b"].outcome, by_id["b"].output) == (ToolOutcome.OK, "booked 9")
    assert by_id["l"].outcome is ToolOutcome.CANCELLED
    assert effects == ["9"]


# --- progress -----------------------------------------------------------------------------


async def test_a_tool_reports_progress_from_a_coroutine_and_from_a_thread() -> None:
    @tool
    async def index(folder: str, progress: Progress) -> str:
        progress("listing", 0.0)
        progress(f"indexed {folder}", 1.0)
        return "done"

    @tool
    def scan(progress: Progress) -> str:
        progress("half", 0.5)  # from the worker thread
        progress("weird", 7)  # clamped to [0, 1]
        return "done"

    assert "progress" not in index.spec.parameters["properties"], "the model never sees it"
    with pytest.raises(ToolError, match="unknown field `progress`"):
        index.parse_arguments('{"folder": "a", "progress": 1}')
    record = Recorded()
    executor = ToolExecutor(tools={"index": index, "scan": scan}, record=record)
    async with anyio.create_task_group() as tg:
        await tg.start(executor.run)
        await executor.send(
            ToolCallRequested(call_id="i", name="index", arguments='{"folder": "docs"}')
        )
        await executor.send(ToolCallRequested(call_id="s", name="scan"))
        await until(lambda: len(record.finished()) == 2)
        tg.cancel_scope.cancel()
    reports = [
        (e.call_id, e.message, e.fraction) for e in record.events if isinstance(e, ToolCallProgress)
    ]
    assert [r for r in reports if r[0] == "i"] == [
        ("i", "listing", 0.0),
        ("i", "indexed docs", 1.0),
    ]
    assert [r for r in reports if r[0] == "s"] == [("s", "half", 0.5), ("s", "weird", 1.0)]
    # Each report comes after the call started and before its one output.
    kinds = [type(e).__name__ for e in record.events if getattr(e, "call_id", "") == "i"]
    assert kinds == ["ToolCallStarted", "ToolCallProgress", "ToolCallProgress", "ToolCallFinished"]
