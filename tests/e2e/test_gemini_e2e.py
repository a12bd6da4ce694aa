"""End to end: Gemini Live sessions through the real google-genai client against the emulator.

Every test drives a real session (``antiphon.open_session`` with the ``GeminiLive`` preset)
over TLS websockets against :class:`~antiphon.emulators.gemini.GeminiEmulator` on 127.0.0.1,
and asserts from the emulator's own record of what it received: the ``setup`` of each
connection (and the resumption handle in it), ``clientContent`` turns, ``toolResponse``
outputs and every 20 ms user audio frame, plus what the app was told (``Reconnected`` and its
``state_restored``). google-genai is asyncio-only, so these tests are too.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import pytest
from _session_log import (
    FAST,
    WEATHER,
    SessionLog,
    cut_frames,
    frames_received,
    get_weather,
    reply_text,
    user_text,
)

import antiphon
from antiphon.adapters.gemini import GeminiLive
from antiphon.emulators import Fault, Trigger
from antiphon.emulators._model import (
    DEFAULT_SCRIPT,
    Script,
    Turn,
    conversation_audio,
    reply_audio,
    silence,
    utterance_audio,
)
from antiphon.emulators.gemini import SESSION_NOT_FOUND, GeminiEmulator, GeminiRecord
from antiphon.protocol import (
    AssistantMessage,
    FunctionCall,
    FunctionOutput,
    GenerationEndReason,
    ToolCallCancelRequested,
    ToolOutcome,
    UserMessage,
)

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

E = TypeVar("E")

RATE = 16_000  # the app sends 16 kHz mono: Gemini's input rate, so no resampling
FRAME_BYTES = 640  # 20 ms of 16 kHz PCM16 mono
MODEL = "models/gemini-2.5-flash-native-audio-preview-09-2025"


def frames_of(pcm: bytes) -> list[bytes]:
    return cut_frames(pcm, FRAME_BYTES)


@pytest.fixture
def anyio_backend() -> str:
    # google-genai and the emulator are asyncio-only.
    return "asyncio"


FOLLOW_UP = f"The weather in Paris is {WEATHER} in Paris."


def emulated_reply_audio(text: str, emu: GeminiEmulator) -> bytes:
    """The 24 kHz audio the emulator speaks for ``text``."""
    return b"".join(reply_audio(text, sample_rate=24_000, chunk_ms=emu.chunk_ms))


# --------------------------------------------------------------------------------- harness


@dataclass(kw_only=True)
class Harness(SessionLog):
    """One session against one emulator, with everything the app saw and sent."""

    rate = RATE
    frame_bytes = FRAME_BYTES
    emu: GeminiEmulator
    journal: antiphon.MemoryJournal

    def journal_events(self, kind: type[E]) -> list[E]:
        return [e for e in self.journal.events(self.session.session_id) if isinstance(e, kind)]

    def item_kinds(self) -> list[tuple[str, str]]:
        return [
            (type(i).__name__, getattr(i, "text", getattr(i, "name", "")).strip())
            for i in self.session.state.items
        ]


@asynccontextmanager
async def open_harness(
    *,
    tools: Sequence[antiphon.Tool | Callable[..., Any]] = (),
    instructions: str = "Be brief.",
    **emulator: Any,
) -> AsyncIterator[Harness]:
    """Emulator + session + event reader. On exit the session is closed and the emulator
    has finished recording every connection."""
    async with GeminiEmulator(**emulator) as emu:
        provider = GeminiLive(api_key="test", base_url=emu.base_url, ca_file=emu.ca_pem_path)
        journal = antiphon.MemoryJournal()
        async with antiphon.open_session(
            provider, instructions=instructions, tools=tools, journal=journal, backoff=FAST
        ) as session:
            harness = Harness(emu=emu, session=session, journal=journal)
            async with anyio.create_task_group() as tg:
                tg.start_soon(harness.read)
                try:
                    yield harness
                finally:
                    await session.aclose()
        with anyio.fail_after(30.0):
            await emu.wait_idle()


@dataclass(frozen=True, kw_only=True)
class AudioReport:
    expected: int  # frames the app's audio makes
    spans: list[tuple[int, int]]  # per connection: [start, end) frame indexes
    duplicates: int  # frames received more than once


def audio_continuity(expected_frames: list[bytes], records: Sequence[GeminiRecord]) -> AudioReport:
    """Every app frame reached the emulator, in order: each connection got one contiguous
    run of the app's frames starting at or before where the previous run ended."""
    index = {frame: i for i, frame in enumerate(expected_frames)}
    assert len(index) == len(expected_frames), "test audio must have distinct frames"
    spans: list[tuple[int, int]] = []
    covered = 0
    for record in records:
        chunks = frames_received(record.audio, FRAME_BYTES)
        if not chunks:
            spans.append((covered, covered))
            continue
        assert chunks[0] in index, f"connection {record.index} got audio the app never sent"
        start = index[chunks[0]]
        assert chunks == expected_frames[start : start + len(chunks)], (
            f"connection {record.index}: frames out of order or foreign"
        )
        assert start <= covered, f"frames {covered}..{start - 1} were lost"
        covered = max(covered, start + len(chunks))
        spans.append((start, start + len(chunks)))
    assert covered == len(expected_frames), (
        f"frames {covered}..{len(expected_frames) - 1} never reached the emulator"
    )
    received = sum(len(frames_received(r.audio, FRAME_BYTES)) for r in records)
    return AudioReport(
        expected=len(expected_frames), spans=spans, duplicates=received - len(expected_frames)
    )


def check_audio(h: Harness) -> AudioReport:
    report = audio_continuity(frames_of(bytes(h.sent_pcm)), h.emu.records)
    audio = h.session.statistics().audio
    assert audio["frames_in"] == report.expected
    assert audio["frames_evicted"] == 0
    assert audio["frames_skipped"] == 0
    return report


def field(obj: dict[str, Any], camel: str) -> Any:
    """A setup field in either casing (the SDK re-cases the setup it sends)."""
    snake = re.sub(r"([A-Z])", r"_\1", camel).lower()
    assert camel in obj or snake in obj, f"{camel} missing from {sorted(obj)}"
    return obj[camel] if camel in obj else obj[snake]


def resumption(record: GeminiRecord) -> dict[str, Any]:
    """The setup's ``sessionResumption`` (every connection must ask for it)."""
    assert record.setup is not None
    value = field(record.setup, "sessionResumption")
    assert isinstance(value, dict)
    return value


def seeded_turns(record: GeminiRecord) -> list[tuple[str, str]]:
    """The ``clientContent`` turns a connection got, as (role, text) with the text trimmed
    (Gemini's input transcripts start with a space)."""
    return [
        (t.get("role", ""), " ".join(p.get("text", "") for p in t.get("parts", [])).strip())
        for t in record.client_turns
    ]


# --------------------------------------------------------------------------------- happy path


async def test_happy_path_three_turns() -> None:
    pcm, _ = conversation_audio([0, 1, 3], sample_rate=RATE, gap_s=0.6)
    pcm += b"\x01\x00" * 100  # a partial last frame: the session pads it on close
    async with open_harness(tools=[get_weather], instructions="Be brief.") as h:
        await h.send(pcm)
        await h.wait_until(lambda: len(h.completed()) >= 3)
    emu = h.emu

    # One connection, closed normally by the client; no reconnect.
    assert len(emu.records) == 1
    rec = emu.records[0]
    assert (rec.close_code, rec.index) == (1000, 0)
    assert h.of(antiphon.Reconnected) == []
    assert rec.api_key == "test"

    # The setup: model, audio out, instructions, the tool, transcription, and resumption
    # asked for without a handle (a first connection has none).
    setup = rec.setup
    assert setup is not None
    assert setup["model"] == MODEL
    assert field(setup, "generationConfig")["responseModalities"] == ["AUDIO"]
    assert field(setup, "systemInstruction")["parts"][0]["text"] == "Be brief."
    decls = field(setup["tools"][0], "functionDeclarations")
    assert [d["name"] for d in decls] == ["get_weather"]
    assert field(setup, "inputAudioTranscription") == {}
    assert field(setup, "outputAudioTranscription") == {}
    assert resumption(rec) == {}
    assert rec.resume_handle is None
    assert rec.client_turns == []  # nothing to re-seed on a first connection

    # Every frame reached the emulator exactly once, in order.
    report = check_audio(h)
    assert report.duplicates == 0
    assert report.spans == [(0, report.expected)]
    assert h.session.statistics().audio["frames_resent"] == 0

    finals = [e.text.strip() for e in h.of(antiphon.UserTranscript) if e.final]
    assert finals == [user_text(0), user_text(1), user_text(3)]
    ends = h.completed()
    assert [e.text for e in ends] == [reply_text(0), FOLLOW_UP, reply_text(3)]
    for end in ends:
        assert h.assistant_audio(end.generation_id) == emulated_reply_audio(end.text, emu)

    # The one tool output went back as a toolResponse with the call's id.
    (call,) = h.of(antiphon.ToolCallRequested)
    assert rec.tool_responses == [
        {"id": call.call_id, "name": "get_weather", "response": {"output": f"{WEATHER} in Paris"}}
    ]
    assert h.item_kinds() == [
        ("UserMessage", user_text(0)),
        ("AssistantMessage", reply_text(0)),
        ("UserMessage", user_text(1)),
        ("FunctionCall", "get_weather"),
        ("FunctionOutput", "get_weather"),
        ("AssistantMessage", FOLLOW_UP),
        ("UserMessage", user_text(3)),
        ("AssistantMessage", reply_text(3)),
    ]
    # The emulator's conversation matches (its handles snapshot it after each turn).
    assert [m["role"] for m in rec.history] == ["user", "model"] * 4
    assert h.session.state.resumption_handle == rec.handles[-1]


# --------------------------------------------------------------------------------- tool call


async def test_tool_call_round() -> None:
    pcm, _ = conversation_audio([1], sample_rate=RATE, gap_s=0.6)
    async with open_harness(tools=[get_weather]) as h:
        await h.send(pcm)
        follow_up = await h.wait_for(
            antiphon.ReplyEnded, lambda e: e.reason is GenerationEndReason.COMPLETED
        )
    (started,) = h.of(antiphon.ToolCallRequested)
    assert (started.name, json.loads(started.arguments)) == ("get_weather", {"city": "Paris"})
    ended = h.of(antiphon.ToolCallFinished)
    assert [(e.call_id, e.outcome, e.output) for e in ended] == [
        (started.call_id, ToolOutcome.OK, f"{WEATHER} in Paris")
    ]
    # The call's generation ended as a tool call; the follow-up is a generation of its own.
    tool_round = [e for e in h.of(antiphon.ReplyEnded) if e.reason is GenerationEndReason.TOOL_CALL]
    assert len(tool_round) == 1
    assert tool_round[0].generation_id != follow_up.generation_id
    assert follow_up.text == FOLLOW_UP
    (rec,) = h.emu.records
    assert rec.tool_responses == [
        {
            "id": started.call_id,
            "name": "get_weather",
            "response": {"output": f"{WEATHER} in Paris"},
        }
    ]
    # The output entered the emulator's conversation between the call and the follow-up.
    assert [m["text"] for m in rec.history] == [
        user_text(1),
        '[call get_weather {"city": "Paris"}]',
        f"[tool {started.call_id}: {WEATHER} in Paris]",
        FOLLOW_UP,
    ]
    assert [type(i) for i in h.session.state.items] == [
        UserMessage,
        FunctionCall,
        FunctionOutput,
        AssistantMessage,
    ]
    assert h.session.state.pending_tools == ()
    assert check_audio(h).duplicates == 0


# --------------------------------------------------------------------------------- barge-in

SHORT_HELLO = Script(
    utterances={**DEFAULT_SCRIPT.utterances, 0: Turn(user_text="Hello there.", reply="Hi!")}
)


@antiphon.tool(name="get_weather", timeout_s=10.0)
async def stuck_weather(city: str) -> str:
    """Current weather for a city (slow: the user speaks again before it returns)."""
    await anyio.sleep(10.0)
    return f"{WEATHER} in {city}"


async def barge_in_during_tool_call(h: Harness) -> antiphon.ToolCallRequested:
    ask, _ = conversation_audio([1], sample_rate=RATE, gap_s=0.4, seed=21)
    await h.send(ask)
    started = await h.wait_for(antiphon.ToolCallRequested)
    barge = utterance_audio(0, sample_rate=RATE, duration_s=0.6, seed=22) + silence(
        0.5, sample_rate=RATE, seed=23
    )
    await h.send(barge)
    await h.wait_for(antiphon.ReplyEnded, lambda e: e.text == "Hi!")
    return started


async def test_barge_in_cancels_the_pending_tool_call() -> None:
    async with open_harness(tools=[stuck_weather], script=SHORT_HELLO) as h:
        started = await barge_in_during_tool_call(h)
        ended = await h.wait_for(antiphon.ToolCallFinished)
        await anyio.sleep(0.2)  # room for a wrong second output or a stray reply
    # The provider withdrew the call (toolCallCancellation); the executor stopped the tool
    # and recorded exactly one output for it, outcome cancelled.
    (cancel,) = h.journal_events(ToolCallCancelRequested)
    assert (cancel.call_ids, cancel.reason) == ((started.call_id,), "provider")
    assert [(e.call_id, e.outcome) for e in h.of(antiphon.ToolCallFinished)] == [
        (started.call_id, ToolOutcome.CANCELLED)
    ]
    assert json.loads(ended.output)["outcome"] == "cancelled"
    (rec,) = h.emu.records
    assert rec.interruptions == 1
    outputs = [i for i in h.session.state.items if isinstance(i, FunctionOutput)]
    assert [(o.id, o.outcome) for o in outputs] == [(started.call_id, ToolOutcome.CANCELLED)]
    assert h.session.state.pending_tools == ()
    # Whatever the runtime tells the provider, never more than one output per call.
    assert len([r for r in rec.tool_responses if r["id"] == started.call_id]) <= 1
    # The barge-in was answered.
    assert "Hi!" in [e.text for e in h.completed()]
    assert check_audio(h).duplicates == 0


async def test_withdrawn_tool_call_gets_no_tool_response() -> None:
    async with open_harness(tools=[stuck_weather], script=SHORT_HELLO) as h:
        await barge_in_during_tool_call(h)
        await h.wait_for(antiphon.ToolCallFinished)
        await anyio.sleep(0.3)
    (rec,) = h.emu.records
    # toolCallCancellation means "this call should not have been executed" (PROVIDERS 5.3):
    # the server has dropped it, so no toolResponse may follow and no reply answers it.
    assert rec.tool_responses == []
    assert [e.text for e in h.completed()] == ["Hi!"]


# --------------------------------------------------------------------------------- goAway

GO_AWAY_S = 2.0


def split_after_first_turn(pcm: bytes, spans: list[tuple[int, int]]) -> tuple[bytes, bytes]:
    """Cut the user audio on a frame boundary halfway between the first two utterances."""
    middle = (spans[0][1] + spans[1][0]) // 2 * 2
    cut = middle // FRAME_BYTES * FRAME_BYTES
    return pcm[:cut], pcm[cut:]


def first_turn_history() -> list[dict[str, str]]:
    return [{"role": "user", "text": user_text(0)}, {"role": "model", "text": reply_text(0)}]


def balanced_replies(h: Harness) -> None:
    """Every reply the app saw start also ended, once."""
    started = [e.generation_id for e in h.of(antiphon.ReplyStarted)]
    ended = [e.generation_id for e in h.of(antiphon.ReplyEnded)]
    assert sorted(started) == sorted(ended)


async def test_go_away_rotates_at_the_turn_boundary_with_the_newest_handle() -> None:
    # Replies take ~90 ms (5 % of real time); the goAway comes during the first one, after
    # its 5th audio chunk, while the app keeps streaming the rest of the conversation.
    pcm, _ = conversation_audio([0, 1, 3], sample_rate=RATE, gap_s=0.8, seed=3)
    async with open_harness(tools=[get_weather], realtime_factor=0.05) as h:
        h.emu.fault(Fault.go_away(GO_AWAY_S), at=Trigger.reply_audio(5))
        closed_before_next: list[int | None] = []

        async def watch_switch() -> None:
            await h.emu.wait_connections(2)
            closed_before_next.append(h.emu.records[0].close_code)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_switch)
            await h.send(pcm, pause_s=0.004)
            await h.wait_for(antiphon.ReplyEnded, lambda e: e.text == reply_text(3))
    emu = h.emu
    (rotated,) = h.of(antiphon.Reconnected)
    assert rotated.cause == "go_away"
    assert rotated.epoch == 2
    assert rotated.state_restored is True  # no reply was cut: it waited for the boundary
    assert rotated.gap_ms < GO_AWAY_S * 1000
    # At the turn boundary: after the reply the goAway arrived in had completed.
    first_reply = h.completed()[0]
    assert first_reply.text == reply_text(0)
    assert h.assistant_audio(first_reply.generation_id) == emulated_reply_audio(reply_text(0), emu)
    assert h.events.index(first_reply) < h.events.index(rotated)
    assert len(emu.records) == 2
    old, new = emu.records
    # Inside timeLeft, close first: the client closed the old connection normally (not the
    # server's 1011 "Deadline expired" at the end of timeLeft) before dialling the next.
    assert (old.close_code, old.close_reason) == (1000, "")
    assert closed_before_next == [1000]
    # The new connection resumed with the newest resumable handle, which the emulator
    # restored; with a handle nothing is re-seeded.
    assert len(old.handles) == 1, "the first turn produced one resumable handle"
    assert new.resume_handle == old.handles[0]
    assert resumption(new) == {"handle": old.handles[0]}
    assert new.restored_history == first_turn_history()
    assert new.client_turns == []
    assert new.setup is not None
    assert new.setup["model"] == MODEL
    # Zero lost audio: every frame the app sent reached the emulator, in order, the frames
    # sent during the switch included.
    report = check_audio(h)
    assert report.spans[0] == (0, len(frames_received(old.audio, FRAME_BYTES)))
    assert report.spans[1][1] == report.expected
    # The conversation carried on: the tool round ran on the new connection.
    (call,) = {e.call_id for e in h.of(antiphon.ToolCallFinished)}
    assert [r["id"] for r in new.tool_responses] == [call]
    assert old.tool_responses == []
    assert h.session.statistics().connection["rotations"] == 1
    assert h.session.state.resumption_handle == new.handles[-1]
    balanced_replies(h)


async def test_go_away_resume_does_not_replay_answered_audio() -> None:
    pcm, spans = conversation_audio([0, 3], sample_rate=RATE, gap_s=0.8, seed=4)
    head, tail = split_after_first_turn(pcm, spans)
    async with open_harness() as h:
        await h.send(head)
        await h.wait_for(antiphon.ReplyEnded)
        await h.wait_until(lambda: h.session.state.resumption_handle != "")
        h.emu.fault(Fault.go_away(GO_AWAY_S))
        await h.wait_for(antiphon.Reconnected)
        await h.send(tail)
        await h.wait_for(antiphon.ReplyEnded, lambda e: e.text == reply_text(3))
    _, new = h.emu.records
    assert new.restored_history == first_turn_history()
    # The resumed session already has the first turn: its audio must not be sent again.
    first_end = spans[0][1] * 2 // FRAME_BYTES
    assert check_audio(h).spans[1][0] >= first_end
    users = [i.text.strip() for i in h.session.state.items if isinstance(i, UserMessage)]
    assert users == [user_text(0), user_text(3)]


@antiphon.tool(name="get_weather")
async def slow_weather(city: str) -> str:
    """Current weather for a city (takes a moment: the goAway lands while it runs)."""
    await anyio.sleep(0.3)
    return f"{WEATHER} in {city}"


async def test_go_away_during_a_tool_call_waits_for_a_resumable_handle() -> None:
    # Text in, so the outcome does not depend on how audio is re-sent after the switch.
    async with open_harness(tools=[slow_weather]) as h:
        await h.session.send_text(user_text(1))
        await h.wait_for(antiphon.ToolCallRequested)
        h.emu.fault(Fault.go_away(GO_AWAY_S))
        with anyio.move_on_after(1.5):
            await h.wait_for(antiphon.Reconnected)
            await h.wait_for(
                antiphon.ReplyEnded, lambda e: e.reason is GenerationEndReason.COMPLETED
            )
            await anyio.sleep(0.1)
    old, new = h.emu.records
    # PROVIDERS 5.5: with a call pending no handle is resumable; the output goes to the
    # connection that made the call, and the rotation waits for the handle issued after the
    # follow-up, or the toolResponse lands in a session that never saw the call.
    assert [r["id"] for r in old.tool_responses] == [h.of(antiphon.ToolCallRequested)[0].call_id]
    assert new.tool_responses == []
    assert old.handles, "the follow-up ended with a resumable handle"
    assert new.resume_handle == old.handles[-1]
    assert new.client_turns == []
    assert [e.text for e in h.completed()] == [FOLLOW_UP]
    assert all(r.state_restored for r in h.of(antiphon.Reconnected))
    balanced_replies(h)


# --------------------------------------------------------------------------------- closes

UNAVAILABLE = "The service is currently unavailable."


async def test_close_1011_between_turns_resumes_with_the_handle() -> None:
    pcm, spans = conversation_audio([0, 3], sample_rate=RATE, gap_s=0.8, seed=9)
    head, tail = split_after_first_turn(pcm, spans)
    async with open_harness() as h:
        await h.send(head)
        await h.wait_for(antiphon.ReplyEnded)
        await h.wait_until(lambda: h.session.state.resumption_handle != "")
        h.emu.fault(Fault.close(1011, UNAVAILABLE))
        reconnected = await h.wait_for(antiphon.Reconnected)
        await h.send(tail)
        await h.wait_for(antiphon.ReplyEnded, lambda e: e.text == reply_text(3))
    assert reconnected.cause == "closed:1011" or "1011" in reconnected.cause
    assert reconnected.state_restored is True  # nothing was cut: the failure was between turns
    assert reconnected.epoch == 2
    assert len(h.of(antiphon.Reconnected)) == 1
    old, new = h.emu.records
    assert (old.close_code, old.close_reason) == (1011, UNAVAILABLE)
    # Recoverable with the handle (PROVIDERS 5.6): resumed, restored, not re-seeded.
    assert new.resume_handle == old.handles[-1]
    assert new.restored_history == first_turn_history()
    assert new.client_turns == []
    report = check_audio(h)
    assert report.spans[1][1] == report.expected
    assert h.session.statistics().connection["reconnects"] == 1
    balanced_replies(h)


async def test_close_1011_mid_reply_is_reported_as_not_restored() -> None:
    pcm, _ = conversation_audio([0], sample_rate=RATE, gap_s=0.6, seed=10)
    async with open_harness(realtime_factor=0.05) as h:
        h.emu.fault(Fault.close(1011), at=Trigger.reply_audio(3))
        await h.send(pcm)
        reconnected = await h.wait_for(antiphon.Reconnected)
        await h.wait_until(lambda: len(h.emu.records) == 2 and h.emu.records[1].setup is not None)
    assert "1011" in reconnected.cause
    # A reply was cut off: the app is told the state was not fully restored.
    assert reconnected.state_restored is False
    cut = h.of(antiphon.ReplyEnded)[0]
    assert cut.reason is GenerationEndReason.INTERRUPTED
    assert h.events.index(cut) < h.events.index(reconnected)
    # Only the three chunks sent before the close reached the app.
    heard = h.assistant_audio(cut.generation_id)
    full = emulated_reply_audio(reply_text(0), h.emu)
    assert heard == full[: len(heard)]
    assert len(heard) == 3 * 24_000 * h.emu.chunk_ms // 1000 * 2
    old, new = h.emu.records
    assert old.close_code == 1011
    # No resumable handle existed yet (the first turn never finished): a fresh start that
    # re-seeds the conversation so far as clientContent turns.
    assert old.handles == []
    assert new.resume_handle is None
    assert resumption(new) == {}
    assert seeded_turns(new)[0] == ("user", user_text(0))
    check_audio(h)


async def test_stale_handle_starts_fresh_and_reseeds() -> None:
    # Text in, so the re-seeded history is exactly the conversation so far.
    async with open_harness() as h:
        await h.session.send_text(user_text(0))
        await h.wait_for(antiphon.ReplyEnded)
        await h.wait_until(lambda: h.session.state.resumption_handle != "")
        stale = h.session.state.resumption_handle
        h.emu.handles.clear()  # the server no longer knows the session
        h.emu.fault(Fault.drop())
        reconnected = await h.wait_for(antiphon.Reconnected)
        await h.session.send_text(user_text(3))
        await h.wait_for(antiphon.ReplyEnded, lambda e: e.text == reply_text(3))
    first, refused, fresh, *more = h.emu.records
    assert more == []
    assert first.close_code == 1006
    # The resume with the stale handle was refused with 1008 "session not found" ...
    assert refused.resume_handle == stale
    assert (refused.close_code, refused.close_reason) == (1008, SESSION_NOT_FOUND)
    # ... so the next connection started fresh, without a handle, and re-seeded the history.
    assert fresh.resume_handle is None
    assert resumption(fresh) == {}
    # The history first (re-seeded), then the message sent after the reconnect.
    assert seeded_turns(fresh) == [
        ("user", user_text(0)),
        ("model", reply_text(0)),
        ("user", user_text(3)),
    ]
    assert reconnected.state_restored is True
    assert h.session.state.resumption_handle == fresh.handles[-1]
