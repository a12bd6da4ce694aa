"""MCP servers as tool sources: a real MCP server (a subprocess speaking stdio) lists its tools
into a session, which calls them with the same guarantees as local tools: one output per
call, a timeout, an error output when the server reports a failure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import anyio.lowlevel
import numpy as np
import pytest

pytest.importorskip("mcp")

from antiphon import mcp
from antiphon.actors import Backoff, open_session
from antiphon.errors import ToolError
from antiphon.events import ReplyEnded, SessionEvent, ToolCallFinished
from antiphon.journal import MemoryJournal
from antiphon.protocol import GenerationEndReason, ToolOutcome
from antiphon.testing import ScriptedProvider, Turn

pytestmark = pytest.mark.anyio

SERVER = Path(__file__).with_name("mcp_weather_server.py")
FRAME_BYTES = 640  # 20 ms at 16 kHz, the scripted provider's input format
FAST = Backoff(base_s=0.01, max_s=0.05)


@pytest.fixture
def anyio_backend() -> str:
    # The MCP client's stdio transport runs on asyncio here (its process API is anyio's, but
    # one backend is enough for the subprocess round trip).
    return "asyncio"


def weather_server(**options: object) -> mcp.Server:
    return mcp.Server(command=sys.executable, args=[str(SERVER)], **options)  # type: ignore[arg-type]


async def test_the_servers_tools_are_listed_with_their_hints() -> None:
    async with weather_server(prefix="wx_", include={"get_weather", "slow"}).open_tools() as tools:
        by_name = {t.name: t for t in tools}
    assert sorted(by_name) == ["wx_get_weather", "wx_slow"]
    weather = by_name["wx_get_weather"].spec
    assert weather.description == "Current weather for a city."
    assert weather.parameters["properties"]["city"]["type"] == "string"
    assert weather.idempotent  # the server says it is read-only
    assert not by_name["wx_slow"].spec.idempotent  # no hint: not re-run after a crash


async def test_a_server_that_cannot_start_is_a_tool_error(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="could not be started"):
        async with mcp.Server(command=str(tmp_path / "no-such-server")).open_tools():
            pass


async def test_a_session_whose_server_cannot_start_ends_with_the_reason(tmp_path: Path) -> None:
    journal = MemoryJournal()
    broken = mcp.Server(command=str(tmp_path / "no-such-server"))
    with pytest.raises(ToolError, match="could not be started"):
        async with open_session(
            ScriptedProvider(), tools=[broken], journal=journal, session_id="s1"
        ):
            pass
    state = journal.replay("s1")
    assert state.closed


async def test_a_session_calls_the_servers_tools_each_once() -> None:
    script = (
        Turn(text="It is {output}.", tool="get_weather", arguments='{"city": "Paris"}'),
        Turn(text="Broken: {output}", tool="broken", arguments="{}"),
        Turn(text="Slow: {output}", tool="slow", arguments='{"seconds": 60}'),
    )
    provider = ScriptedProvider(commit_every=5, script=script)
    events: list[SessionEvent] = []
    rng = np.random.default_rng(3)
    frames = [
        rng.integers(-3000, 3000, FRAME_BYTES // 2, dtype=np.int16).tobytes() for _ in range(15)
    ]

    def replies() -> list[str]:
        return [
            e.text
            for e in events
            if isinstance(e, ReplyEnded) and e.reason is GenerationEndReason.COMPLETED
        ]

    async def read(session: object) -> None:
        async for event in session.events():  # type: ignore[attr-defined]
            events.append(event)

    async with open_session(
        provider, tools=[weather_server(timeout_s=3.0)], journal=MemoryJournal(), backoff=FAST
    ) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(read, session)
            for turn in range(3):
                for frame in frames[turn * 5 : turn * 5 + 5]:
                    await session.send_audio(frame, sample_rate=16_000)
                    await anyio.lowlevel.checkpoint()
                with anyio.fail_after(30):
                    while len(replies()) < turn + 1:
                        await anyio.sleep(0.005)
            await session.aclose()
    finished = {e.name: e for e in events if isinstance(e, ToolCallFinished)}
    assert len([e for e in events if isinstance(e, ToolCallFinished)]) == 3
    assert (finished["get_weather"].outcome, finished["get_weather"].output) == (
        ToolOutcome.OK,
        "sunny in Paris",
    )
    assert finished["slow"].outcome is ToolOutcome.TIMEOUT
    assert finished["broken"].outcome is ToolOutcome.ERROR
    assert "Error executing tool broken" in json.loads(finished["broken"].output)["error"]
    outputs = [o for r in provider.records for o in r.tool_outputs]
    assert sorted(call_id for call_id, _ in outputs) == sorted(
        e.call_id for e in finished.values()
    ), "exactly one output per call at the provider"
    assert replies()[0] == "It is sunny in Paris."
