"""App-executed tools: a ``Tool`` without a callable is announced to the app, never run by the
session, and the app's one result reaches the provider exactly once — on the same connection,
across a reconnect, and after a resume.

Every test asserts from the scripted provider's own record of the tool outputs it received.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from _scripted_session import FAST, Events, all_outputs, send_all, until, user_frames

from antiphon.actors import Tool, open_session, resume_session, tool
from antiphon.errors import InvalidArgument, InvalidArgumentType, ToolError
from antiphon.events import (
    Reconnected,
    ReplyEnded,
    ToolCallFinished,
    ToolCallRequested,
)
from antiphon.journal import FileJournal, MemoryJournal
from antiphon.protocol import FunctionOutput, ToolCallStatus, ToolOutcome, ToolSpec
from antiphon.testing import Fault, ScriptedProvider, Trigger, Turn

pytestmark = pytest.mark.anyio


TRANSFER = Tool(
    spec=ToolSpec(
        name="transfer",
        description="Transfer the caller to a department.",
        parameters={"type": "object", "properties": {"to": {"type": "string"}}},
    )
)
SCRIPT = (
    Turn(text="Transferring: {output}", tool="transfer", arguments='{"to": "sales"}'),
    Turn(text="Anything else?"),
)
OUTPUT = '{"queue":"sales","position":2}'  # what the app's result becomes on the wire


def test_a_tool_without_a_callable_is_app_executed() -> None:
    assert TRANSFER.app_executed
    assert not tool(lambda city: city).app_executed


async def test_the_app_answers_its_call_and_the_provider_gets_one_output() -> None:
    provider = ScriptedProvider(commit_every=5, script=SCRIPT)
    events = Events()
    async with open_session(
        provider, tools=[TRANSFER], journal=MemoryJournal(), backoff=FAST
    ) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.run, session)
            await send_all(session, user_frames(5))
            await until(lambda: bool(events.of(ToolCallRequested)))
            (call,) = events.of(ToolCallRequested)
            assert (call.name, call.arguments) == ("transfer", '{"to": "sales"}')
            # The session ran nothing: the call waits for the app.
            pending = session.state.pending_tool(call.call_id)
            assert pending is not None
            assert pending.status is ToolCallStatus.REQUESTED
            assert not events.of(ToolCallFinished)

            with pytest.raises(InvalidArgumentType, match="outcome"):
                session.submit_tool_result(call.call_id, "x", outcome="ok")  # type: ignore[arg-type]
            with pytest.raises(InvalidArgument, match="call_id"):
                session.submit_tool_result("", "x")
            with pytest.raises(ToolError, match="no tool call 'nope'"):
                session.submit_tool_result("nope", "x")

            session.submit_tool_result(call.call_id, {"queue": "sales", "position": 2})
            with pytest.raises(ToolError, match="already has its result"):
                session.submit_tool_result(call.call_id, "again")  # recorded, maybe not sent
            await until(lambda: events.replied("Transferring:"))
            with pytest.raises(ToolError, match="already has its result"):
                session.submit_tool_result(call.call_id, "again")  # delivered
            await session.aclose()
    assert all_outputs(provider) == [(call.call_id, OUTPUT)]
    (finished,) = events.of(ToolCallFinished)
    assert (finished.call_id, finished.output, finished.outcome) == (
        call.call_id,
        OUTPUT,
        ToolOutcome.OK,
    )
    assert events.of(ReplyEnded)[-1].text == f"Transferring: {OUTPUT}"
    assert session.statistics().tools_completed == 0  # the executor ran nothing


async def test_a_call_the_session_runs_does_not_take_the_apps_result() -> None:
    release = anyio.Event()

    @tool(timeout_s=5)
    async def get_weather(city: str) -> str:
        """Weather for a city."""
        await release.wait()
        return "sunny"

    script = (Turn(text="It is {output}.", tool="get_weather", arguments='{"city": "Paris"}'),)
    provider = ScriptedProvider(commit_every=5, script=script)
    events = Events()
    async with open_session(
        provider, tools=[TRANSFER, get_weather], journal=MemoryJournal(), backoff=FAST
    ) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.run, session)
            await send_all(session, user_frames(5))
            await until(lambda: bool(events.of(ToolCallRequested)))
            (call,) = events.of(ToolCallRequested)
            with pytest.raises(ToolError, match="run by the session"):
                session.submit_tool_result(call.call_id, "rainy")
            release.set()
            await until(lambda: events.replied("It is sunny."))
            await session.aclose()
    assert all_outputs(provider) == [(call.call_id, "sunny")]


async def test_the_apps_result_is_delivered_once_across_a_reconnect() -> None:
    provider = ScriptedProvider(commit_every=5, script=SCRIPT)
    provider.fault(Fault.drop(), at=Trigger.tool_call())  # the connection dies with the call
    events = Events()
    async with open_session(
        provider, tools=[TRANSFER], journal=MemoryJournal(), backoff=FAST
    ) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.run, session)
            await send_all(session, user_frames(5))
            await until(lambda: bool(events.of(ToolCallRequested)))
            # Answered at once: while the dead connection is being replaced.
            (call,) = events.of(ToolCallRequested)
            session.submit_tool_result(call.call_id, {"queue": "sales", "position": 2})
            await until(lambda: bool(events.of(Reconnected)) and events.replied("Transferring:"))
            await session.aclose()
    assert len(provider.records) == 2
    assert all_outputs(provider) == [(call.call_id, OUTPUT)], "exactly one output"
    assert provider.records[1].tool_outputs == [(call.call_id, OUTPUT)]
    # The new connection was primed with the call, its output left to the delivery.
    assert [h["kind"] for h in provider.records[1].history] == ["user", "call"]
    assert events.of(Reconnected)[0].state_restored is True


async def test_a_resumed_session_announces_the_call_again_and_delivers_the_answer_once(
    tmp_path: Path,
) -> None:
    provider = ScriptedProvider(commit_every=5, script=SCRIPT)
    frames = user_frames(10)
    live, crashed = tmp_path / "live", tmp_path / "crashed"
    first = Events()
    async with open_session(
        provider, tools=[TRANSFER], journal=FileJournal(live), session_id="call-1", backoff=FAST
    ) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.run, session)
            await send_all(session, frames[:5])
            await until(lambda: bool(first.of(ToolCallRequested)))
            shutil.copytree(live, crashed)  # the process dies before the app answers
            await session.aclose()
    (call,) = first.of(ToolCallRequested)

    events = Events()
    async with resume_session(
        FileJournal(crashed), "call-1", provider, tools=[TRANSFER], backoff=FAST
    ) as resumed:
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.run, resumed)
            await until(lambda: bool(events.of(ToolCallRequested)))
            # Announced again (not run, not given an "unknown" outcome).
            (again,) = events.of(ToolCallRequested)
            assert (again.call_id, again.name, again.arguments) == (
                call.call_id,
                call.name,
                call.arguments,
            )
            resumed.submit_tool_result(call.call_id, {"queue": "sales", "position": 2})
            await until(lambda: events.replied("Transferring:"))
            await send_all(resumed, frames[5:])
            await until(lambda: len(provider.records[-1].committed) == 5)
            await resumed.aclose()
    assert all_outputs(provider) == [(call.call_id, OUTPUT)], "exactly one output"
    assert provider.records[-1].tool_outputs == [(call.call_id, OUTPUT)]
    reconnected = events.of(Reconnected)[0]
    assert (reconnected.cause, reconnected.state_restored) == ("resume", True)
    outputs = [i for i in resumed.state.items if isinstance(i, FunctionOutput)]
    assert [(o.id, o.output, o.outcome) for o in outputs] == [
        (call.call_id, OUTPUT, ToolOutcome.OK)
    ]
