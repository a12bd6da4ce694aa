"""Provider failover end to end: one call on two providers, each behind its real client and
its emulator. The first provider fails for good mid-call; the call finishes on the second,
which must have received the conversation so far, each tool output exactly once, and every
user frame (matched byte for byte at the session's rate, or against the runtime's own
resampling where the second provider takes another rate: ``account_frames``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from antiphon.actors import Backoff, open_session
from antiphon.cli.demo import open_target, run_demo
from antiphon.cli.demo._faults import Scheduled
from antiphon.cli.demo._target import DemoReport, DemoTarget, play
from antiphon.cli.demo.failover import open_failover_target
from antiphon.emulators import Fault, Trigger
from antiphon.emulators.gemini import QUOTA_EXCEEDED, GeminiRecord
from antiphon.emulators.nova import NovaRecord
from antiphon.emulators.openai import OpenAIRecord
from antiphon.journal import FileJournal, MemoryJournal
from antiphon.protocol import ProviderSwitched

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

HELLO = ("Hello there.", "Hi! How can I help you today?")
FAST = Backoff(base_s=0.01, max_s=0.05)


@pytest.fixture
def anyio_backend() -> str:
    # google-genai, the AWS SDK and the emulators are asyncio-only.
    return "asyncio"


async def call(
    first: str, second: str, faults: list[Scheduled], journal: Path
) -> tuple[DemoReport, DemoTarget]:
    """The demo's conversation (hello; the weather, with a tool call; goodbye) on ``first``
    failing with ``faults``, then ``second``, at real-time pace (as fast as possible, the
    user's goodbye would interrupt the weather reply and the tool call with it)."""
    seen: list[DemoTarget] = []

    @asynccontextmanager
    async def keep(cm: AbstractAsyncContextManager[DemoTarget]) -> AsyncIterator[DemoTarget]:
        async with cm as target:
            seen.append(target)
            yield target

    target = open_failover_target(
        open_target(first, "none"), open_target(second, "none"), faults=faults
    )
    report = await play(
        keep(target), provider="failover", fault="x", journal_dir=journal, speed=1.0, progress=None
    )
    return report, seen[0]


def finished(report: DemoReport) -> None:
    """The call ran to its end: three turns, the tool answered once, the goodbye said."""
    assert report.turns == 3
    assert report.tool_calls == 1
    assert report.transcript[-1] == {"role": "AssistantMessage", "text": "Goodbye!"}
    assert report.user_frames_lost == 0
    assert report.user_frames_duplicated == 0


def switches(journal: Path, session_id: str) -> list[tuple[str, str, str]]:
    return [
        (r.event.previous_provider, r.event.provider, r.event.cause)
        for r in FileJournal(journal).records(session_id)
        if isinstance(r.event, ProviderSwitched)
    ]


def openai_items(record: OpenAIRecord, kind: str) -> list[dict[str, Any]]:
    return [
        f["item"]
        for f in record.frames
        if f.get("type") == "conversation.item.create" and f["item"].get("type") == kind
    ]


async def test_the_failover_demo_moves_from_openai_to_gemini(tmp_path: Path) -> None:
    """``antiphon demo --provider failover``: OpenAI drops as the user starts the second
    utterance and then refuses the key; the call finishes on Gemini."""
    report = await run_demo(
        provider="failover", fault="drop", speed=0, progress=None, journal_dir=tmp_path
    )
    finished(report)
    assert report.providers == ["openai", "gemini"]
    assert report.reconnect_causes == ["invalid_api_key"]
    assert switches(tmp_path, report.session_id) == [("openai", "gemini", "invalid_api_key")]


async def test_openai_to_gemini_after_a_401_mid_call(tmp_path: Path) -> None:
    """OpenAI drops as the user starts the second utterance and then refuses the key (401):
    Gemini gets the first turn as history, answers the rest, and its tool call's output."""
    faults = [
        (Fault.drop(), Trigger.user_speech(2), None),
        (Fault.refuse(status=401), Trigger.connect(2), None),
    ]
    report, target = await call("openai", "gemini", faults, tmp_path)
    finished(report)
    assert report.providers == ["openai", "gemini"]
    assert report.reconnect_causes == ["invalid_api_key"]
    (openai,) = target.emulator.records  # one connection; every later one was refused
    gemini: list[GeminiRecord] = list(target.others[0].records)
    assert len(gemini) == 1
    turns = [
        (t.get("role"), " ".join(p.get("text", "") for p in t.get("parts", [])).strip())
        for t in gemini[0].client_turns
    ]
    assert turns == [("user", HELLO[0]), ("model", HELLO[1])]
    # The weather call was Gemini's: its output went to Gemini once, and nothing to OpenAI.
    assert len(gemini[0].tool_responses) == 1
    assert openai_items(openai, "function_call_output") == []
    # OpenAI's resumption state did not leak: Gemini's setup asked for a fresh session.
    assert gemini[0].resume_handle in (None, "")


async def test_gemini_to_nova_after_a_quota_close(tmp_path: Path) -> None:
    """Gemini closes the connection over quota after the first turn (1011, "You exceeded your
    current quota"): the call moves to Nova with the first turn as history."""
    faults = [(Fault.close(1011, QUOTA_EXCEEDED), Trigger.turn_end(), None)]
    report, target = await call("gemini", "nova", faults, tmp_path)
    finished(report)
    assert report.providers == ["gemini", "nova"]
    (cause,) = report.reconnect_causes
    assert cause.startswith("closed:1011")
    ((_, to, _),) = switches(tmp_path, report.session_id)
    assert to == "nova"
    nova: list[NovaRecord] = list(target.others[0].records)
    assert len(nova) == 1
    assert [(role.upper(), text.strip()) for role, text in nova[0].history] == [
        ("USER", HELLO[0]),
        ("ASSISTANT", HELLO[1]),
    ]
    assert len(nova[0].tool_results) == 1
    assert len(target.emulator.records) == 1  # Gemini was not tried again


async def test_nova_to_openai_with_a_tool_call_in_flight(tmp_path: Path) -> None:
    """Nova asks for the weather tool and then throttles the stream (throttlingException)
    before it has the output: OpenAI gets the call in its history and the output exactly once;
    Nova never gets it."""
    faults = [(Fault.error("throttlingException"), Trigger.tool_call(), None)]
    report, target = await call("nova", "openai", faults, tmp_path)
    finished(report)
    assert report.providers == ["nova", "openai"]
    ((_, to, cause),) = switches(tmp_path, report.session_id)
    assert to == "openai"
    assert "throttling" in cause.lower()
    (nova,) = target.emulator.records
    assert nova.tool_calls
    assert not nova.tool_results
    ((call_id, _, _),) = nova.tool_calls
    openai: list[OpenAIRecord] = list(target.others[0].records)
    calls = [i for r in openai for i in openai_items(r, "function_call")]
    outputs = [i for r in openai for i in openai_items(r, "function_call_output")]
    assert [c["call_id"] for c in calls] == [call_id]
    assert [o["call_id"] for o in outputs] == [call_id]
    assert "sunny" in outputs[0]["output"]
    user_texts = [
        part.get("text")
        for r in openai
        for i in openai_items(r, "message")
        if i.get("role") == "user"
        for part in i.get("content", [])
    ]
    assert HELLO[0] in user_texts


async def test_twenty_sessions_skip_a_provider_whose_breaker_opened() -> None:
    """The primary (a real websocket server, dialled by the real client) accepts connections
    and never answers the session setup. The first session waits out its connect deadline,
    moves on, and opens the breaker; the 20 sessions started after that never dial the
    primary, so none of them waits for that deadline."""
    import msgspec

    from antiphon.emulators.openai import OpenAIEmulator
    from antiphon.failover import BreakerPolicy, CircuitBreakers, Failover, FailoverPolicy
    from antiphon.providers import OpenAIRealtime

    breakers = CircuitBreakers(BreakerPolicy(cooldown_s=600.0, max_cooldown_s=600.0))
    async with OpenAIEmulator() as down, OpenAIEmulator() as up:
        down.fault(Fault.stall(), at=Trigger.connect(1))
        primary = OpenAIRealtime(url=down.url, api_key="test")
        primary = primary.replace(
            limits=msgspec.structs.replace(primary.limits, connect_timeout_s=1.0)
        )
        provider = Failover(
            [primary, OpenAIRealtime(url=up.url, api_key="test")],
            policy=FailoverPolicy(attempts=1),
            breakers=breakers,
        )
        journal = MemoryJournal()

        async def one() -> str:
            async with open_session(provider, journal=journal, backoff=FAST) as session:
                with anyio.fail_after(30):
                    while not session.state.connected:
                        await anyio.sleep(0.01)
                await session.aclose()
                return session.session_id

        first = await one()
        assert len(down.records) == 1
        ids: list[str] = []

        async def collect() -> None:
            ids.append(await one())

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(collect)
        assert len(down.records) == 1  # none of the 20 dialled the primary
        assert len(up.records) == 21
    causes = {
        sid: [r.event.cause for r in journal.records(sid) if isinstance(r.event, ProviderSwitched)]
        for sid in [first, *ids]
    }
    assert causes.pop(first) == ["timeout:handshake_timeout"]
    assert set(map(tuple, causes.values())) == {("circuit_open",)}
