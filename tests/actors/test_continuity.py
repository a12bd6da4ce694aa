"""Continuity: a session keeps its audio, history and tool results through provider failures.

Every test asserts from the scripted provider's own record of what reached it:
- every user audio frame was committed into the conversation exactly once, in order;
- frames received twice are exactly the uncommitted tail of a connection that died (the
  unacknowledged window), and the session counted them as re-sent;
- a new connection was primed with the conversation history as it stood;
- each tool call got exactly one output;
- ``Reconnected.state_restored`` was honest.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from _scripted_session import FAST, Events, send_all, until, user_frames

from antiphon.actors import Intensity, Session, open_session, resume_session, tool
from antiphon.errors import CodecError, SessionClosedError, SupervisorEscalation
from antiphon.events import Reconnected, ReplyEnded, SessionEnded, ToolCallFinished
from antiphon.journal import FileJournal, MemoryJournal
from antiphon.protocol import GenerationEndReason, ToolOutcome
from antiphon.testing import ClosedBy, Fault, ScriptedProvider, Trigger, Turn

pytestmark = pytest.mark.anyio


def assert_audio_continuity(
    provider: ScriptedProvider, sent: list[bytes], session: Session
) -> None:
    assert provider.committed_frames() == sent, "every frame committed exactly once, in order"
    received = Counter(provider.received_audio())
    duplicated = sum(n - 1 for n in received.values())
    # Frames received twice are exactly the uncommitted tails of connections that died.
    window: list[bytes] = []
    for record in provider.records[:-1]:
        window.extend(record.audio[len(record.committed) :])
    assert sorted(f for f, n in received.items() if n > 1) == sorted(set(window))
    assert session.statistics().audio["frames_resent"] == duplicated == len(window)


def history_texts(provider: ScriptedProvider, index: int) -> list[str]:
    return [
        h.get("text") or h.get("name") or h.get("output", "")
        for h in provider.records[index].history
    ]


async def test_drop_during_user_speech() -> None:
    provider = ScriptedProvider(commit_every=8)
    frames = user_frames(40)
    rec = Events()
    async with open_session(provider, journal=MemoryJournal(), backoff=FAST) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(rec.run, session)
            await send_all(session, frames[:12])  # one turn committed, 4 frames into the next
            await until(lambda: len(provider.records[0].audio) == 12)
            provider.fault(Fault.drop(), at=Trigger.user_audio())  # the turn's 5th frame
            await send_all(session, frames[12:])
            await until(lambda: len(provider.committed_frames()) == 40)
            # The provider's commit of the last turn reaches the session a moment later.
            await until(lambda: session.state.turns == 5)
            await session.aclose()
    assert len(provider.records) == 2
    assert_audio_continuity(provider, frames, session)
    (reconnected,) = rec.of(Reconnected)
    assert reconnected.cause == "closed:1006"
    assert reconnected.state_restored is True  # no reply was being generated
    assert reconnected.epoch == 2
    # The new connection was primed with the conversation so far: turn 1 and its reply.
    assert history_texts(provider, 1) == ["user turn 1", "Hello! How can I help?"]


async def test_drop_during_assistant_generation() -> None:
    script = (Turn(text="one two three four five six seven eight", audio_chunks=8),)
    provider = ScriptedProvider(commit_every=5, script=script)
    frames = user_frames(15)
    rec = Events()
    provider.fault(Fault.drop(), at=Trigger.reply_audio(3))
    async with open_session(provider, journal=MemoryJournal(), backoff=FAST) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(rec.run, session)
            await send_all(session, frames)
            await until(lambda: len(provider.committed_frames()) == 15)
            await until(lambda: len(rec.of(ReplyEnded)) >= 3)
            state = session.state
            await session.aclose()
    assert_audio_continuity(provider, frames, session)
    (reconnected,) = rec.of(Reconnected)
    assert reconnected.state_restored is False  # the first reply was cut off mid-way
    first = rec.of(ReplyEnded)[0]
    assert first.reason is GenerationEndReason.INTERRUPTED or state.interrupted_generations == 1
    # What was said before the cut is in the history the next connection got, marked as such.
    assert history_texts(provider, 1)[:2] == ["user turn 1", "one two three"]
    assert state.items[1].interrupted  # type: ignore[union-attr]


async def test_drop_while_a_tool_call_is_pending() -> None:
    release = anyio.Event()
    calls: list[str] = []

    @tool(timeout_s=5)
    async def get_weather(city: str) -> str:
        """Weather for a city."""
        calls.append(city)
        await release.wait()
        return "sunny"

    script = (
        Turn(text="It is {output} in Paris.", tool="get_weather", arguments='{"city": "Paris"}'),
    )
    provider = ScriptedProvider(commit_every=5, script=script)
    provider.fault(Fault.drop(), at=Trigger.tool_call())
    frames = user_frames(5)
    rec = Events()
    async with open_session(
        provider, tools=[get_weather], journal=MemoryJournal(), backoff=FAST
    ) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(rec.run, session)
            await send_all(session, frames)
            await until(lambda: len(provider.records) == 2 and bool(rec.of(Reconnected)))
            release.set()  # the tool finishes only after the connection was replaced
            await until(lambda: any(e.text.startswith("It is sunny") for e in rec.of(ReplyEnded)))
            await session.aclose()
    assert calls == ["Paris"]
    outputs = [o for c in provider.records for o in c.tool_outputs]
    (call_id,) = {e.call_id for e in rec.of(ToolCallFinished)}
    assert outputs == [(call_id, "sunny")], "exactly one output, on the new connection"
    assert provider.records[1].tool_outputs == [(call_id, "sunny")]
    # The call (without its output) was part of the history the new connection got.
    assert [h["kind"] for h in provider.records[1].history] == ["user", "call"]
    (ended,) = rec.of(ToolCallFinished)
    assert ended.outcome is ToolOutcome.OK
    assert rec.of(Reconnected)[0].state_restored is True
    assert_audio_continuity(provider, frames, session)


async def test_provider_session_expiry_and_malformed_frames_are_survived() -> None:
    provider = ScriptedProvider(commit_every=5)
    frames = user_frames(20)
    rec = Events()
    async with open_session(provider, journal=MemoryJournal(), backoff=FAST) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(rec.run, session)
            await send_all(session, frames[:10])
            await until(lambda: len(provider.committed_frames()) == 10)
            provider.fault(Fault.malformed())
            provider.fault(Fault.expire())
            await send_all(session, frames[10:])
            await until(lambda: len(provider.committed_frames()) == 20)
            await session.aclose()
    assert_audio_continuity(provider, frames, session)
    (reconnected,) = rec.of(Reconnected)
    assert reconnected.cause == "session_expired"
    assert session.state.last_error.startswith("session_expired")


async def test_stalled_provider_is_replaced() -> None:
    provider = ScriptedProvider(commit_every=5, stall_timeout_s=0.2)
    frames = user_frames(10)
    rec = Events()
    async with open_session(provider, journal=MemoryJournal(), backoff=FAST) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(rec.run, session)
            provider.fault(Fault.stall())  # the connection hangs: no answers, nothing committed
            await send_all(session, frames)
            await session.generate_reply()  # a reply is now due; none comes
            await until(lambda: len(provider.committed_frames()) == 10, timeout=30)
            await session.aclose()
    assert_audio_continuity(provider, frames, session)
    assert len(provider.records) == 2
    assert rec.of(Reconnected)[0].cause == "timeout:stalled"


async def test_proactive_rotation_is_make_before_break_at_a_turn_boundary() -> None:
    provider = ScriptedProvider(commit_every=5, rotate_after_s=0.15, min_rotation_interval_s=0.05)
    frames = user_frames(30)
    rec = Events()
    async with open_session(provider, journal=MemoryJournal(), backoff=FAST) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(rec.run, session)
            await send_all(session, frames[:10])
            await until(lambda: bool(rec.of(Reconnected)))
            await send_all(session, frames[10:])
            await until(lambda: len(provider.committed_frames()) == 30)
            await session.aclose()
    reconnected = rec.of(Reconnected)[0]
    assert reconnected.cause == "rotation:age"
    assert reconnected.state_restored is True
    old = provider.records[0]
    assert old.closed_by is ClosedBy.CLIENT, "the old connection was closed cleanly by us"
    assert session.statistics().connection["rotations"] >= 1
    assert session.statistics().connection["reconnects"] == 0
    assert history_texts(provider, 1)[:2] == ["user turn 1", "Hello! How can I help?"]
    assert_audio_continuity(provider, frames, session)


async def test_rotation_before_the_provider_announced_expiry() -> None:
    # The provider announces its session ends in 3 s; we rotate 2.9 s before that.
    provider = ScriptedProvider(
        commit_every=5,
        session_seconds=3.0,
        rotate_before_expiry_s=2.9,
        min_connection_lifetime_s=1.0,
        min_rotation_interval_s=0.1,
    )
    frames = user_frames(10)
    rec = Events()
    async with open_session(provider, journal=MemoryJournal(), backoff=FAST) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(rec.run, session)
            await send_all(session, frames)
            await until(lambda: bool(rec.of(Reconnected)))
            await until(lambda: len(provider.committed_frames()) == 10)
            await session.aclose()
    assert rec.of(Reconnected)[0].cause == "rotation:expiry"
    assert_audio_continuity(provider, frames, session)


async def test_crash_then_resume_session(tmp_path: Path) -> None:
    started = anyio.Event()
    runs: list[str] = []

    @tool(idempotent=False, timeout_s=5)
    async def book_table(time: str) -> str:
        """Book a table (has effects: must not run twice)."""
        runs.append(time)
        started.set()
        await anyio.sleep_forever()
        return "booked"

    script = (
        Turn(text="Hello! How can I help?"),
        Turn(text="Booking: {output}", tool="book_table", arguments='{"time": "8pm"}'),
        Turn(text="Anything else?"),
    )
    provider = ScriptedProvider(commit_every=5, script=script)
    frames = user_frames(20)
    live = tmp_path / "live"
    crashed = tmp_path / "crashed"
    async with open_session(
        provider, tools=[book_table], journal=FileJournal(live), session_id="call-1", backoff=FAST
    ) as session:
        await send_all(session, frames[:10])
        await until(lambda: started.is_set())
        before_crash = session.state
        shutil.copytree(live, crashed)  # the files as a crash would leave them
    assert runs == ["8pm"]

    rec = Events()
    journal = FileJournal(crashed)
    async with resume_session(
        journal, "call-1", provider, tools=[book_table], backoff=FAST
    ) as resumed:
        async with anyio.create_task_group() as tg:
            tg.start_soon(rec.run, resumed)
            await until(lambda: bool(rec.of(Reconnected)))
            await until(lambda: any(e.text.startswith("Booking:") for e in rec.of(ReplyEnded)))
            await send_all(resumed, frames[10:])
            await until(lambda: len(provider.records[-1].committed) == 10)
            await resumed.aclose()
    assert runs == ["8pm"], "a non-idempotent call is never re-run"
    last = provider.records[-1]
    (output,) = last.tool_outputs
    assert output[0] == before_crash.pending_tools[0].call_id
    assert '"outcome":"unknown"' in output[1]
    reconnected = rec.of(Reconnected)[0]
    assert reconnected.cause == "resume"
    assert reconnected.state_restored is False  # the booking's outcome could not be restored
    # The resumed connection was primed with the history the crashed process had journalled.
    expected = [i.text if hasattr(i, "text") else i.name for i in before_crash.history()]  # type: ignore[union-attr]
    assert history_texts(provider, len(provider.records) - 1) == expected
    assert resumed.state.epoch == before_crash.epoch + 1
    assert last.committed == frames[10:]


async def test_a_provider_that_keeps_refusing_ends_the_session_cleanly() -> None:
    provider = ScriptedProvider(commit_every=5)
    rec = Events()
    async with open_session(
        provider,
        journal=MemoryJournal(),
        backoff=FAST,
        reconnect=Intensity(max_restarts=3, within_s=60),
    ) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(rec.run, session)
            provider.fault(Fault.refuse(), times=100)
            provider.fault(Fault.drop())
            with anyio.fail_after(30):
                await session.wait_closed()
    (ended,) = rec.of(SessionEnded)
    assert ended.reason == "failed"
    assert "SupervisorEscalation" in ended.error
    assert isinstance(session.error, SupervisorEscalation)
    assert session.state.closed
    with pytest.raises(SessionClosedError):
        await session.send_audio(user_frames(1)[0], sample_rate=16_000)


async def test_bad_audio_is_refused_with_a_clear_error_and_the_session_goes_on() -> None:
    provider = ScriptedProvider(commit_every=5)
    frames = user_frames(5)
    async with open_session(provider, journal=MemoryJournal(), backoff=FAST) as session:
        with pytest.raises(CodecError, match="even number of bytes"):
            await session.send_audio(b"\x00" * 641, sample_rate=16_000)
        with pytest.raises(CodecError, match="channels"):
            await session.send_audio(b"\x00" * 640, sample_rate=16_000, channels=0)
        await send_all(session, frames)
        await until(lambda: len(provider.committed_frames()) == 5)
    assert provider.committed_frames() == frames


async def test_closing_sends_the_audio_already_given() -> None:
    provider = ScriptedProvider(commit_every=1000)  # nothing is committed: all still pending
    frames = user_frames(200)
    async with open_session(provider, journal=MemoryJournal(), backoff=FAST) as session:
        for frame in frames:
            await session.send_audio(frame, sample_rate=16_000)  # no pause: the sender lags
    assert provider.received_audio() == frames
    assert provider.records[0].closed_by is ClosedBy.CLIENT
