"""End to end: Nova Sonic sessions through the real aws-sdk-bedrock-runtime client.

Every test drives a real session (``antiphon.open_session`` with the ``NovaSonic`` preset,
whose connector uses ``aws-sdk-bedrock-runtime`` over ``awscrt``) against
:class:`~antiphon.emulators.nova.NovaEmulator` on 127.0.0.1 (TLS + HTTP/2 event streams) and
asserts from the emulator's own record of what each stream received: every user frame, in
order, with a repeat only of the audio since the last completed user turn; the history blocks a
new stream was primed with (and Nova's caps on them); the tool results; and how each stream
ended (the clean ``contentEnd`` / ``promptEnd`` / ``sessionEnd`` close).

The SDK is asyncio-only, so these tests run on asyncio only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import msgspec
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
from antiphon.adapters.nova import (
    DEFAULT_LIMITS,
    NovaConnector,
    NovaCredentials,
    NovaOptions,
    NovaSonic,
    cut_utf8,
)
from antiphon.adapters.nova._leftovers import error_filter_installed
from antiphon.emulators import Fault
from antiphon.emulators._model import (
    DEFAULT_SCRIPT,
    Script,
    conversation_audio,
    silence,
    utterance_audio,
)
from antiphon.emulators.nova import (
    IDLE_RESET_MESSAGE,
    MODEL_TIMEOUT_MESSAGE,
    NovaEmulator,
    NovaRecord,
)
from antiphon.protocol import (
    AssistantMessage,
    ConnectionLost,
    GenerationEndReason,
    ToolOutcome,
    UserMessage,
)

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

E = TypeVar("E")

RATE = DEFAULT_LIMITS.input_sample_rate  # 16 kHz
FRAME_BYTES = DEFAULT_LIMITS.input_frame_bytes  # 32 ms of 16 kHz PCM16: 1024 bytes
CLOSE_SEQUENCE = ["contentEnd", "promptEnd", "sessionEnd"]
# Nova's toolResult content is a JSON string: a plain-text output goes as {"result": ...},
# and the scripted model speaks the content it received.
FOLLOW_UP = "The weather in Paris is " + json.dumps({"result": f"{WEATHER} in Paris"}) + "."


def frames_of(pcm: bytes) -> list[bytes]:
    return cut_frames(pcm, FRAME_BYTES)


@pytest.fixture
def anyio_backend() -> str:
    # aws-sdk-bedrock-runtime and awscrt are asyncio-only.
    return "asyncio"


# ------------------------------------------------------------------------------ the harness


class _StampedEvents(list[dict[str, Any]]):
    """A stream record's frame list that also logs each input event into one shared,
    cross-stream order (the emulator's arrival order), so tests can tell whether stream 1
    was primed before stream 0 was closed."""

    def __init__(self, index: int, order: list[tuple[int, str]]) -> None:
        super().__init__()
        self._index = index
        self._order = order

    def append(self, event: dict[str, Any]) -> None:
        super().append(event)
        body = event.get("event") or {}
        name = next(iter(body), "?")
        kind = (body.get(name) or {}).get("type", "") if isinstance(body, dict) else ""
        self._order.append((self._index, f"{name}:{kind}" if kind else name))


class _StampedStreams(list[NovaRecord]):
    def __init__(self) -> None:
        super().__init__()
        self.order: list[tuple[int, str]] = []

    def append(self, record: NovaRecord) -> None:
        record.frames = _StampedEvents(record.index, self.order)
        super().append(record)


@dataclass(kw_only=True)
class Harness(SessionLog):
    """One session against one emulator, with everything the app saw and sent."""

    rate = RATE
    frame_bytes = FRAME_BYTES
    emu: NovaEmulator
    streams: _StampedStreams
    provider: RecordingNovaSonic


class RecordingNovaSonic(NovaSonic):
    """The preset, keeping each connector it builds (a session builds one)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.connectors: list[NovaConnector] = []

    def new_connector(self) -> NovaConnector:
        connector = super().new_connector()
        self.connectors.append(connector)
        return connector


def make_provider(emu: NovaEmulator, **limits: Any) -> RecordingNovaSonic:
    return RecordingNovaSonic(
        endpoint_uri=emu.endpoint_uri,
        ca_file=emu.ca_pem_path,
        region="us-east-1",
        credentials=NovaCredentials(access_key_id="test", secret_access_key="test"),
        limits=msgspec.structs.replace(DEFAULT_LIMITS, **limits),
        # No shared AWS profile of the machine leaks in.
        config_file_path="/nonexistent/aws-config",
        credentials_file_path="/nonexistent/aws-credentials",
    )


@asynccontextmanager
async def open_harness(
    *,
    tools: Sequence[antiphon.Tool | Callable[..., Any]] = (),
    instructions: str = "Be brief.",
    limits: dict[str, Any] | None = None,
    **emulator: Any,
) -> AsyncIterator[Harness]:
    """Emulator + session + event reader. On exit the session is closed, the emulator has
    recorded how every stream ended, and the connector has released what the SDK left behind.

    awscrt's own request-body task fails, unretrieved, with error 2080 when a stream ends
    while the client still writes (PROVIDERS.md 1.9); the anyio test runner would raise that
    error into whichever test collects the task. The test does not hide it: the connector
    must (its error filter, installed when it connects).
    """
    emulator.setdefault("reply_speed", None)  # Nova generates faster than real time
    async with _harness(tools, instructions, limits, emulator) as harness:
        yield harness


@asynccontextmanager
async def _harness(
    tools: Sequence[antiphon.Tool | Callable[..., Any]],
    instructions: str,
    limits: dict[str, Any] | None,
    emulator: dict[str, Any],
) -> AsyncIterator[Harness]:
    async with NovaEmulator(**emulator) as emu:
        streams = _StampedStreams()
        emu.records = streams
        provider = make_provider(emu, **(limits or {}))
        async with antiphon.open_session(
            provider,
            instructions=instructions,
            tools=tools,
            journal=antiphon.MemoryJournal(),
            backoff=FAST,
        ) as session:
            harness = Harness(emu=emu, session=session, streams=streams, provider=provider)
            async with anyio.create_task_group() as tg:
                tg.start_soon(harness.read)
                try:
                    yield harness
                finally:
                    await session.aclose()
        # Every stream the client ended has its end of input recorded before the emulator
        # stops (stopping aborts what is still open).
        with anyio.move_on_after(2.0):
            while not all(s.input_closed or s.errors for s in emu.records):
                await anyio.sleep(0.005)
    await release_connectors(provider)


async def release_connectors(provider: RecordingNovaSonic) -> None:
    """Close the session's connector as the runtime does when a session ends (a second
    ``aclose()`` is a no-op), and wait until no SDK task it held still runs and its error
    filter is gone (attempts still running at ``aclose`` keep it until they end)."""
    loop = asyncio.get_running_loop()
    for connector in provider.connectors:
        with anyio.fail_after(30.0):
            await connector.aclose()
    with anyio.fail_after(30.0):
        while any(c.leftover_tasks for c in provider.connectors) or error_filter_installed(loop):
            await anyio.sleep(0.005)


# ----------------------------------------------------------------------- audio continuity


@dataclass(frozen=True, kw_only=True)
class AudioReport:
    expected: int  # frames the app's audio makes
    spans: list[tuple[int, int]]  # per stream: [start, end) frame indexes
    duplicates: int  # frames received more than once


def audio_continuity(expected: list[bytes], streams: Sequence[NovaRecord]) -> AudioReport:
    """Every app frame reached the emulator, in order, with no gap: each stream received one
    contiguous run of the app's frames, starting at or before where the previous stream's run
    ended (a repeat is allowed, a gap is not), and the runs cover every frame."""
    index = {frame: i for i, frame in enumerate(expected)}
    assert len(index) == len(expected), "test audio must have distinct frames"
    spans: list[tuple[int, int]] = []
    covered = 0
    for record in streams:
        chunks = frames_received(record.audio, FRAME_BYTES)
        if not chunks:
            spans.append((covered, covered))
            continue
        assert chunks[0] in index, f"stream {record.index} got audio the app never sent"
        start = index[chunks[0]]
        assert chunks == expected[start : start + len(chunks)], (
            f"stream {record.index}: frames out of order or foreign"
        )
        assert start <= covered, (
            f"stream {record.index} starts at frame {start}: frames {covered}..{start - 1} lost"
        )
        covered = max(covered, start + len(chunks))
        spans.append((start, start + len(chunks)))
    assert covered == len(expected), f"frames {covered}..{len(expected) - 1} never arrived"
    received = sum(len(frames_received(s.audio, FRAME_BYTES)) for s in streams)
    return AudioReport(expected=len(expected), spans=spans, duplicates=received - len(expected))


def check_audio(h: Harness) -> AudioReport:
    """Continuity from the emulator's record, and the session's resend accounting."""
    report = audio_continuity(frames_of(bytes(h.sent_pcm)), h.emu.records)
    audio = h.session.statistics().audio
    assert audio["frames_in"] == report.expected
    assert audio["frames_evicted"] == 0
    assert audio["frames_skipped"] == 0
    # A resent frame reached the emulator twice, or its first copy died with its stream.
    assert audio["frames_resent"] >= report.duplicates
    return report


def committed_frame(pcm_spans: list[tuple[int, int]], k: int) -> int:
    """First frame after utterance ``k`` of a conversation track (sample positions)."""
    return -(-pcm_spans[k][1] * 2 // FRAME_BYTES)


def history_of(record: NovaRecord) -> list[tuple[str, str]]:
    return list(record.history)


def primed_with(record: NovaRecord, system: str) -> None:
    """The stream's setup: session, prompt, the SYSTEM block, then the one audio block."""
    names = record.event_names
    assert names[:2] == ["sessionStart", "promptStart"]
    assert record.system == system
    audio_starts = [
        i
        for i, e in enumerate(record.frames)
        if (e["event"].get("contentStart") or {}).get("type") == "AUDIO"
    ]
    assert len(audio_starts) == 1
    # History blocks (if any) all came before the audio block.
    assert "audioInput" not in names[: audio_starts[0]]


# ------------------------------------------------------------------------------ happy path


async def test_happy_path_three_turns_with_a_tool() -> None:
    pcm, _ = conversation_audio([0, 1, 3], sample_rate=RATE, gap_s=0.6)
    pcm += b"\x01\x00" * 100  # a partial last frame: the session pads it on close
    async with open_harness(tools=[get_weather], instructions="Be brief.") as h:
        await h.send(pcm)
        await h.wait_until(lambda: len(h.completed()) >= 3)
    emu = h.emu

    # One stream, closed cleanly by the client, no reconnect.
    assert len(emu.records) == 1
    rec = emu.records[0]
    assert rec.closed_cleanly
    assert rec.model_id == "amazon.nova-2-sonic-v1:0"
    assert rec.headers["authorization"].startswith("AWS4-HMAC-SHA256")
    assert "/bedrock/aws4_request" in rec.headers["authorization"]
    assert rec.errors == []
    assert h.reconnects() == []
    primed_with(rec, "Be brief.")
    assert rec.history == []  # a fresh session has nothing to prime
    prompt = rec.frames[1]["event"]["promptStart"]
    tools = prompt["toolConfiguration"]["tools"]
    assert [t["toolSpec"]["name"] for t in tools] == ["get_weather"]
    assert json.loads(tools[0]["toolSpec"]["inputSchema"]["json"])["properties"]["city"]

    # Every user frame reached the emulator exactly once, in order.
    report = check_audio(h)
    assert report.duplicates == 0
    assert report.spans == [(0, report.expected)]
    assert h.session.statistics().audio["frames_resent"] == 0

    finals = [e.text for e in h.of(antiphon.UserTranscript) if e.final]
    assert finals == [user_text(0), user_text(1), user_text(3)]
    assert rec.transcripts == finals
    follow_up = FOLLOW_UP
    assert [e.text for e in h.completed()] == [reply_text(0), follow_up, reply_text(3)]
    assert rec.replies == [reply_text(0), follow_up, reply_text(3)]
    # The reply audio is the scripted speech, whole (24 kHz, 250 ms a word).
    for end in h.completed():
        assert len(h.assistant_audio(end.generation_id)) == len(end.text.split()) * 250 * 48

    kinds = [
        (type(i).__name__, getattr(i, "text", getattr(i, "name", "")))
        for i in h.session.state.items
    ]
    assert kinds == [
        ("UserMessage", user_text(0)),
        ("AssistantMessage", reply_text(0)),
        ("UserMessage", user_text(1)),
        ("FunctionCall", "get_weather"),
        ("FunctionOutput", "get_weather"),
        ("AssistantMessage", follow_up),
        ("UserMessage", user_text(3)),
        ("AssistantMessage", reply_text(3)),
    ]


# ------------------------------------------------------------------------------- tool call


async def test_tool_call_round() -> None:
    pcm, _ = conversation_audio([1], sample_rate=RATE, gap_s=0.6)
    async with open_harness(tools=[get_weather]) as h:
        await h.send(pcm)
        follow_up = await h.wait_for(
            antiphon.ReplyEnded, lambda e: e.reason is GenerationEndReason.COMPLETED
        )
    rec = h.emu.records[0]
    started = h.of(antiphon.ToolCallRequested)
    assert [(s.name, json.loads(s.arguments)) for s in started] == [
        ("get_weather", {"city": "Paris"})
    ]
    ended = h.of(antiphon.ToolCallFinished)
    assert [(e.call_id, e.outcome, e.output) for e in ended] == [
        (started[0].call_id, ToolOutcome.OK, f"{WEATHER} in Paris")
    ]
    # The model's call id came back with the result, once, as a JSON string.
    assert rec.tool_calls == [(started[0].call_id, "get_weather", '{"city": "Paris"}')]
    assert len(rec.tool_results) == 1
    call_id, content = rec.tool_results[0]
    assert call_id == started[0].call_id
    assert f"{WEATHER} in Paris" in json.dumps(json.loads(content))
    tool_blocks = [
        e["event"]["contentStart"]
        for e in rec.frames
        if (e["event"].get("contentStart") or {}).get("type") == "TOOL"
    ]
    assert [b["toolResultInputConfiguration"]["toolUseId"] for b in tool_blocks] == [call_id]
    assert [b["role"] for b in tool_blocks] == ["TOOL"]
    # The turn: the tool round ends one generation, the follow-up is spoken in another.
    ends = h.of(antiphon.ReplyEnded)
    assert [e.reason for e in ends] == [
        GenerationEndReason.TOOL_CALL,
        GenerationEndReason.COMPLETED,
    ]
    assert follow_up.text == FOLLOW_UP
    assert h.assistant_audio(follow_up.generation_id)
    assert h.reconnects() == []
    assert rec.closed_cleanly
    check_audio(h)


# -------------------------------------------------------------------------------- barge-in


async def test_barge_in_interrupts_the_reply() -> None:
    story, _ = conversation_audio([2], sample_rate=RATE, gap_s=0.5, seed=3)
    barge = utterance_audio(0, sample_rate=RATE, duration_s=0.4, seed=12) + silence(
        0.5, sample_rate=RATE, seed=13
    )
    async with open_harness(reply_speed=1.0) as h:
        await h.send(story)
        first = await h.wait_for(antiphon.ReplyStarted)
        await h.wait_for(antiphon.AssistantAudio, count=3)
        await h.send(barge)
        cut = await h.wait_for(
            antiphon.ReplyEnded, lambda e: e.generation_id == first.generation_id
        )
        answer = await h.wait_for(
            antiphon.ReplyEnded, lambda e: e.reason is GenerationEndReason.COMPLETED
        )
    rec = h.emu.records[0]
    assert cut.reason is GenerationEndReason.INTERRUPTED
    assert answer.text == reply_text(0)
    assert answer.generation_id != first.generation_id
    # The emulator cut the story itself (Nova has no client cancel), once.
    assert len(rec.interrupted) == 1
    assert rec.replies == [reply_text(2), reply_text(0)]
    story_audio = h.assistant_audio(first.generation_id)
    full_story = len(reply_text(2).split()) * 250 * 48
    assert 0 < len(story_audio) < full_story
    # The cut reply is in the history as interrupted, with only the words spoken.
    assistant = [i for i in h.session.state.items if isinstance(i, AssistantMessage)]
    assert [a.interrupted for a in assistant] == [True, False]
    assert reply_text(2).startswith(assistant[0].text)
    assert len(assistant[0].text) < len(reply_text(2))
    assert len(h.emu.records) == 1
    assert h.reconnects() == []
    report = check_audio(h)
    assert report.duplicates == 0


# ---------------------------------------------------------------------------- rotation


async def test_proactive_rotation_is_make_before_break() -> None:
    # Hello; once it is answered, 300 ms more of the user's silence; the stream reaches
    # rotate_after_s (1 s) after that, at a turn boundary, and the session rotates. The rest
    # of the conversation goes to the new stream.
    pcm, spans = conversation_audio([0, 3], sample_rate=RATE, gap_s=1.2, seed=5)
    head_end = committed_frame(spans, 0) + 15  # the first turn, and enough silence to end it
    mid_end = head_end + 10
    head = pcm[: head_end * FRAME_BYTES]
    mid = pcm[head_end * FRAME_BYTES : mid_end * FRAME_BYTES]
    tail = pcm[mid_end * FRAME_BYTES :]
    async with open_harness(
        limits={"rotate_after_s": 1.0, "min_rotation_interval_s": 0.1}, instructions="Be brief."
    ) as h:
        opened = anyio.current_time()
        await h.send(head)
        first = await h.wait_for(antiphon.ReplyEnded)
        await h.send(mid)  # sent after the turn was committed: the new stream replays it
        assert h.reconnects() == [], "the stream rotated before the test was ready"
        rotated = await h.wait_for(antiphon.Reconnected)
        rotated_after = anyio.current_time() - opened
        # The old stream is closed cleanly once the new one carries the session.
        await h.wait_until(lambda: h.emu.records[0].closed_cleanly)
        await h.send(tail)
        await h.wait_until(lambda: len(h.completed()) >= 2)
        second = h.completed()[1]
    emu = h.emu
    assert rotated.cause == "rotation:age"
    assert rotated.state_restored is True  # at a turn boundary: nothing was cut
    assert rotated_after >= 1.0
    assert len(h.reconnects()) >= 1
    assert all(r.cause == "rotation:age" and r.state_restored for r in h.reconnects())
    old, new = emu.records[0], emu.records[1]

    # Make-before-break, from the emulator's arrival order: the new stream was opened and
    # primed (system, history, the audio block) before the old one got its close sequence.
    order = h.streams.order
    new_ready = order.index((1, "contentStart:AUDIO"))
    old_closing = [i for i, (s, name) in enumerate(order) if s == 0 and name == "promptEnd"]
    assert old_closing
    assert new_ready < old_closing[0]
    assert old.closed_cleanly
    assert old.errors == []
    assert old.event_names[-3:] == CLOSE_SEQUENCE
    assert new.errors == []

    # The new stream was primed with the system prompt and the first turn.
    primed_with(new, "Be brief.")
    assert history_of(new) == [("USER", user_text(0)), ("ASSISTANT", reply_text(0))]
    assert [e.text for e in h.completed()] == [reply_text(0), reply_text(3)]
    assert first.text == reply_text(0)
    # Both replies are whole: the rotation waited for the turn boundary.
    for end in (first, second):
        assert len(h.assistant_audio(end.generation_id)) == len(end.text.split()) * 250 * 48
    assert old.replies == [reply_text(0)]
    assert reply_text(3) in [r for s in emu.records[1:] for r in s.replies]
    assert [e.text for e in h.of(antiphon.UserTranscript) if e.final] == [
        user_text(0),
        user_text(3),
    ]

    # Zero lost audio: every frame arrived, and the new stream started with a replay of the
    # audio since the last completed user turn (at least the silence sent after the answer),
    # never earlier than the end of that turn.
    report = check_audio(h)
    assert report.spans[0] == (0, mid_end)
    assert committed_frame(spans, 0) <= report.spans[1][0] <= head_end
    assert report.duplicates >= mid_end - head_end
    assert report.duplicates == sum(
        max(0, report.spans[i - 1][1] - report.spans[i][0]) for i in range(1, len(report.spans))
    )


# ------------------------------------------------------------------- the stream limit


async def test_stream_limit_reconnects_and_reprimes_history_within_limits() -> None:
    # A long conversation: 24 typed turns, each longer than Nova's 1000-byte message cap
    # (two-byte characters, so a cut must respect UTF-8), then the stream limit.
    script = Script(utterances=DEFAULT_SCRIPT.utterances, unknown_text="Noted.")
    texts = [f"Note {i:02d}: " + "é" * 700 for i in range(24)]
    async with open_harness(script=script) as h:
        for i, text in enumerate(texts):
            await h.session.send_text(text)
            await h.wait_for(antiphon.ReplyEnded, count=i + 1)
        # The stream is now old: the next tick reaches the (shortened) stream limit.
        h.emu.stream_limit_s = 0.2
        reconnected = await h.wait_for(antiphon.Reconnected)
        h.emu.stream_limit_s = None
        # The new stream carries the conversation on.
        await h.send(conversation_audio([3], sample_rate=RATE, gap_s=0.6)[0])
        goodbye = await h.wait_for(
            antiphon.ReplyEnded, lambda e: e.text == reply_text(3), timeout=30.0
        )
    old, new = h.emu.records[0], h.emu.records[1]
    assert "ModelTimeoutException" in reconnected.cause
    assert reconnected.state_restored is False  # the history had to be cut to fit Nova
    assert goodbye.reason is GenerationEndReason.COMPLETED
    assert old.errors == [("modelTimeoutException", MODEL_TIMEOUT_MESSAGE)]
    assert new.errors == []
    # Live text was cut to 1000 bytes on a character boundary before it was sent.
    assert len(old.texts) == len(texts)
    for sent, got in zip(texts, old.texts, strict=True):
        assert got == cut_utf8(sent, 1000)
        assert len(got.encode()) <= 1000
        assert sent.startswith(got)

    # The history: the newest 40 messages, each at most 1000 UTF-8 bytes, the first a USER
    # message — the emulator enforces the same caps and would have rejected anything else.
    history = history_of(new)
    assert len(history) == 40
    assert all(len(text.encode()) <= 1000 for _, text in history)
    assert sum(len(text.encode()) for _, text in history) <= 40_000
    assert history[0][0] == "USER"
    expected: list[tuple[str, str]] = []
    for text in texts[-20:]:
        expected += [("USER", cut_utf8(text, 1000)), ("ASSISTANT", "Noted.")]
    assert history == expected
    primed_with(new, "Be brief.")
    # The whole conversation is still in the session's state.
    users = [i for i in h.session.state.items if isinstance(i, UserMessage)]
    assert [u.text for u in users] == [*texts, user_text(3)]
    check_audio(h)


async def test_stream_limit_with_shortened_history_is_not_reported_as_restored() -> None:
    script = Script(utterances=DEFAULT_SCRIPT.utterances, unknown_text="Noted.")
    async with open_harness(script=script) as h:
        for i in range(22):
            await h.session.send_text(f"Note {i:02d}.")
            await h.wait_for(antiphon.ReplyEnded, count=i + 1)
        h.emu.stream_limit_s = 0.2
        reconnected = await h.wait_for(antiphon.Reconnected)
        h.emu.stream_limit_s = None
    assert len(h.emu.records[1].history) == 40  # 44 messages did not fit
    assert reconnected.state_restored is False


async def test_stream_limit_mid_reply_is_reported_as_not_restored() -> None:
    # The limit lands while a reply is being spoken: the new stream cannot hold the unsaid
    # part, and the session says so.
    story, _ = conversation_audio([2], sample_rate=RATE, gap_s=0.5, seed=4)
    async with open_harness(reply_speed=1.0) as h:
        await h.send(story)
        cut_reply = await h.wait_for(antiphon.ReplyStarted)
        await h.wait_for(antiphon.AssistantAudio, count=3)
        h.emu.fault(Fault.expire())  # the stream limit
        reconnected = await h.wait_for(antiphon.Reconnected)
        ended = await h.wait_for(
            antiphon.ReplyEnded, lambda e: e.generation_id == cut_reply.generation_id
        )
    assert "ModelTimeoutException" in reconnected.cause
    assert reconnected.state_restored is False
    assert ended.reason is not GenerationEndReason.COMPLETED
    assert h.events.index(ended) < h.events.index(reconnected)
    # The new stream was primed with the user's turn (its audio is not replayed: the turn
    # was completed on the old stream).
    new = h.emu.records[1]
    assert history_of(new)[0] == ("USER", user_text(2))
    check_audio(h)


@pytest.mark.parametrize("fault", ["modelTimeoutException", "validationException"])
async def test_a_stream_ended_by_a_service_exception_is_closed_cleanly(fault: str) -> None:
    pcm, _ = conversation_audio([0], sample_rate=RATE, gap_s=0.6, seed=2)
    async with open_harness() as h:
        await h.send(pcm)
        await h.wait_for(antiphon.ReplyEnded)
        h.emu.fault(Fault.error(fault, IDLE_RESET_MESSAGE))
        await h.wait_for(antiphon.Reconnected)
        await h.wait_until(lambda: h.emu.records[0].input_closed, timeout=30.0)
    assert h.emu.records[0].event_names[-3:] == CLOSE_SEQUENCE


async def test_close_sends_the_audio_already_accepted() -> None:
    # Nova's signed sends are slower than a websocket's: closing right after a burst of audio
    # must still deliver all of it (and the padded tail) before the close sequence.
    pcm, _ = conversation_audio([0], sample_rate=RATE, gap_s=2.0, seed=11)
    async with open_harness() as h:
        await h.session.send_audio(pcm, sample_rate=RATE)
        h.sent_pcm += pcm
        await h.session.aclose()
    report = audio_continuity(frames_of(bytes(h.sent_pcm)), h.emu.records)
    assert report.duplicates == 0


# ------------------------------------------------------------------------- idle reset


async def test_idle_reset_is_a_recoverable_reconnect() -> None:
    pcm, spans = conversation_audio([0, 3], sample_rate=RATE, gap_s=0.6, seed=6)
    first_turn = committed_frame(spans, 0) * FRAME_BYTES + 15 * FRAME_BYTES
    head, tail = pcm[:first_turn], pcm[first_turn:]
    async with open_harness(idle_reset_s=0.5) as h:
        await h.send(head)
        await h.wait_for(antiphon.ReplyEnded)
        # The user says nothing for longer than the idle limit.
        reconnected = await h.wait_for(antiphon.Reconnected, timeout=30.0)
        await h.send(tail)
        await h.wait_until(lambda: len(h.completed()) >= 2)
    old, new = h.emu.records[0], h.emu.records[1]
    assert "ValidationException" in reconnected.cause
    assert reconnected.state_restored is True
    assert old.errors == [("validationException", IDLE_RESET_MESSAGE)]
    assert history_of(new) == [("USER", user_text(0)), ("ASSISTANT", reply_text(0))]
    assert [e.text for e in h.completed()] == [reply_text(0), reply_text(3)]
    report = check_audio(h)
    assert report.spans[1][0] >= committed_frame(spans, 0)


async def test_a_silent_user_is_kept_alive_past_the_idle_limit() -> None:
    # The emulator resets a stream after 1 s without input; the preset's limit is set a
    # little under it (as the real default is: 170 s against Nova's ~175 s), so the runtime
    # sends a keep-alive every 0.25 s while the app sends nothing at all.
    idle_reset_s = 1.0
    keepalive_frames = NovaOptions().keepalive_frames
    async with open_harness(idle_reset_s=idle_reset_s, limits={"idle_timeout_s": 0.5}) as h:
        started = anyio.current_time()
        stream = h.emu.records[0]
        # Six keep-alives, at least 0.25 s apart: the stream outlives the idle limit.
        await h.wait_until(lambda: len(stream.audio) >= 6 * keepalive_frames, timeout=10.0)
        assert anyio.current_time() - started > idle_reset_s
    assert len(h.emu.records) == 1
    assert stream.errors == []
    assert not h.of(antiphon.Reconnected)
    journal = h.session.journal
    assert not [e for e in journal.events(h.session.session_id) if isinstance(e, ConnectionLost)]
    # What kept it alive: runs of silent audio, and nothing else from the app.
    assert h.sent_pcm == b""
    assert len(stream.audio) % keepalive_frames == 0
    assert all(chunk == bytes(FRAME_BYTES) for chunk in stream.audio)
    assert stream.closed_cleanly


# ------------------------------------------------------------------------------- drop


async def test_tcp_drop_reconnects_with_no_lost_audio() -> None:
    pcm, spans = conversation_audio([0, 3], sample_rate=RATE, gap_s=0.6, seed=8)
    first_turn = committed_frame(spans, 0) * FRAME_BYTES + 15 * FRAME_BYTES
    head, tail = pcm[:first_turn], pcm[first_turn:]
    async with open_harness() as h:
        await h.send(head)
        await h.wait_for(antiphon.ReplyEnded)
        h.emu.fault(Fault.drop())
        # The user keeps talking through the drop: the runtime buffers and replays.
        await h.send(tail)
        reconnected = await h.wait_for(antiphon.Reconnected)
        await h.wait_until(lambda: len(h.completed()) >= 2)
    old, new = h.emu.records[0], h.emu.records[1]
    # receive() returned None before our sessionEnd: an abnormal close, recoverable.
    assert reconnected.cause.startswith("closed:")
    assert reconnected.state_restored is True
    assert not old.closed_cleanly  # it was aborted under the client
    assert old.errors == []
    assert history_of(new) == [("USER", user_text(0)), ("ASSISTANT", reply_text(0))]
    assert [e.text for e in h.completed()] == [reply_text(0), reply_text(3)]
    assert new.transcripts == [user_text(3)]
    report = check_audio(h)
    # The replay starts after the committed first turn, and covers what the drop lost.
    assert committed_frame(spans, 0) <= report.spans[1][0] <= report.spans[0][1]
    assert new.closed_cleanly


# ------------------------------------------------------------- what the SDK leaves behind


async def test_the_connector_filters_sdk_noise_and_releases_it_when_closed() -> None:
    # A stream limit and a drop end streams while the client still has input queued: the
    # awscrt body-writer errors that follow are the connector's to hide, not the app's.
    loop = asyncio.get_running_loop()
    previous_handler = loop.get_exception_handler()
    assert not error_filter_installed(loop)
    pcm, spans = conversation_audio([0, 3], sample_rate=RATE, gap_s=0.6, seed=8)
    first_turn = committed_frame(spans, 0) * FRAME_BYTES + 15 * FRAME_BYTES
    async with open_harness() as h:
        await h.send(pcm[:first_turn])
        await h.wait_for(antiphon.ReplyEnded)
        # Installed by the connector on its first connect, for the session's lifetime.
        assert error_filter_installed(loop)
        h.emu.fault(Fault.expire())  # the stream limit
        await h.wait_for(antiphon.Reconnected)
        h.emu.fault(Fault.drop())
        await h.send(pcm[first_turn:])
        await h.wait_for(antiphon.Reconnected, count=2)
        await h.wait_until(lambda: len(h.completed()) >= 2)
        assert error_filter_installed(loop)
    # The harness closed the connector: no SDK task it held is still running, and the
    # loop's exception handler is the one from before the session.
    [connector] = h.provider.connectors
    assert connector.leftover_tasks == 0
    assert not error_filter_installed(loop)
    assert loop.get_exception_handler() is previous_handler
    # Idempotent: a second close has nothing left to do.
    await connector.aclose()
    assert not error_filter_installed(loop)
