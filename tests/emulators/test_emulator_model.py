"""The emulators' scripted model: audio generation, VAD, recognition, script, session."""

from __future__ import annotations

import hashlib
import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from antiphon.emulators._model import (
    DEFAULT_SCRIPT,
    UTTERANCE_COUNT,
    EnergyVad,
    ModelAction,
    ModelSession,
    Reply,
    Script,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    Turn,
    UserSpeechStarted,
    UserTurn,
    VadEvent,
    conversation_audio,
    recognize,
    reply_audio,
    reply_transcript_deltas,
    silence,
    user_transcript,
    utterance_audio,
    utterance_freq,
)
from antiphon.errors import CodecError

FRAME_MS = 20


def _ms(samples: int, rate: int) -> int:
    return samples * 1000 // rate


def _feed_chunked(vad: EnergyVad, pcm: bytes, sizes: list[int]) -> list[VadEvent]:
    events: list[VadEvent] = []
    pos = 0
    i = 0
    while pos < len(pcm):
        n = sizes[i % len(sizes)]
        events += vad.feed(pcm[pos : pos + n])
        pos += n
        i += 1
    return events


def _check_boundaries(events: list[VadEvent], bounds: list[tuple[int, int]], rate: int) -> None:
    starts = [e for e in events if isinstance(e, SpeechStarted)]
    stops = [e for e in events if isinstance(e, SpeechStopped)]
    assert len(starts) == len(stops) == len(bounds)
    for start, stop, (s, e) in zip(starts, stops, bounds, strict=True):
        assert abs(start.audio_ms - _ms(s, rate)) <= FRAME_MS
        assert abs(stop.audio_ms - _ms(e, rate)) <= FRAME_MS
        assert stop.start_ms == start.audio_ms
        assert len(stop.pcm) == (stop.audio_ms - stop.start_ms) * rate // 1000 * 2


@pytest.mark.parametrize("rate", [8000, 16_000, 24_000, 48_000])
def test_vad_finds_each_utterance(rate: int) -> None:
    pcm, bounds = conversation_audio([0, 1, 2, 3], sample_rate=rate, gap_s=0.7)
    events = EnergyVad(rate).feed(pcm)
    _check_boundaries(events, bounds, rate)
    stops = [e for e in events if isinstance(e, SpeechStopped)]
    assert [recognize(e.pcm, rate) for e in stops] == [0, 1, 2, 3]


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=7000), min_size=1, max_size=8),
    gap=st.sampled_from([0.45, 0.613, 1.0]),
)
def test_vad_is_independent_of_chunking(sizes: list[int], gap: float) -> None:
    rate = 16_000
    pcm, bounds = conversation_audio([2, 5], sample_rate=rate, gap_s=gap, seed=3)
    whole = EnergyVad(rate).feed(pcm)
    chunked = _feed_chunked(EnergyVad(rate), pcm, sizes)
    assert chunked == whole
    _check_boundaries(chunked, bounds, rate)


def test_vad_ignores_short_blips_and_keeps_the_clock() -> None:
    rate = 16_000
    blip = utterance_audio(0, sample_rate=rate, duration_s=0.03)
    pcm = silence(0.5, sample_rate=rate, seed=1) + blip + silence(0.5, sample_rate=rate, seed=2)
    vad = EnergyVad(rate)
    assert vad.feed(pcm) == []
    assert vad.audio_ms == _ms(len(pcm) // 2, rate) // FRAME_MS * FRAME_MS


def test_vad_rejects_unusable_frame_size() -> None:
    with pytest.raises(CodecError):
        EnergyVad(11_025, frame_ms=20 + 1)


@pytest.mark.parametrize("rate", [16_000, 24_000])
@pytest.mark.parametrize("k", range(UTTERANCE_COUNT))
def test_recognize_maps_every_utterance_back(k: int, rate: int) -> None:
    assert recognize(utterance_audio(k, sample_rate=rate), rate) == k
    assert recognize(utterance_audio(k, sample_rate=rate, duration_s=0.3, seed=9), rate) == k


def test_recognize_rejects_what_is_no_utterance() -> None:
    rate = 24_000
    assert recognize(silence(0.5, sample_rate=rate, seed=0), rate) is None
    assert recognize(b"", rate) is None
    for chunk in reply_audio("Hello there friend", sample_rate=rate, chunk_ms=200)[::2]:
        assert recognize(chunk, rate) is None
    with pytest.raises(CodecError):
        recognize(b"\x00\x01\x02", rate)


def test_utterance_freq_range() -> None:
    assert [utterance_freq(k) for k in (0, 9)] == [300.0, 1650.0]
    with pytest.raises(ValueError, match="utterance index"):
        utterance_freq(UTTERANCE_COUNT)


def _frame_hashes(pcm: bytes, rate: int) -> list[str]:
    step = rate * FRAME_MS // 1000 * 2
    return [hashlib.sha256(pcm[i : i + step]).hexdigest() for i in range(0, len(pcm), step)]


def test_every_frame_of_a_conversation_is_distinct() -> None:
    rate = 24_000
    # Utterance 0 twice: repeated content still yields distinct frames.
    pcm, bounds = conversation_audio([0, 1, 0, 3], sample_rate=rate)
    hashes = _frame_hashes(pcm, rate)
    assert len(set(hashes)) == len(hashes)
    # Silence frames specifically (the gaps between utterances).
    gaps = [pcm[: bounds[0][0] * 2]] + [
        pcm[a[1] * 2 : b[0] * 2] for a, b in itertools.pairwise(bounds)
    ]
    gap_hashes = [h for g in gaps for h in _frame_hashes(g, rate)]
    assert len(set(gap_hashes)) == len(gap_hashes)


def test_silence_is_quiet_noise_and_deterministic() -> None:
    a = silence(0.2, sample_rate=16_000, seed=4)
    assert a == silence(0.2, sample_rate=16_000, seed=4)
    assert a != silence(0.2, sample_rate=16_000, seed=5)
    assert len(a) == 3200 * 2
    samples = memoryview(a).cast("h")
    assert max(abs(s) for s in samples) <= 20
    assert any(s != 0 for s in samples)


def test_conversation_layout() -> None:
    pcm, bounds = conversation_audio([1, 2], sample_rate=8000, gap_s=0.5, duration_s=0.4)
    assert bounds == [(4000, 7200), (11200, 14400)]
    assert len(pcm) == 18400 * 2


def test_script_lookups() -> None:
    assert user_transcript(0) == "Hello there."
    assert user_transcript(7) is None
    assert DEFAULT_SCRIPT.for_utterance(0).reply == "Hi! How can I help you today?"
    weather = DEFAULT_SCRIPT.for_utterance(1)
    assert weather.tool_call is not None
    assert weather.tool_call[0] == "get_weather"
    assert json.loads(weather.tool_call[1]) == {"city": "Paris"}
    assert DEFAULT_SCRIPT.for_text("  what's the WEATHER in paris? ") is weather
    assert DEFAULT_SCRIPT.for_text("Thank you, goodbye.").reply == "Goodbye!"
    assert DEFAULT_SCRIPT.for_text("Blue cheese").reply == "I heard you say: Blue cheese."
    assert DEFAULT_SCRIPT.for_utterance(None).reply == "Sorry, I did not catch that."
    assert DEFAULT_SCRIPT.for_tool("get_weather") is weather
    story = DEFAULT_SCRIPT.for_utterance(2).reply
    assert 5.0 <= len(story.split()) * 0.25 <= 8.0  # ~6 s of reply audio
    custom = Script(utterances={}, texts={"ping": Turn(user_text="ping", reply="pong")})
    assert custom.for_text("PING").reply == "pong"


@pytest.mark.parametrize("text", ["Hi! How can I help you today?", "  two  words ", "one", ""])
def test_transcript_deltas_concatenate_to_the_text(text: str) -> None:
    deltas = reply_transcript_deltas(text)
    assert "".join(deltas) == text
    assert len(deltas) == len(text.split()) or (not text.split() and deltas in ([], [text]))


def test_reply_audio_is_deterministic_and_sized() -> None:
    chunks = reply_audio("Hi! How can I help you today?", sample_rate=24_000, chunk_ms=40)
    assert chunks == reply_audio("Hi! How can I help you today?", sample_rate=24_000)
    total = sum(len(c) for c in chunks)
    assert total == 7 * 6000 * 2  # 7 words x 250 ms at 24 kHz
    assert all(len(c) == 960 * 2 for c in chunks[:-1])
    assert len(chunks) == -(-total // 1920)
    assert reply_audio("", sample_rate=24_000) == []


def _run(session: ModelSession, pcm: bytes, chunk: int = 960) -> list[ModelAction]:
    actions: list[ModelAction] = []
    for i in range(0, len(pcm), chunk):
        actions += session.on_audio(pcm[i : i + chunk])
    return actions


def test_session_audio_turns_and_tool_round() -> None:
    pcm, _ = conversation_audio([0, 1], sample_rate=24_000)
    session = ModelSession()
    actions = _run(session, pcm)
    kinds = [type(a).__name__ for a in actions]
    assert kinds == [
        "UserSpeechStarted",
        "UserTurn",
        "Reply",
        "UserSpeechStarted",
        "UserTurn",
        "ToolCall",
    ]
    turn0 = actions[1]
    assert isinstance(turn0, UserTurn)
    assert (turn0.transcript, turn0.utterance, turn0.source) == ("Hello there.", 0, "audio")
    reply = actions[2]
    assert isinstance(reply, Reply)
    assert reply.text == "Hi! How can I help you today?"
    assert "".join(reply.transcript_deltas) == reply.text
    # reply_1 was never reported finished: the next speech is a barge-in on it.
    started = actions[3]
    assert isinstance(started, UserSpeechStarted)
    assert started.interrupting == "reply_1"
    call = actions[5]
    assert isinstance(call, ToolCall)
    assert (call.call_id, call.name, call.reply_id) == ("call_1", "get_weather", "reply_2")
    assert session.pending_calls == ("call_1",)
    follow = session.on_tool_output("call_1", "sunny and 21 degrees")
    assert len(follow) == 1
    assert isinstance(follow[0], Reply)
    assert follow[0].text == "The weather in Paris is sunny and 21 degrees."
    assert follow[0].follow_up_of == ("call_1",)
    assert not session.pending_calls


def test_session_barge_in_reports_only_while_playing() -> None:
    rate = 16_000
    session = ModelSession(input_sample_rate=rate)
    pcm, _ = conversation_audio([2, 0], sample_rate=rate)
    first = _run(session, pcm[: len(pcm) // 2], 320)
    reply = next(a for a in first if isinstance(a, Reply))
    assert session.cancel() == reply.reply_id
    rest = _run(session, pcm[len(pcm) // 2 :], 320)
    started = next(a for a in rest if isinstance(a, UserSpeechStarted))
    assert started.interrupting is None


def test_session_manual_commit_text_and_unknown_outputs() -> None:
    rate = 24_000
    session = ModelSession(vad=False, auto_respond=False)
    assert session.on_audio(utterance_audio(3, sample_rate=rate)) == []
    committed = session.commit_audio()
    assert len(committed) == 1
    assert isinstance(committed[0], UserTurn)
    assert committed[0].transcript == "Thank you, goodbye."
    assert session.commit_audio() == []
    [reply] = session.respond()
    assert isinstance(reply, Reply)
    assert reply.text == "Goodbye!"
    text_actions = session.on_text("what's the weather in paris?", respond=True)
    call = text_actions[-1]
    assert isinstance(call, ToolCall)
    # An output for a call made on an earlier connection (re-seeded history).
    session.on_tool_call("call_old", "get_weather")
    assert session.on_tool_output("call_old", "rainy") == []  # auto_respond is off
    assert session.on_tool_output(call.call_id, "cold") == []
    [both] = session.respond()
    assert isinstance(both, Reply)
    assert both.text == "The weather in Paris is cold. The weather in Paris is rainy."
    unknown = session.on_tool_output("call_x", "42", respond=True)
    assert isinstance(unknown[0], Reply)
    assert unknown[0].text == "The tool returned 42."
    [idle] = session.respond()
    assert isinstance(idle, Reply)
    assert idle.text == DEFAULT_SCRIPT.idle_reply


def test_session_is_deterministic() -> None:
    pcm, _ = conversation_audio([0, 1, 2, 3], sample_rate=24_000, seed=11)

    def run() -> list[ModelAction]:
        session = ModelSession()
        actions = _run(session, pcm, 1234)
        for a in actions:
            if isinstance(a, ToolCall):
                actions += session.on_tool_output(a.call_id, "fine")
        return actions

    assert run() == run()
