"""End to end: tools as an app writes them, through real sessions over real websockets against
the emulators. Typed arguments (Enum, TypedDict, dataclass), approval granted and denied across
a reconnect, a tool that is not cancellable finishing after a barge-in, a long-running tool
whose result arrives two turns later, and a tool of a real MCP server. Every test asserts
from the emulator's own record of the tool outputs it received, and counts how often each
tool really ran.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
from pathlib import Path
from typing import Any, TypedDict

import anyio
import pytest
from _helpers import open_harness
from _session_log import WEATHER
from test_gemini_e2e import SHORT_HELLO as GEMINI_HELLO
from test_gemini_e2e import barge_in_during_tool_call
from test_gemini_e2e import open_harness as open_gemini_harness

import antiphon
from antiphon.emulators import Fault, Trigger
from antiphon.emulators._model import DEFAULT_SCRIPT, Script, Turn, conversation_audio
from antiphon.emulators.openai import OpenAIRecord
from antiphon.protocol import GenerationEndReason, ToolOutcome

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def anyio_backend() -> str:
    # The websockets client and the emulators are asyncio-only.
    return "asyncio"


def outputs(records: list[OpenAIRecord]) -> list[tuple[str, str]]:
    """Every function_call_output the emulator received, over all connections."""
    return [
        (item["call_id"], item["output"])
        for rec in records
        for item in rec.items
        if item["type"] == "function_call_output"
    ]


def script_calling(name: str, arguments: dict[str, Any], follow_up: str) -> Script:
    turn = Turn(
        user_text="What's the weather in Paris?",
        tool_call=(name, json.dumps(arguments)),
        follow_up=follow_up,
    )
    return Script(utterances={**DEFAULT_SCRIPT.utterances, 1: turn})


async def completed(h: Any, count: int = 1) -> None:
    await h.wait_for(
        antiphon.ReplyEnded, lambda e: e.reason is GenerationEndReason.COMPLETED, count=count
    )


# --------------------------------------------------------------------------------- typed


class Cuisine(enum.Enum):
    ITALIAN = "italian"
    THAI = "thai"


class Party(TypedDict):
    adults: int
    children: int


@dataclasses.dataclass
class Slot:
    day: str
    hour: int


async def test_a_tool_typed_with_enum_typeddict_and_dataclass() -> None:
    received: list[tuple[Any, ...]] = []

    @antiphon.tool
    def book(cuisine: Cuisine, party: Party, slot: Slot) -> str:
        """Book a table.

        Args:
            cuisine: Which kitchen.
            party: Who comes.
            slot: When.
        """
        received.append((cuisine, party, slot))
        return f"{cuisine.value} for {party['adults'] + party['children']} on {slot.day}"

    # Models send numbers as strings now and then: converted, not refused.
    arguments = {
        "cuisine": "thai",
        "party": {"adults": "2", "children": 1},
        "slot": {"day": "Friday", "hour": 19},
    }
    pcm, _ = conversation_audio([1], sample_rate=24_000, gap_s=0.6)
    async with open_harness(
        tools=[book], script=script_calling("book", arguments, "Booked: {output}.")
    ) as h:
        await h.send(pcm)
        await completed(h)
    assert received == [(Cuisine.THAI, {"adults": 2, "children": 1}, Slot(day="Friday", hour=19))]
    (call,) = h.of(antiphon.ToolCallRequested)
    assert outputs(h.emu.records) == [(call.call_id, "thai for 3 on Friday")]
    assert h.completed()[-1].text == "Booked: thai for 3 on Friday."
    # The schema the provider got: named types inlined, descriptions kept.
    (update,) = [
        f
        for f in h.emu.records[0].frames
        if f.get("type") == "session.update" and "tools" in f.get("session", {})
    ][:1]
    (schema,) = [t["parameters"] for t in update["session"]["tools"]]
    assert "$defs" not in schema
    assert schema["properties"]["cuisine"] == {
        "description": "Which kitchen.",
        "enum": ["italian", "thai"],
    }
    assert schema["properties"]["slot"]["properties"]["hour"] == {"type": "integer"}


# --------------------------------------------------------------------------------- approval


class Transfers:
    def __init__(self) -> None:
        self.runs: list[str] = []

        @antiphon.tool(requires_approval=True, idempotent=False)
        def transfer(city: str) -> str:
            """Move money to the Paris office."""
            self.runs.append(city)
            return f"sent to {city}"

        self.tool = transfer


@pytest.mark.parametrize("decision", ["approve", "deny"])
async def test_approval_across_a_reconnect(decision: str) -> None:
    transfers = Transfers()
    pcm, _ = conversation_audio([1], sample_rate=24_000, gap_s=0.6)
    async with open_harness(
        tools=[transfers.tool],
        script=script_calling("transfer", {"city": "Paris"}, "Done: {output}."),
        faults=[(Fault.drop(), Trigger.tool_call())],
    ) as h:
        await h.send(pcm)
        asked = await h.wait_for(antiphon.ToolApprovalRequested)
        await h.wait_for(antiphon.Reconnected)
        assert transfers.runs == []
        if decision == "approve":
            h.session.approve(asked.call_id)
        else:
            h.session.deny(asked.call_id, "the user said no")
        await completed(h)
    ((call_id, output),) = outputs(h.emu.records)
    assert call_id == asked.call_id
    assert len(h.emu.records) == 2
    if decision == "approve":
        assert transfers.runs == ["Paris"]
        assert output == "sent to Paris"
        assert h.completed()[-1].text == "Done: sent to Paris."
    else:
        assert transfers.runs == []
        assert json.loads(output) == {"error": "the user said no", "outcome": "denied"}
        (denied,) = h.of(antiphon.ToolApprovalDenied)
        assert denied.reason == "the user said no"


# --------------------------------------------------------------------------------- barge-in


async def test_a_tool_that_is_not_cancellable_finishes_after_a_barge_in() -> None:
    release = anyio.Event()
    effects: list[str] = []

    @antiphon.tool(name="get_weather", cancel_on_interruption=False, timeout_s=30.0)
    async def book_and_report(city: str) -> str:
        """Book the trip, then report the weather (the booking must not be half done)."""
        await release.wait()
        effects.append(city)
        return f"{WEATHER} in {city}"

    async with open_gemini_harness(tools=[book_and_report], script=GEMINI_HELLO) as h:
        started = await barge_in_during_tool_call(h)
        assert effects == []  # still running after the barge-in was answered
        release.set()
        ended = await h.wait_for(antiphon.ToolCallFinished)
    assert effects == ["Paris"]
    assert (ended.call_id, ended.outcome) == (started.call_id, ToolOutcome.OK)
    assert len(h.of(antiphon.ToolCallFinished)) == 1
    # The provider withdrew the call: its output is recorded, never sent.
    (rec,) = h.emu.records
    assert rec.tool_responses == []


# --------------------------------------------------------------------------------- long-running


@pytest.mark.parametrize("drop", [False, True], ids=["steady", "dropped-with-the-call"])
async def test_a_long_running_tool_result_arrives_two_turns_later(drop: bool) -> None:
    release = anyio.Event()

    @antiphon.tool(name="get_weather", long_running=True, timeout_s=60.0)
    async def slow_forecast(city: str) -> str:
        """A forecast that takes minutes to compute."""
        await release.wait()
        return f"a week of sun in {city}"

    ask, _ = conversation_audio([1], sample_rate=24_000, gap_s=0.6, seed=31)
    hello, _ = conversation_audio([0], sample_rate=24_000, gap_s=0.6, seed=32)
    faults = [(Fault.drop(), Trigger.tool_call())] if drop else []
    async with open_harness(tools=[slow_forecast], faults=faults) as h:
        await h.send(ask)
        await completed(h)  # the follow-up to the "running" output
        await h.send(hello)
        await completed(h, count=2)  # a second turn, the tool still running
        release.set()
        await completed(h, count=3)  # the model answers the result
    (call,) = h.of(antiphon.ToolCallRequested)
    ((call_id, running),) = outputs(h.emu.records)
    assert call_id == call.call_id
    assert json.loads(running)["status"] == "running"
    texts = [e.text for e in h.completed()]
    assert texts[1] == DEFAULT_SCRIPT.utterances[0].reply
    assert "a week of sun in Paris" in texts[2]
    assert call.call_id in texts[2]
    assert len(h.emu.records) == (2 if drop else 1)
    # The result reached the provider once, as a user message on the live connection.
    messages = [
        part["text"]
        for rec in h.emu.records
        for item in rec.items
        if item["type"] == "message" and item.get("role") == "user"
        for part in item.get("content", [])
        if "a week of sun" in part.get("text", "")
    ]
    assert len(messages) == 1


# --------------------------------------------------------------------------------- MCP

MCP_SERVER = Path(__file__).parent.parent / "actors" / "mcp_weather_server.py"


async def test_an_mcp_tool_call() -> None:
    pytest.importorskip("mcp")
    from antiphon.mcp import Server

    server = Server(command=sys.executable, args=[str(MCP_SERVER)])
    pcm, _ = conversation_audio([1], sample_rate=24_000, gap_s=0.6)
    async with open_harness(tools=[server]) as h:
        await h.send(pcm)
        await completed(h)
    (call,) = h.of(antiphon.ToolCallRequested)
    assert call.name == "get_weather"
    assert outputs(h.emu.records) == [(call.call_id, "sunny in Paris")]
    assert h.completed()[-1].text == "The weather in Paris is sunny in Paris."
