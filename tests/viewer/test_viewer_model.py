"""The call view (pure): records in, lanes, reconnects, tool phases and transcript out."""

from __future__ import annotations

import numpy as np
import pytest

from antiphon.journal import Record
from antiphon.protocol import (
    AudioSpan,
    ConnectionLost,
    ConnectionOpened,
    ConnectionRotated,
    Event,
    GenerationAudioDelta,
    GenerationEnded,
    GenerationEndReason,
    GenerationStarted,
    GenerationTextDelta,
    GoAwayReceived,
    InputTranscriptFinal,
    SessionClosed,
    SessionStarted,
    ToolCallFinished,
    ToolCallRequested,
    ToolCallStarted,
    ToolResultDelivered,
    UserAudio,
    UserAudioCommitted,
    UserSpeechStarted,
    UserSpeechStopped,
    event_tag,
)
from antiphon.viewer import CallView, build_view, peaks

T0 = 1_700_000_000_000_000_000


def _records(timed: list[tuple[float, int, Event]]) -> list[Record]:
    """Records at ``ms`` after T0 on ``epoch``, in seq order."""
    return [
        Record(
            session_id="s1",
            seq=seq,
            mono_ns=int(ms * 1e6),
            wall_ns=T0 + int(ms * 1e6),
            epoch=epoch,
            tag=event_tag(event),
            schema=1,
            event=event,
        )
        for seq, (ms, epoch, event) in enumerate(timed)
    ]


def _span(stream: str, offset_ms: int, ms: int, rate: int) -> AudioSpan:
    per_ms = rate * 2 // 1000
    return AudioSpan(stream=stream, offset=offset_ms * per_ms, length=ms * per_ms, sample_rate=rate)


CALL: list[tuple[float, int, Event]] = [
    (0, 0, SessionStarted(session_id="s1", provider="openai", model="m")),
    (10, 1, ConnectionOpened(epoch=1, provider_session_id="p1")),
    (20, 1, UserAudio(epoch=1, span=_span("user", 0, 100, 16_000))),
    (120, 1, UserAudio(epoch=1, span=_span("user", 100, 100, 16_000))),
    (130, 1, UserSpeechStarted(item_id="u1")),
    (300, 1, UserSpeechStopped(item_id="u1")),
    (301, 1, UserAudioCommitted(item_id="u1")),
    (310, 1, GenerationStarted(generation_id="g1")),
    (311, 1, InputTranscriptFinal(item_id="u1", text="weather in Paris?")),
    (320, 1, GenerationTextDelta(generation_id="g1", item_id="a1", text="Let me check.")),
    (330, 1, GenerationAudioDelta(generation_id="g1", span=_span("assistant", 0, 500, 24_000))),
    (340, 1, ToolCallRequested(call_id="c1", name="get_weather", arguments='{"city":"Paris"}')),
    (341, 1, GenerationEnded(generation_id="g1", reason=GenerationEndReason.TOOL_CALL)),
    (342, 1, ToolCallStarted(call_id="c1")),
    (400, 1, UserSpeechStarted(item_id="u2")),  # never stopped: the connection drops
    (450, 1, ConnectionLost(epoch=1, cause="closed:1006", recoverable=True)),
    (460, 1, ToolCallFinished(call_id="c1", name="get_weather", output="sunny")),
    (520, 2, ConnectionOpened(epoch=2, provider_session_id="p2")),
    (521, 2, ToolResultDelivered(call_id="c1", epoch=2)),
    (530, 2, GenerationStarted(generation_id="g2")),
    (540, 2, GenerationTextDelta(generation_id="g2", item_id="a2", text="Sunny.")),
    (550, 2, GenerationEnded(generation_id="g2", reason=GenerationEndReason.COMPLETED)),
    (600, 2, GoAwayReceived(time_left_ms=5000)),
    (700, 3, ConnectionRotated(epoch=3, previous_epoch=2, cause="go_away")),
    (701, 3, ConnectionOpened(epoch=3, provider_session_id="p3", resumed=True)),
    (800, 3, GenerationStarted(generation_id="g3")),  # still open when the journal ends
    (900, 3, SessionClosed()),
]


@pytest.fixture
def view() -> CallView:
    audio = {"user": (bytes(6400), 16_000), "assistant": (bytes(24_000), 24_000)}
    return build_view("s1", _records(CALL), audio)


def test_counts(view: CallView) -> None:
    assert (view.provider, view.model, view.started_wall_ns) == ("openai", "m", T0)
    c = view.counts
    assert (c.records, c.turns, c.generations, c.tool_calls, c.epochs, c.reconnects) == (
        len(CALL),
        1,
        3,
        1,
        3,
        2,
    )
    assert view.duration_ms == 900


def test_epochs_and_reconnects(view: CallView) -> None:
    assert [(e.epoch, e.start_ms, e.end_ms, e.end, e.cause) for e in view.epochs] == [
        (1, 10, 450, "lost", "closed:1006"),
        (2, 520, 700, "rotated", "go_away"),
        (3, 701, 900, "closed", "closed"),
    ]
    assert view.epochs[2].resumed
    lost, rotated = view.reconnects
    assert (lost.kind, lost.previous_epoch, lost.epoch, lost.cause) == (
        "reconnect",
        1,
        2,
        "closed:1006",
    )
    assert (lost.start_ms, lost.end_ms, lost.gap_ms) == (450, 520, 70)
    assert lost.seqs == (15, 17)  # the loss and the new connection's opening
    assert (rotated.kind, rotated.cause, rotated.gap_ms) == ("rotation", "go_away", 0)


def test_speech_generations_and_tool_phases(view: CallView) -> None:
    assert [(s.item_id, s.start_ms, s.end_ms, s.open) for s in view.speech] == [
        ("u1", 130, 300, False),
        ("u2", 400, 450, True),  # ended by the connection loss
    ]
    assert [(g.generation_id, g.start_ms, g.end_ms, g.reason) for g in view.generations] == [
        ("g1", 310, 341, "tool_call"),
        ("g2", 530, 550, "completed"),
        ("g3", 800, 900, "open"),
    ]
    assert view.generations[0].text == "Let me check."
    assert view.generations[0].audio_ms == 500
    (call,) = view.tools
    assert (call.name, call.outcome, call.output, call.start_ms, call.end_ms) == (
        "get_weather",
        "ok",
        "sunny",
        340,
        521,
    )
    assert [(p.phase, p.t_ms, p.epoch) for p in call.phases] == [
        ("requested", 340, 1),
        ("running", 342, 1),
        ("result", 460, 1),
        ("delivered", 521, 2),
    ]
    assert [m.kind for m in view.markers] == ["provider.go_away"]


def test_transcript_is_the_reducers_conversation_in_time(view: CallView) -> None:
    assert [(e.role, e.text, e.t_ms) for e in view.transcript] == [
        ("user", "weather in Paris?", 130),  # placed where the user started speaking
        ("assistant", "Let me check.", 310),
        ("tool_call", 'get_weather({"city":"Paris"})', 340),
        ("tool_output", "ok: sunny", 460),
        ("assistant", "Sunny.", 530),
    ]
    assert view.transcript[0].seq == 4


def test_audio_runs_place_each_stream_on_the_call_axis(view: CallView) -> None:
    user, assistant = view.audio
    assert (user.stream, user.sample_rate, user.duration_ms) == ("user", 16_000, 200)
    # Two contiguous chunks of one epoch make one run, ending when its last chunk has played.
    assert [(r.t0_ms, r.t1_ms, r.a0_ms, r.a1_ms) for r in user.runs] == [(20, 220, 0, 200)]
    assert [(r.t0_ms, r.a0_ms, r.a1_ms) for r in assistant.runs] == [(330, 0, 500)]
    assert assistant.duration_ms == 500


def test_a_damaged_journal_is_shown_up_to_the_damage() -> None:
    from antiphon.viewer import CallBuilder

    builder = CallBuilder("s1")
    for record in _records(CALL[:3]):
        builder.add(record)
    builder.damaged("record 3: bad crc")
    view = builder.finish({})
    assert view.damage == "record 3: bad crc"
    assert view.counts.records == 3
    assert view.epochs[0].end == "open"
    assert [t.sample_rate for t in view.audio] == [0, 0]


def test_peaks() -> None:
    samples = np.zeros(1000, dtype="<i2")
    samples[10] = -32768
    samples[990] = 16384
    got = peaks(samples.tobytes(), bins=10)
    assert got == (1.0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5)
    assert peaks(b"", bins=10) == ()
    assert len(peaks(bytes(8), bins=100)) == 4  # never more bins than samples
