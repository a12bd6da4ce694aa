"""Table tests of the pure Gemini Live translator."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from antiphon.adapters import Disposition, Translator
from antiphon.adapters.gemini import GeminiTranslator as _GeminiTranslator
from antiphon.adapters.gemini import parse_duration_ms
from antiphon.errors import ConnectionLostError, ProtocolError, ProviderError, ProviderTimeout
from antiphon.protocol import (
    AssistantMessage,
    AudioFrame,
    CloseSession,
    CommitAudio,
    DeliverToolResult,
    Event,
    FunctionCall,
    FunctionOutput,
    GenerateReply,
    GenerationAudioDelta,
    GenerationEnded,
    GenerationEndReason,
    GenerationStarted,
    GenerationTextDelta,
    GoAwayReceived,
    InputTranscriptDelta,
    InputTranscriptFinal,
    Interrupt,
    ProviderSessionInfo,
    ResumptionHandleUpdated,
    SendText,
    SessionState,
    ToolCallCancelRequested,
    ToolCallRequested,
    ToolOutcome,
    ToolSpec,
    UnknownProviderEvent,
    Usage,
    UserAudioCommitted,
    UserMessage,
    fold,
)

PCM = bytes(range(256)) * 4  # has bytes whose base64 differs between the two alphabets


class GeminiTranslator(_GeminiTranslator):
    """The translator with its audio safe points filtered out, so the event sequences below
    read as the conversation; the safe points have their own test."""

    def decode(self, frame: str | bytes) -> list[Event]:
        return [e for e in super().decode(frame) if not isinstance(e, UserAudioCommitted)]


def test_the_model_answering_is_a_safe_point_for_the_audio_sent() -> None:
    t = _GeminiTranslator()
    t.handshake(SessionState(epoch=2))
    for _ in range(5):  # 5 x 20 ms at 16 kHz
        t.encode(AudioFrame(pcm=b"\x00" * 640, index=0), SessionState())
    t.decode(frame({"serverContent": {"inputTranscription": {"text": " Hi"}}}))
    events = t.decode(frame({"serverContent": {"outputTranscription": {"text": "Hello"}}}))
    assert events[:2] == [
        UserAudioCommitted(item_id="u2-1", audio_end_ms=100),
        GenerationStarted(generation_id="g2-1"),
    ]
    # Only once per generation.
    more = t.decode(frame({"serverContent": {"outputTranscription": {"text": " again"}}}))
    assert not any(isinstance(e, UserAudioCommitted) for e in more)


def frame(obj: Any) -> str:
    return json.dumps(obj)


def kinds(events: list[Event]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_is_a_translator() -> None:
    t = GeminiTranslator()
    assert isinstance(t, Translator)
    assert t.provider == "gemini"
    assert t.capabilities.server_resume
    assert not t.capabilities.make_before_break
    assert not t.capabilities.truncate
    assert (t.limits.input_sample_rate, t.limits.output_sample_rate) == (16_000, 24_000)
    assert t.limits.rotate_after_s is None


@pytest.mark.parametrize(
    ("message", "session_id"),
    [({"setupComplete": {}}, ""), ({"setup_complete": {"session_id": "s1"}}, "s1")],
)
def test_setup_complete_makes_ready(message: dict[str, Any], session_id: str) -> None:
    t = GeminiTranslator()
    assert not t.ready
    assert t.decode(frame(message)) == [ProviderSessionInfo(provider_session_id=session_id)]
    assert t.ready


def _audio_part(data: bytes, *, urlsafe: bool = False, snake: bool = False) -> dict[str, Any]:
    enc = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    blob = {"mimeType": "audio/pcm;rate=24000", "data": enc(data).decode()}
    return {"inline_data" if snake else "inlineData": blob}


@pytest.mark.parametrize("snake", [False, True])
def test_bundled_server_content_in_order(snake: bool) -> None:
    """3.x bundles audio, transcripts and turnComplete in one message: every field counts."""
    t = GeminiTranslator()
    if snake:
        content = {
            "input_transcription": {"text": " hi", "finished": True},
            "model_turn": {"parts": [_audio_part(PCM, snake=True)]},
            "output_transcription": {"text": "Hello"},
            "generation_complete": True,
            "turn_complete": True,
        }
        message = {"server_content": content, "usage_metadata": {"total_token_count": 7}}
    else:
        content = {
            "inputTranscription": {"text": " hi", "finished": True},
            "modelTurn": {"parts": [_audio_part(PCM)]},
            "outputTranscription": {"text": "Hello"},
            "generationComplete": True,
            "turnComplete": True,
        }
        message = {"usageMetadata": {"totalTokenCount": 7}, "serverContent": content}
    events = t.decode(frame(message))
    assert events == [
        InputTranscriptDelta(item_id="u0-1", text=" hi"),
        InputTranscriptFinal(item_id="u0-1", text=" hi"),
        GenerationStarted(generation_id="g0-1"),
        GenerationAudioDelta(generation_id="g0-1", audio=PCM),
        GenerationTextDelta(generation_id="g0-1", text="Hello"),
        GenerationEnded(generation_id="g0-1", reason=GenerationEndReason.COMPLETED),
        Usage(total_tokens=7),
    ]


@pytest.mark.parametrize("urlsafe", [False, True])
def test_both_base64_alphabets(urlsafe: bool) -> None:
    t = GeminiTranslator()
    msg = {"serverContent": {"modelTurn": {"parts": [_audio_part(PCM, urlsafe=urlsafe)]}}}
    (_, audio) = t.decode(frame(msg))
    assert isinstance(audio, GenerationAudioDelta)
    assert audio.audio == PCM
    assert audio.sample_rate == 24_000


def test_thought_parts_are_never_spoken_and_text_parts_follow_transcription_setting() -> None:
    parts = [{"text": "**Planning**", "thought": True}, {"text": "Hello"}]
    msg = frame({"serverContent": {"modelTurn": {"parts": parts}}})
    assert GeminiTranslator().decode(msg) == []  # transcription on: the transcript is the text
    t = GeminiTranslator(transcribe_output=False)
    assert t.decode(msg) == [
        GenerationStarted(generation_id="g0-1"),
        GenerationTextDelta(generation_id="g0-1", text="Hello"),
    ]


def test_interrupted_ends_generation_and_is_harmless_otherwise() -> None:
    t = GeminiTranslator()
    interrupted = frame({"serverContent": {"interrupted": True}})
    assert t.decode(interrupted) == []  # before any generation
    t.decode(frame({"serverContent": {"outputTranscription": {"text": "Hi"}}}))
    assert t.decode(interrupted) == [
        GenerationEnded(generation_id="g0-1", reason=GenerationEndReason.INTERRUPTED)
    ]
    assert t.decode(frame({"serverContent": {"turnComplete": True}})) == []
    # during playback, after turnComplete
    t.decode(frame({"serverContent": {"outputTranscription": {"text": "Again"}}}))
    assert kinds(t.decode(frame({"serverContent": {"turnComplete": True}}))) == ["GenerationEnded"]
    assert t.decode(interrupted) == []


@pytest.mark.parametrize(
    ("key", "inner"), [("toolCall", "functionCalls"), ("tool_call", "function_calls")]
)
def test_tool_call_ends_generation_as_tool_call(key: str, inner: str) -> None:
    t = GeminiTranslator()
    t.decode(frame({"serverContent": {"outputTranscription": {"text": "Let me check."}}}))
    calls = [
        {"id": "c1", "name": "get_weather", "args": {"city": "Paris", "days": 2}},
        {"id": "c2", "name": "now"},
    ]
    events = t.decode(frame({key: {inner: calls}}))
    assert events == [
        ToolCallRequested(
            call_id="c1",
            name="get_weather",
            arguments='{"city":"Paris","days":2}',
            generation_id="g0-1",
        ),
        ToolCallRequested(call_id="c2", name="now", arguments="{}", generation_id="g0-1"),
        GenerationEnded(generation_id="g0-1", reason=GenerationEndReason.TOOL_CALL),
    ]
    # the follow-up after the toolResponse is a new generation
    follow = t.decode(frame({"serverContent": {"outputTranscription": {"text": "Sunny."}}}))
    assert follow[0] == GenerationStarted(generation_id="g0-2")


def test_args_struct_contents_are_not_recased() -> None:
    t = GeminiTranslator()
    (_, call, _) = t.decode(
        frame({"toolCall": {"functionCalls": [{"id": "c", "name": "f", "args": {"myKey": 1}}]}})
    )
    assert isinstance(call, ToolCallRequested)
    assert json.loads(call.arguments) == {"myKey": 1}


@pytest.mark.parametrize("key", ["toolCallCancellation", "tool_call_cancellation"])
def test_tool_call_cancellation(key: str) -> None:
    t = GeminiTranslator()
    assert t.decode(frame({key: {"ids": ["a", "b"]}})) == [
        ToolCallCancelRequested(call_ids=("a", "b"), reason="provider")
    ]
    assert t.decode(frame({key: {}})) == []


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("50s", 50_000),
        ("1.5s", 1_500),
        ("0.100s", 100),
        ("0s", 0),
        ("10.123456789s", 10_123),
        ({"seconds": "2", "nanos": 500_000_000}, 2_500),
        (None, 0),
    ],
)
def test_go_away_durations(value: Any, ms: int) -> None:
    assert parse_duration_ms(value) == ms
    body = {} if value is None else {"timeLeft": value}
    assert GeminiTranslator().decode(frame({"goAway": body})) == [GoAwayReceived(time_left_ms=ms)]
    if value is not None:
        assert GeminiTranslator().decode(frame({"go_away": {"time_left": value}})) == [
            GoAwayReceived(time_left_ms=ms)
        ]


@pytest.mark.parametrize("bad", ["50", "5m", "s", "1.2.3s", "", "1.1234567890s"])
def test_bad_go_away_duration_is_a_protocol_error(bad: str) -> None:
    with pytest.raises(ProtocolError):
        GeminiTranslator().decode(frame({"goAway": {"timeLeft": bad}}))


@pytest.mark.parametrize(
    ("update", "expected"),
    [
        ({"newHandle": "h1", "resumable": True}, [ResumptionHandleUpdated(handle="h1")]),
        ({"new_handle": "h2", "resumable": True}, [ResumptionHandleUpdated(handle="h2")]),
        ({"newHandle": "h3", "resumable": False}, []),
        ({"resumable": True}, []),
        ({"newHandle": "", "resumable": True}, []),
        ({}, []),
        ({"resumable": False, "lastConsumedClientMessageIndex": "12"}, []),
    ],
)
def test_resumption_handle_kept_only_when_resumable(
    update: dict[str, Any], expected: list[Event]
) -> None:
    assert GeminiTranslator().decode(frame({"sessionResumptionUpdate": update})) == expected


def test_input_transcript_is_finalised_at_the_end_of_the_answer() -> None:
    t = GeminiTranslator()
    events = t.decode(frame({"serverContent": {"inputTranscription": {"text": " Hello"}}}))
    events += t.decode(frame({"serverContent": {"outputTranscription": {"text": "Hi"}}}))
    events += t.decode(frame({"serverContent": {"inputTranscription": {"text": " there"}}}))
    events += t.decode(frame({"serverContent": {"generationComplete": True}}))
    events += t.decode(frame({"serverContent": {"inputTranscription": {"text": " next"}}}))
    assert [e for e in events if isinstance(e, InputTranscriptDelta | InputTranscriptFinal)] == [
        InputTranscriptDelta(item_id="u0-1", text=" Hello"),
        InputTranscriptDelta(item_id="u0-1", text=" there"),
        InputTranscriptFinal(item_id="u0-1", text=" Hello there"),
        InputTranscriptDelta(item_id="u0-2", text=" next"),
    ]


def test_unknown_keys_are_kept_and_known_ones_still_decoded() -> None:
    t = GeminiTranslator()
    raw = frame({"futureThing": {"x": 1}, "goAway": {"timeLeft": "5s"}})
    assert t.decode(raw) == [
        UnknownProviderEvent(provider_type="futureThing", raw=raw),
        GoAwayReceived(time_left_ms=5000),
    ]
    assert t.decode(frame({})) == []


def test_unknown_nested_fields_are_ignored() -> None:
    t = GeminiTranslator()
    msg = {"serverContent": {"turnComplete": True, "turnCompleteReason": "X", "new": {"a": 1}}}
    assert t.decode(frame(msg)) == []
    assert t.decode(json.dumps({"usageMetadata": {"promptTokenCount": 3, "x": []}}).encode()) == [
        Usage(input_tokens=3)
    ]


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        "[1, 2]",
        '"text"',
        '{"serverContent": []}',
        '{"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": "@@@"}}]}}}',
        '{"serverContent": {"outputTranscription": {"text": 5}}}',
        '{"toolCall": {"functionCalls": [{"id": "c", "name": "f", "args": [1]}]}}',
        '{"goAway": {"timeLeft": {"seconds": "x"}}}',
        b"\xff\xfe",
    ],
)
def test_malformed_frames_raise_protocol_error(bad: str | bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        GeminiTranslator().decode(bad)
    assert info.value.provider == "gemini"


def test_generation_ids_carry_the_epoch_and_reducer_keeps_them_apart() -> None:
    t = GeminiTranslator()
    t.handshake(SessionState(epoch=3))
    events = t.decode(frame({"serverContent": {"outputTranscription": {"text": "One"}}}))
    assert events[0] == GenerationStarted(generation_id="g3-1")
    t2 = GeminiTranslator()
    t2.handshake(SessionState(epoch=4))
    events += t2.decode(frame({"serverContent": {"outputTranscription": {"text": "Two"}}}))
    events += t2.decode(frame({"serverContent": {"turnComplete": True}}))
    state = fold(events)
    assert [(i.id, i.text) for i in state.items if isinstance(i, AssistantMessage)] == [
        ("g3-1", "One"),
        ("g4-1", "Two"),
    ]


# --- handshake -----------------------------------------------------------------------------

TOOL = ToolSpec(
    name="get_weather",
    description="Weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


def test_handshake_setup_fields() -> None:
    t = GeminiTranslator(
        voice="Puck",
        context_window_compression={"slidingWindow": {"targetTokens": 1000}},
        generation_config={"temperature": 0.5},
    )
    handshake = t.handshake(SessionState(instructions="Be brief.", tools=(TOOL,)))
    (setup_frame,) = handshake.frames
    setup = json.loads(setup_frame)["setup"]
    assert setup == {
        "model": "models/gemini-2.5-flash-native-audio-preview-09-2025",
        "generationConfig": {
            "responseModalities": ["AUDIO"],
            "temperature": 0.5,
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}}},
        },
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Weather for a city.",
                        "parameters": TOOL.parameters,
                    }
                ]
            }
        ],
        "inputAudioTranscription": {},
        "outputAudioTranscription": {},
        "sessionResumption": {},
        "contextWindowCompression": {"slidingWindow": {"targetTokens": 1000}},
    }
    assert not handshake.resumed


def test_handshake_manual_activity_config() -> None:
    t = GeminiTranslator(manual_activity=True)
    setup = json.loads(t.handshake(SessionState()).frames[0])["setup"]
    assert setup["realtimeInputConfig"] == {"automaticActivityDetection": {"disabled": True}}


HISTORY = (
    UserMessage(id="u1", text="Weather in Paris?"),
    AssistantMessage(id="a1", text="Checking."),
    FunctionCall(id="c1", name="get_weather", arguments='{"city":"Paris"}'),
    FunctionOutput(id="c1", name="get_weather", output='"sunny"'),
    FunctionOutput(id="c2", name="slow", output="timed out", outcome=ToolOutcome.TIMEOUT),
    AssistantMessage(id="a2", text="It is sunny."),
    UserMessage(id="u2", text=""),
)


def test_handshake_without_handle_reseeds_history_as_turns() -> None:
    t = GeminiTranslator()
    handshake = t.handshake(SessionState(items=HISTORY))
    assert not handshake.resumed
    assert not handshake.history_truncated  # Gemini's history is never cut
    setup_frame, seed_frame = handshake.frames
    assert json.loads(setup_frame)["setup"]["sessionResumption"] == {}
    seed = json.loads(seed_frame)
    assert seed == {
        "clientContent": {
            "turns": [
                {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
                {
                    "role": "model",
                    "parts": [
                        {"text": "Checking."},
                        {"text": '[called tool get_weather with arguments {"city":"Paris"}]'},
                    ],
                },
                {
                    "role": "user",
                    "parts": [
                        {"text": '[tool get_weather returned: "sunny"]'},
                        {"text": "[tool slow failed (timeout): timed out]"},
                    ],
                },
                {"role": "model", "parts": [{"text": "It is sunny."}]},
            ],
            "turnComplete": False,  # the live turn that follows starts the answer
        }
    }


def test_handshake_with_handle_resumes_without_reseeding() -> None:
    t = GeminiTranslator()
    handshake = t.handshake(SessionState(items=HISTORY, resumption_handle="h-9"))
    assert len(handshake.frames) == 1
    assert json.loads(handshake.frames[0])["setup"]["sessionResumption"] == {"handle": "h-9"}
    assert handshake.resumed


# --- encode --------------------------------------------------------------------------------

S = SessionState()


def test_encode_audio_frame() -> None:
    (f,) = GeminiTranslator().encode(AudioFrame(pcm=PCM, index=0), S)
    audio = json.loads(f)["realtimeInput"]["audio"]
    assert audio["mimeType"] == "audio/pcm;rate=16000"
    assert base64.b64decode(audio["data"]) == PCM


def test_encode_manual_activity_markers() -> None:
    t = GeminiTranslator(manual_activity=True)
    assert t.encode(CommitAudio(), S) == []  # no open turn: nothing to end
    first = t.encode(AudioFrame(pcm=PCM, index=0), S)
    second = t.encode(AudioFrame(pcm=PCM, index=1), S)
    assert [list(json.loads(f)["realtimeInput"]) for f in first] == [["activityStart"], ["audio"]]
    assert json.loads(first[0]) == {"realtimeInput": {"activityStart": {}}}
    assert len(second) == 1
    assert [json.loads(f) for f in t.encode(CommitAudio(), S)] == [
        {"realtimeInput": {"activityEnd": {}}}
    ]
    # Interrupt under manual mode opens activity (which interrupts the model)
    assert [json.loads(f) for f in t.encode(Interrupt(), S)] == [
        {"realtimeInput": {"activityStart": {}}}
    ]
    assert GeminiTranslator().encode(Interrupt(), S) == []
    assert GeminiTranslator().encode(CommitAudio(), S) == []


@pytest.mark.parametrize("reply", [True, False])
def test_encode_send_text(reply: bool) -> None:
    (f,) = GeminiTranslator().encode(SendText(text="Hi", generate_reply=reply), S)
    assert json.loads(f) == {
        "clientContent": {
            "turns": [{"role": "user", "parts": [{"text": "Hi"}]}],
            "turnComplete": reply,
        }
    }
    (g,) = GeminiTranslator(use_realtime_text=True).encode(SendText(text="Hi"), S)
    assert json.loads(g) == {"realtimeInput": {"text": "Hi"}}


def test_encode_generate_reply() -> None:
    (f,) = GeminiTranslator().encode(GenerateReply(), S)
    assert json.loads(f) == {"clientContent": {"turnComplete": True}}
    (g,) = GeminiTranslator().encode(GenerateReply(instructions="Say bye."), S)
    assert json.loads(g)["clientContent"]["turns"] == [
        {"role": "user", "parts": [{"text": "Say bye."}]}
    ]
    assert GeminiTranslator(use_realtime_text=True).encode(GenerateReply(), S) == []


@pytest.mark.parametrize(
    ("output", "outcome", "response"),
    [
        ('{"temp": 21}', ToolOutcome.OK, {"output": {"temp": 21}}),
        ("sunny", ToolOutcome.OK, {"output": "sunny"}),
        ('"sunny"', ToolOutcome.OK, {"output": "sunny"}),
        ("boom", ToolOutcome.ERROR, {"error": "boom"}),
    ],
)
def test_encode_tool_result(output: str, outcome: ToolOutcome, response: dict[str, Any]) -> None:
    t = GeminiTranslator()
    t.decode(frame({"toolCall": {"functionCalls": [{"id": "c1", "name": "f", "args": {}}]}}))
    cmd = DeliverToolResult(call_id="c1", name="f", output=output, outcome=outcome)
    (f,) = t.encode(cmd, S)
    assert json.loads(f) == {
        "toolResponse": {"functionResponses": [{"id": "c1", "name": "f", "response": response}]}
    }


def test_a_result_for_a_call_of_an_earlier_connection_goes_as_a_turn() -> None:
    cmd = DeliverToolResult(call_id="old", name="f", output='"sunny"', respond=True)
    (f,) = GeminiTranslator().encode(cmd, S)
    assert json.loads(f) == {
        "clientContent": {
            "turns": [{"role": "user", "parts": [{"text": '[tool f returned: "sunny"]'}]}],
            "turnComplete": True,
        }
    }


def test_encode_other_commands_send_nothing() -> None:
    assert GeminiTranslator().encode(CloseSession(), S) == []


# --- classify ------------------------------------------------------------------------------


def _closed(code: int, reason: str = "") -> ConnectionLostError:
    return ConnectionLostError(f"Gemini connection closed: {code} {reason}", close_code=code)


@pytest.mark.parametrize(
    ("error", "disposition", "fresh"),
    [
        # close codes (PROVIDERS §5.6)
        (_closed(1011), Disposition.RECOVERABLE, False),
        (
            _closed(1011, "Deadline expired before operation could complete."),
            Disposition.RECOVERABLE,
            False,
        ),
        (_closed(1008, "BidiGenerateContent session not found"), Disposition.RECOVERABLE, True),
        (_closed(1008, "models/x is not found for API version v1beta"), Disposition.FATAL, False),
        (_closed(1008, "Operation is not implemented"), Disposition.FATAL, False),
        (_closed(1007, "Request contains an invalid argument."), Disposition.FATAL, False),
        (_closed(1000), Disposition.RECOVERABLE, False),
        (_closed(1001), Disposition.RECOVERABLE, False),
        (_closed(1006), Disposition.RECOVERABLE, False),
        (_closed(1011, "Token has been used too many times"), Disposition.FATAL, False),
        # HTTP statuses of a refused upgrade
        (ProviderError("HTTP 503", http_status=503), Disposition.RECOVERABLE, False),
        (ProviderError("HTTP 429", http_status=429), Disposition.RECOVERABLE, False),
        (ProviderError("HTTP 403", http_status=403), Disposition.FATAL, False),
        (ProviderError("HTTP 404", http_status=404), Disposition.FATAL, False),
        # failures the connector detected itself
        (ConnectionLostError("no route", condition="connect"), Disposition.RECOVERABLE, False),
        (ProviderTimeout("slow", condition="send_timeout"), Disposition.RECOVERABLE, False),
        (ProtocolError("bad frame"), Disposition.RECOVERABLE, False),
        (
            ProviderError("asyncio only", condition="unsupported_event_loop"),
            Disposition.FATAL,
            False,
        ),
        (RuntimeError("bug"), Disposition.FATAL, False),
    ],
)
def test_classify(error: BaseException, disposition: Disposition, fresh: bool) -> None:
    result = GeminiTranslator().classify(error)
    assert result.disposition is disposition
    assert result.fresh_start is fresh


@pytest.mark.parametrize(
    ("error", "retry_after_s"),
    [
        (ProviderError("HTTP 429", http_status=429, retry_after_s=4.0), 4.0),
        (ProviderError("HTTP 503", http_status=503, retry_after_s=0.5), 0.5),
        (ProviderError("HTTP 503", http_status=503), None),
        (ProviderError("HTTP 403", http_status=403, retry_after_s=4.0), None),  # fatal: no wait
    ],
)
def test_classify_honours_retry_after(error: ProviderError, retry_after_s: float | None) -> None:
    assert GeminiTranslator().classify(error).retry_after_s == retry_after_s


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"voiceActivity": {"voiceActivityType": "ACTIVITY_START"}}, ["UserSpeechStarted"]),
        ({"voice_activity": {"voice_activity_type": "ACTIVITY_END"}}, ["UserSpeechStopped"]),
        ({"voiceActivity": {"type": "ACTIVITY_START"}}, ["UserSpeechStarted"]),
        ({"voiceActivity": {}}, []),
    ],
)
def test_voice_activity(message: dict[str, Any], expected: list[str]) -> None:
    assert kinds(GeminiTranslator().decode(frame(message))) == expected
