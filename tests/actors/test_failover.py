"""Provider failover in the runtime: a session moves to the next provider, with its state.

Two in-process scripted providers stand for two providers: the first takes 24 kHz, the second
16 kHz, so the audio a switch re-sends is resampled. Each test waits for what it asserts.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest
from _scripted_session import FAST, Events, until

from antiphon.actors import Session, open_session, resume_session
from antiphon.actors.audio_in import AudioLog, ResampledLog
from antiphon.emulators import Fault, Trigger
from antiphon.errors import ProviderError
from antiphon.events import Reconnected, SessionEnded
from antiphon.failover import BreakerPolicy, CircuitBreakers, Failover, FailoverPolicy
from antiphon.journal import FileJournal, MemoryJournal
from antiphon.protocol import ConnectionLost, ProviderSwitched
from antiphon.testing import ScriptedProvider

pytestmark = pytest.mark.anyio

FIRST_RATE = 24_000
FRAME_24K = 960  # 20 ms at 24 kHz


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def frames_24k(n: int) -> list[bytes]:
    """n distinct 20 ms frames at 24 kHz (the session's format: the highest input rate)."""
    import numpy as np

    rng = np.random.default_rng(3)
    return [rng.integers(-3000, 3000, FRAME_24K // 2, dtype=np.int16).tobytes() for _ in range(n)]


def pair(**first: Any) -> tuple[ScriptedProvider, ScriptedProvider]:
    a = ScriptedProvider(input_sample_rate=FIRST_RATE, **first)
    b = ScriptedProvider()
    return a, b


def failover(
    a: ScriptedProvider,
    b: ScriptedProvider,
    *,
    breakers: CircuitBreakers | None = None,
    **policy: Any,
) -> Failover:
    return Failover([a, b], policy=FailoverPolicy(**policy), breakers=breakers or CircuitBreakers())


async def talk(session: Session, frames: list[bytes]) -> None:
    for frame in frames:
        await session.send_audio(frame, sample_rate=FIRST_RATE)
        await anyio.lowlevel.checkpoint()


def resampled(frames: list[bytes], start: int) -> list[bytes]:
    """The 16 kHz frames the runtime sends for ``frames[start:]`` on a new connection."""
    log = AudioLog(FRAME_24K, len(frames))
    for frame in frames:
        log.append(frame)
    view = ResampledLog(log, in_rate=FIRST_RATE, out_rate=16_000)
    return [view.get(i) or b"" for i in range(start, len(frames))]


async def test_moves_on_after_401_with_history_audio_and_tool_output() -> None:
    """The first provider drops mid-call with a tool call out and then refuses the key (401):
    the second gets the conversation so far, the tool output once, every user frame once."""
    a, b = pair()
    a.fault(Fault.drop(), at=Trigger.tool_call())
    for k in range(2, 8):
        a.fault(Fault.refuse(status=401), at=Trigger.connect(k))
    frames = frames_24k(40)

    async def get_weather(city: str) -> str:
        return f"sunny in {city}"

    journal = MemoryJournal()
    events = Events()
    async with open_session(
        failover(a, b), tools=[get_weather], journal=journal, backoff=FAST
    ) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.run, session)
            await talk(session, frames[:20])  # turn 1 answered on A; turn 2 asks the tool
            await until(lambda: events.of(Reconnected))
            await talk(session, frames[20:])
            await until(lambda: len(b.committed_frames()) >= 20 and b.records[0].tool_outputs)
            await session.aclose()
            tg.cancel_scope.cancel()
        state = session.state
    (moved,) = events.of(Reconnected)
    assert (moved.previous_provider, moved.provider) == ("scripted", "scripted")
    assert moved.cause == "http:401"
    assert state.provider == "scripted"
    assert len(a.records) == 1  # every later attempt was refused
    # B was primed with what A's conversation held: the first turn and the tool call.
    history = [(h["kind"], h.get("text") or h.get("name")) for h in b.records[0].history]
    assert history == [
        ("user", "user turn 1"),
        ("assistant", "Hello! How can I help?"),
        ("user", "user turn 2"),
        ("call", "get_weather"),
    ]
    # The output of the call A made reached B exactly once, and A never.
    (call_id,) = [h["id"] for h in b.records[0].history if h["kind"] == "call"]
    outputs = [o for r in b.records for c, o in r.tool_outputs if c == call_id]
    assert outputs == ["sunny in Paris"]
    assert not [o for r in a.records for o in r.tool_outputs]
    # Every user frame committed exactly once: A's at 24 kHz, then B's, resampled.
    taken = len(a.committed_frames())
    assert a.committed_frames() == frames[:taken]
    assert b.committed_frames() == resampled(frames, taken)[: len(b.committed_frames())]
    assert taken + len(b.committed_frames()) == len(frames)
    # The journal names the switch and why the first provider failed.
    events_journalled = [r.event for r in journal.records(session.session_id)]
    switched = [e for e in events_journalled if isinstance(e, ProviderSwitched)]
    assert [(e.previous_provider, e.cause) for e in switched] == [("scripted", "http:401")]
    lost = [e for e in events_journalled if isinstance(e, ConnectionLost)]
    assert [(e.cause, e.kind, e.recoverable) for e in lost] == [
        ("closed:1006", "transient", True),  # the drop
        ("http:401", "authentication", False),  # the refused reconnect
    ]


async def test_an_outage_moves_on_after_the_policy_attempts() -> None:
    """500s (an outage, not a lack of capacity) are worth retrying, but not forever: after
    ``attempts`` failed reconnects in a row the session moves on, without spending its
    reconnect budget."""
    a, b = pair()
    a.fault(Fault.drop(), at=Trigger.turn_end())
    for k in range(2, 12):
        a.fault(Fault.refuse(status=500), at=Trigger.connect(k))
    frames = frames_24k(30)
    events = Events()
    async with open_session(failover(a, b, attempts=3), backoff=FAST) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.run, session)
            await talk(session, frames[:10])
            await until(lambda: events.of(Reconnected))
            await talk(session, frames[10:])
            await until(lambda: len(a.committed_frames()) + len(b.committed_frames()) == 30)
            await session.aclose()
            tg.cancel_scope.cancel()
    (moved,) = events.of(Reconnected)
    assert moved.cause == "http:500"
    assert a.connect_attempts == 1 + 3  # the first connection, then three refused retries
    assert session.error is None


async def ended_with(provider: Failover) -> ProviderError:
    """Run a first turn on ``provider`` until the session ends; the error it ended with."""
    events = Events()
    async with open_session(provider, backoff=FAST) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.run, session)
            await talk(session, frames_24k(10))
            await until(lambda: events.of(SessionEnded))
            tg.cancel_scope.cancel()
    (ended,) = events.of(SessionEnded)
    assert ended.reason == "failed"
    assert isinstance(session.error, ProviderError)
    return session.error


async def test_a_refused_request_ends_the_call_instead_of_moving_on() -> None:
    """A failure of a kind the policy does not move on for (400: what was sent is wrong, and
    would be anywhere) ends the session with its error; the second provider is never dialled."""
    a, b = pair()
    a.fault(Fault.drop(), at=Trigger.turn_end())
    a.fault(Fault.refuse(status=400), at=Trigger.connect(2))
    assert (await ended_with(failover(a, b))).http_status == 400
    assert b.connect_attempts == 0


async def test_the_call_ends_when_every_provider_has_failed() -> None:
    a, b = pair()
    a.fault(Fault.drop(), at=Trigger.turn_end())
    a.fault(Fault.refuse(status=401), at=Trigger.connect(2))
    b.fault(Fault.refuse(status=403), at=Trigger.connect(1))
    assert (await ended_with(failover(a, b))).http_status == 403
    assert (a.connect_attempts, b.connect_attempts) == (2, 1)


async def test_returns_to_the_first_provider_at_a_turn_boundary() -> None:
    """With ``return_after_s``, the session goes back to the first provider once its breaker
    lets a connection through, opening it before leaving the second: nothing is cut."""
    a, b = pair()
    a.fault(Fault.drop(), at=Trigger.turn_end())
    a.fault(Fault.refuse(status=429), at=Trigger.connect(2))
    breakers = CircuitBreakers(BreakerPolicy(cooldown_s=0.0))
    frames = frames_24k(40)
    events = Events()
    provider = failover(a, b, breakers=breakers, return_after_s=0.0)
    async with open_session(provider, backoff=FAST) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.run, session)
            await talk(session, frames[:10])
            await until(lambda: len(events.of(Reconnected)) == 2)
            await talk(session, frames[10:])
            await until(lambda: len(a.committed_frames()) + len(b.committed_frames()) == 40)
            await session.aclose()
            tg.cancel_scope.cancel()
    away, back = events.of(Reconnected)
    assert away.cause == "http:429"
    assert back.cause == "failover:return"
    assert back.state_restored
    assert len(a.records) == 2  # the first connection, then the return
    assert b.records[0].closed_by is not None
    assert breakers.get(a).allows(0.0)  # the return closed A's breaker


async def test_a_session_voice_goes_to_the_first_provider_only_unless_mapped() -> None:
    for voices, expected in (({}, None), ({"scripted": "mapped"}, "mapped")):
        a, b = pair()
        a.fault(Fault.refuse(status=401), at=Trigger.connect(1))
        provider = Failover([a, b], voices=voices, breakers=CircuitBreakers())
        async with open_session(provider, options={"voice": "alloy"}, backoff=FAST) as session:
            await until(lambda s=session: s.state.connected)
            await session.aclose()
        assert b.records[0].setup.get("options", {}).get("voice") == expected


async def test_open_breaker_sends_new_sessions_to_the_next_provider_at_once() -> None:
    """The first session finds the first provider dead (its handshake never answered, so it
    waits out the connect deadline) and opens the breaker; 20 sessions started after that
    never dial it — none of them waits for that deadline — and say why in their journal."""
    a, b = pair(connect_timeout_s=0.5)
    a.fault(Fault.stall(), at=Trigger.connect(1))
    breakers = CircuitBreakers(BreakerPolicy(cooldown_s=600.0, max_cooldown_s=600.0))
    provider = failover(a, b, breakers=breakers, attempts=1)
    journal = MemoryJournal()
    async with open_session(provider, journal=journal, backoff=FAST) as first:
        await until(lambda: b.records)
    assert a.connect_attempts == 1
    assert not breakers.get(a).allows(0.0)

    ids: list[str] = []

    async def one() -> None:
        async with open_session(provider, journal=journal, backoff=FAST) as session:
            ids.append(session.session_id)
            await until(lambda: session.state.connected)
            await session.aclose()

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(one)
    assert a.connect_attempts == 1  # none of the 20 dialled the first provider
    assert len(b.records) == 21
    for sid in ids:
        switched = [r.event for r in journal.records(sid) if isinstance(r.event, ProviderSwitched)]
        assert [e.cause for e in switched] == ["circuit_open"]
    first_switch = [
        r.event for r in journal.records(first.session_id) if isinstance(r.event, ProviderSwitched)
    ]
    assert [e.cause for e in first_switch] == ["timeout:handshake_timeout"]


async def test_a_session_dialling_a_provider_gives_up_when_its_breaker_opens() -> None:
    """A session whose connection attempt hangs (a 60 s deadline) moves on as soon as another
    session's refusal opens the breaker: its journal says ``circuit_open``, not a timeout."""
    a, b = pair(connect_timeout_s=60.0)
    a.fault(Fault.stall(), at=Trigger.connect(1))
    a.fault(Fault.refuse(status=401), at=Trigger.connect(2))
    provider = failover(a, b)
    journal = MemoryJournal()
    async with anyio.create_task_group() as tg:

        async def hanging() -> None:
            async with open_session(provider, journal=journal, session_id="hung") as s:
                await until(lambda: s.state.connected)
                await s.aclose()

        tg.start_soon(hanging)
        await until(lambda: a.connect_attempts == 1)
        async with open_session(provider, journal=journal, session_id="refused") as s:
            await until(lambda: s.state.connected)
            await s.aclose()
    causes = {
        sid: [r.event.cause for r in journal.records(sid) if isinstance(r.event, ProviderSwitched)]
        for sid in ("hung", "refused")
    }
    assert causes == {"hung": ["circuit_open"], "refused": ["http:401"]}
    assert len(b.records) == 2


async def test_a_resumed_session_continues_on_the_provider_it_had_moved_to(
    tmp_path: Path,
) -> None:
    """A process that dies after the call moved on resumes it on the provider the journal
    says it was on, not on the one that failed."""
    a, b = pair()
    b.model = "scripted-2"  # tell the two apart in the journal
    a.fault(Fault.drop(), at=Trigger.turn_end())
    a.fault(Fault.refuse(status=401), at=Trigger.connect(2))
    frames = frames_24k(30)
    provider = failover(a, b)
    live, crashed = tmp_path / "live", tmp_path / "crashed"
    events = Events()
    async with open_session(
        provider, journal=FileJournal(live), session_id="call-1", backoff=FAST
    ) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.run, session)
            await talk(session, frames[:10])
            await until(lambda: len(b.committed_frames()) == 0 and events.of(Reconnected))
            await talk(session, frames[10:20])
            await until(lambda: session.state.audio_settled == 20)  # B took the second turn
            shutil.copytree(live, crashed)  # the process dies here
            await session.aclose()
            tg.cancel_scope.cancel()
    attempts = a.connect_attempts
    async with resume_session(FileJournal(crashed), "call-1", provider, backoff=FAST) as resumed:
        await until(lambda: resumed.state.connected)
        assert (resumed.state.provider, resumed.state.model) == ("scripted", "scripted-2")
        await talk(resumed, frames[20:])
        await until(lambda: len(b.committed_frames()) == 20)
        await resumed.aclose()
    assert a.connect_attempts == attempts  # the failed provider was not dialled again
    history = [(h["kind"], h.get("text")) for h in b.records[-1].history]
    assert history[:2] == [("user", "user turn 1"), ("assistant", "Hello! How can I help?")]
