"""Unit tests of the OpenAI / xAI translator: decode, encode, handshake, classify, presets."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import pytest

from antiphon.adapters import Connector, Disposition, Limits, Provider, Translator
from antiphon.adapters.openai import OpenAIRealtime, OpenAITranslator, XAIRealtime
from antiphon.adapters.openai._translator import (
    FATAL_CLOSE_CODES,
    FATAL_PROVIDER_CODES,
    RECOVERABLE_PROVIDER_CODES,
    RETRYABLE_HTTP_STATUSES,
)
from antiphon.errors import ConnectionLostError, ProtocolError, ProviderError, ProviderTimeout
from antiphon.protocol import (
    AssistantMessage,
    AssistantTruncated,
    AudioFrame,
    CloseSession,
    CommitAudio,
    DeliverToolResult,
    FunctionCall,
    FunctionOutput,
    GenerateReply,
    GenerationAudioDelta,
    GenerationEnded,
    GenerationEndReason,
    GenerationStarted,
    GenerationTextDelta,
    InputTranscriptDelta,
    InputTranscriptFailed,
    InputTranscriptFinal,
    Interrupt,
    KeepAlive,
    OpenGeneration,
    PendingToolCall,
    ProviderErrorEvent,
    ProviderSessionInfo,
    ResumptionHandleUpdated,
    SendAudio,
    SendText,
    SessionState,
    SubmitToolResult,
    ToolCallRequested,
    ToolCallStatus,
    ToolSpec,
    UnknownProviderEvent,
    UpdateInstructions,
    UpdateOptions,
    UpdateTools,
    Usage,
    UserAudioCommitted,
    UserMessage,
    UserSpeechStarted,
    UserSpeechStopped,
)


def _frame(**fields: Any) -> str:
    return json.dumps(fields)


def _openai(**kw: Any) -> OpenAITranslator:
    return OpenAIRealtime(**kw).new_translator()


def _xai() -> OpenAITranslator:
    return XAIRealtime().new_translator()


def _frames(frames: Sequence[str | bytes]) -> list[dict[str, Any]]:
    return [json.loads(f) for f in frames]


# --- decode -------------------------------------------------------------------------------


def test_ready_only_after_session_updated() -> None:
    t = _openai()
    assert not t.ready
    events = t.decode(_frame(type="session.created", session={"id": "sess_1", "expires_at": 99}))
    assert events == [ProviderSessionInfo(provider_session_id="sess_1", expires_at_s=99.0)]
    assert not t.ready
    t.decode(_frame(type="session.updated", session={"id": "sess_1", "expires_at": 99}))
    assert t.ready


def test_xai_session_and_conversation_and_ping() -> None:
    t = _xai()
    assert t.decode(_frame(type="session.created", session={"id": "abc", "voice": "ara"})) == [
        ProviderSessionInfo(provider_session_id="abc")
    ]
    conv = _frame(type="conversation.created", conversation={"id": "c-1"}, previous_item_id=None)
    # The conversation id is xAI's resumption handle.
    assert t.decode(conv) == [
        ProviderSessionInfo(conversation_id="c-1"),
        ResumptionHandleUpdated(handle="c-1"),
    ]
    assert t.decode(_frame(type="ping", timestamp=1, previous_item_id=None)) == []
    assert t.decode(_frame(type="session.updated", session={"instructions": "x"})) == []
    assert t.ready


def test_speech_edges_and_commit_carries_speech_stopped_position() -> None:
    t = _openai()
    assert t.decode(
        _frame(type="input_audio_buffer.speech_started", item_id="i1", audio_start_ms=100)
    ) == [UserSpeechStarted(item_id="i1", audio_start_ms=100)]
    assert t.decode(
        _frame(type="input_audio_buffer.speech_stopped", item_id="i1", audio_end_ms=900)
    ) == [UserSpeechStopped(item_id="i1", audio_end_ms=900)]
    assert t.decode(_frame(type="input_audio_buffer.committed", item_id="i1")) == [
        UserAudioCommitted(item_id="i1", audio_end_ms=900)
    ]
    # A manual commit (no speech_stopped for the item) takes everything sent: None.
    assert t.decode(_frame(type="input_audio_buffer.committed", item_id="i2")) == [
        UserAudioCommitted(item_id="i2", audio_end_ms=None)
    ]


def test_input_transcripts_openai_and_xai() -> None:
    t = _openai()
    delta = "conversation.item.input_audio_transcription.delta"
    done = "conversation.item.input_audio_transcription.completed"
    assert t.decode(_frame(type=delta, item_id="u", delta=" hi", obfuscation="x")) == [
        InputTranscriptDelta(item_id="u", text=" hi")
    ]
    assert t.decode(_frame(type=done, item_id="u", transcript="hi there")) == [
        InputTranscriptFinal(item_id="u", text="hi there")
    ]
    x = _xai()
    upd = "conversation.item.input_audio_transcription.updated"
    assert x.decode(_frame(type=upd, item_id="u", transcript="Hello")) == [
        InputTranscriptDelta(item_id="u", text="Hello", cumulative=True)
    ]
    assert x.decode(
        _frame(type=done, item_id="u", transcript="Hello my", status="in_progress")
    ) == [InputTranscriptDelta(item_id="u", text="Hello my", cumulative=True)]
    assert x.decode(_frame(type=done, item_id="u", transcript="Hello me", status="completed")) == [
        InputTranscriptFinal(item_id="u", text="Hello me")
    ]


def test_transcription_failed_finalises_the_item_and_is_a_recoverable_error_event() -> None:
    t = _openai()
    frame = _frame(
        type="conversation.item.input_audio_transcription.failed",
        item_id="u",
        error={"type": "transcription_error", "code": "audio_unintelligible", "message": "no"},
    )
    assert t.decode(frame) == [
        InputTranscriptFailed(item_id="u", code="audio_unintelligible", message="no"),
        ProviderErrorEvent(
            code="audio_unintelligible",
            message="input transcription failed for item u: no",
            recoverable=True,
        ),
    ]


@pytest.mark.parametrize(
    "audio_type", ["response.output_audio.delta", "response.audio.delta"], ids=["ga", "beta"]
)
def test_audio_delta_is_decoded_once_at_the_output_rate(audio_type: str) -> None:
    pcm = bytes(range(64))
    t = _openai()
    frame = _frame(
        type=audio_type, response_id="r", item_id="it", delta=base64.b64encode(pcm).decode()
    )
    assert t.decode(frame.encode()) == [
        GenerationAudioDelta(generation_id="r", item_id="it", sample_rate=24_000, audio=pcm)
    ]


@pytest.mark.parametrize(
    "text_type",
    [
        "response.output_audio_transcript.delta",
        "response.audio_transcript.delta",
        "response.output_text.delta",
        "response.text.delta",
    ],
)
def test_text_deltas_all_spellings(text_type: str) -> None:
    t = _openai()
    assert t.decode(_frame(type=text_type, response_id="r", item_id="it", delta="Hi")) == [
        GenerationTextDelta(generation_id="r", item_id="it", text="Hi")
    ]


def test_bad_base64_audio_is_a_protocol_error() -> None:
    t = _openai()
    frame = _frame(type="response.output_audio.delta", response_id="r", delta="@@not b64@@")
    with pytest.raises(ProtocolError) as info:
        t.decode(frame)
    assert info.value.provider == "openai"


def test_tool_call_once_per_call_id_and_tool_call_end() -> None:
    t = _openai()
    assert t.decode(_frame(type="response.created", response={"id": "r1"})) == [
        GenerationStarted(generation_id="r1")
    ]
    assert t.decode(_frame(type="response.function_call_arguments.delta", delta="{")) == []
    done = _frame(
        type="response.function_call_arguments.done",
        response_id="r1",
        item_id="it",
        call_id="c1",
        name="f",
        arguments='{ "a" : 1 }',
    )
    expected = ToolCallRequested(
        call_id="c1", name="f", arguments='{ "a" : 1 }', generation_id="r1"
    )
    assert t.decode(done) == [expected]
    assert t.decode(done) == []
    # The output list does not mention the call: the translator remembers the response asked.
    end = t.decode(_frame(type="response.done", response={"id": "r1", "status": "completed"}))
    assert end == [GenerationEnded(generation_id="r1", reason=GenerationEndReason.TOOL_CALL)]


@pytest.mark.parametrize(
    ("response", "reason", "detail"),
    [
        ({"status": "completed", "status_details": None}, GenerationEndReason.COMPLETED, ""),
        (
            {"status": "completed", "output": [{"type": "function_call"}]},
            GenerationEndReason.TOOL_CALL,
            "",
        ),
        (
            {
                "status": "cancelled",
                "status_details": {"type": "cancelled", "reason": "turn_detected"},
            },
            GenerationEndReason.INTERRUPTED,
            "turn_detected",
        ),
        (
            {
                "status": "incomplete",
                "status_details": {"type": "incomplete", "reason": "max_output_tokens"},
            },
            GenerationEndReason.FAILED,
            "incomplete; max_output_tokens",
        ),
        (
            {"status": "completed", "status_details": "unimplemented"},
            GenerationEndReason.COMPLETED,
            "",
        ),
        (
            {"status": "failed", "status_details": "boom"},
            GenerationEndReason.FAILED,
            "failed; boom",
        ),
    ],
)
def test_response_done_status_mapping(
    response: dict[str, Any], reason: GenerationEndReason, detail: str
) -> None:
    t = _openai()
    events = t.decode(_frame(type="response.done", response={"id": "r", **response}))
    assert events == [GenerationEnded(generation_id="r", reason=reason, detail=detail)]


def test_response_failed_with_quota_error_is_fatal_error_event() -> None:
    t = _openai()
    frame = _frame(
        type="response.done",
        response={
            "id": "r",
            "status": "failed",
            "status_details": {
                "type": "failed",
                "error": {
                    "type": "insufficient_quota",
                    "code": "insufficient_quota",
                    "message": "pay",
                },
            },
            "usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
        },
    )
    events = t.decode(frame)
    assert events[0] == Usage(input_tokens=1, output_tokens=2, total_tokens=3)
    assert isinstance(events[1], GenerationEnded)
    assert events[1].reason is GenerationEndReason.FAILED
    assert "insufficient_quota: pay" in events[1].detail
    assert events[2] == ProviderErrorEvent(
        code="insufficient_quota", message="pay", recoverable=False
    )


def test_xai_top_level_usage_wins_over_empty_response_usage() -> None:
    t = _xai()
    frame = _frame(
        type="response.done",
        response={"id": "r", "status": "completed", "status_details": "unimplemented", "usage": {}},
        response_id="r",
        usage={"input_tokens": 7, "output_tokens": 9, "total_tokens": 16, "grok_tokens": 0},
    )
    assert t.decode(frame)[0] == Usage(input_tokens=7, output_tokens=9, total_tokens=16)


@pytest.mark.parametrize(
    ("code", "recoverable"),
    [
        ("session_expired", True),
        ("server_error", True),
        ("rate_limit_exceeded", True),
        ("response_cancel_not_active", True),
        ("input_audio_buffer_commit_empty", True),
        ("conversation_already_has_active_response", True),
        ("invalid_api_key", False),
    ],
)
def test_error_event(code: str, recoverable: bool) -> None:
    t = _openai()
    frame = _frame(
        type="error", error={"type": "invalid_request_error", "code": code, "message": "m"}
    )
    assert t.decode(frame) == [ProviderErrorEvent(code=code, message="m", recoverable=recoverable)]


def test_truncated_and_ignored_and_unknown() -> None:
    t = _openai()
    assert t.decode(
        _frame(type="conversation.item.truncated", item_id="a", content_index=0, audio_end_ms=1500)
    ) == [AssistantTruncated(item_id="a", audio_end_ms=1500)]
    for ignored in ("conversation.item.added", "response.output_item.done"):
        assert t.decode(_frame(type=ignored, whatever=[1, 2])) == []
    raw = _frame(type="response.brand_new_thing", x=1)
    assert t.decode(raw) == [
        UnknownProviderEvent(provider_type="response.brand_new_thing", raw=raw)
    ]


@pytest.mark.parametrize(
    "frame",
    [
        "",
        "not json",
        "[]",
        '{"no_type": 1}',
        '{"type": 5}',
        '{"type": "response.created", "response": "oops"}',
        '{"type": "session.created", "session": {"expires_at": "soon"}}',
        b"\xff\xfe",
    ],
)
def test_malformed_frames_raise_protocol_error(frame: str | bytes) -> None:
    with pytest.raises(ProtocolError):
        _openai().decode(frame)


# --- encode -------------------------------------------------------------------------------


def test_audio_frame_is_base64_append() -> None:
    pcm = b"\x01\x02" * 480
    (frame,) = _openai().encode(AudioFrame(pcm=pcm, index=0), SessionState())
    assert json.loads(frame) == {
        "type": "input_audio_buffer.append",
        "audio": base64.b64encode(pcm).decode(),
    }


def test_commit_adds_response_create_only_without_server_vad() -> None:
    vad = _openai().encode(CommitAudio(), SessionState())
    assert [f["type"] for f in _frames(vad)] == ["input_audio_buffer.commit"]
    manual = _openai(turn_detection=None).encode(CommitAudio(), SessionState())
    assert [f["type"] for f in _frames(manual)] == ["input_audio_buffer.commit", "response.create"]
    by_option = _openai().encode(CommitAudio(), SessionState(options={"turn_detection": None}))
    assert [f["type"] for f in _frames(by_option)] == [
        "input_audio_buffer.commit",
        "response.create",
    ]


def test_send_text_generate_reply_and_tool_result() -> None:
    t = _openai()
    s = SessionState()
    assert _frames(t.encode(SendText(text="hi", generate_reply=False), s)) == [
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hi"}],
            },
        }
    ]
    assert [f["type"] for f in _frames(t.encode(SendText(text="hi"), s))] == [
        "conversation.item.create",
        "response.create",
    ]
    assert _frames(t.encode(GenerateReply(instructions="be brief"), s)) == [
        {"type": "response.create", "response": {"instructions": "be brief"}}
    ]
    result = DeliverToolResult(call_id="c", name="f", output='{"ok":1}', respond=False)
    assert _frames(t.encode(result, s)) == [
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "c", "output": '{"ok":1}'},
        }
    ]
    respond = DeliverToolResult(call_id="c", name="f", output="x")
    assert [f["type"] for f in _frames(t.encode(respond, s))][-1] == "response.create"


@pytest.mark.parametrize(
    "command",
    [
        KeepAlive(),
        CloseSession(),
        SendAudio(pcm=b"\0\0", sample_rate=16_000),
        SubmitToolResult(call_id="c", output="x"),
    ],
)
def test_runtime_commands_encode_to_nothing(command: Any) -> None:
    assert _openai().encode(command, SessionState()) == []


def _audio(t: OpenAITranslator, item: str, n_bytes: int) -> None:
    delta = base64.b64encode(b"\0" * n_bytes).decode()
    t.decode(_frame(type="response.output_audio.delta", response_id="r", item_id=item, delta=delta))


def test_interrupt_truncates_clamped_to_the_audio_received() -> None:
    t = _openai()
    _audio(t, "a1", 48_000)  # one second at 24 kHz PCM16
    gen = OpenGeneration(generation_id="r", item_id="a1", audio_bytes=48_000)
    state = SessionState(generation=gen)
    frames = _frames(t.encode(Interrupt(played_ms=2500), state))
    assert frames == [
        {"type": "response.cancel"},
        {
            "type": "conversation.item.truncate",
            "item_id": "a1",
            "content_index": 0,
            "audio_end_ms": 1000,
        },
    ]
    frames = _frames(t.encode(Interrupt(played_ms=400), SessionState()))  # generation ended
    assert frames[1]["audio_end_ms"] == 400
    assert frames[1]["item_id"] == "a1"
    assert _frames(t.encode(Interrupt(played_ms=0), state)) == [{"type": "response.cancel"}]
    assert _frames(t.encode(Interrupt(), state)) == [{"type": "response.cancel"}]


def test_interrupt_without_audio_or_on_xai_only_cancels() -> None:
    assert _frames(_openai().encode(Interrupt(played_ms=500), SessionState())) == [
        {"type": "response.cancel"}
    ]
    x = _xai()
    _audio(x, "a1", 48_000)
    assert _frames(x.encode(Interrupt(played_ms=500), SessionState())) == [
        {"type": "response.cancel"}
    ]


def test_session_updates() -> None:
    t = _openai()
    s = SessionState(instructions="old")
    (instr,) = _frames(t.encode(UpdateInstructions(instructions="new"), s))
    assert instr == {
        "type": "session.update",
        "session": {"type": "realtime", "instructions": "new"},
    }
    spec = ToolSpec(name="f", description="d")
    (tools,) = _frames(t.encode(UpdateTools(tools=(spec,)), s))
    assert tools["session"]["tools"] == [
        {"type": "function", "name": "f", "description": "d", "parameters": spec.parameters}
    ]
    (opts,) = _frames(t.encode(UpdateOptions(options={"voice": "marin", "speed": 1.2}), s))
    assert opts["session"]["audio"]["output"] == {
        "format": {"type": "audio/pcm", "rate": 24_000},
        "voice": "marin",
        "speed": 1.2,
    }
    assert opts["session"]["instructions"] == "old"
    (x,) = _frames(_xai().encode(UpdateInstructions(instructions="new"), s))
    assert x == {"type": "session.update", "session": {"instructions": "new"}}


# --- handshake ----------------------------------------------------------------------------


_HISTORY = (
    UserMessage(id="u1", text="What's the weather?"),
    AssistantMessage(id="a1", text="Let me check."),
    FunctionCall(id="call_1", name="get_weather", arguments='{"city":"Paris"}'),
    FunctionOutput(id="call_1", name="get_weather", output='{"temp":12}'),
    UserMessage(id="u2", text="", from_audio=True, final=False),  # never transcribed
    AssistantMessage(id="a2", text="It is 12 degrees."),
)


def test_handshake_ga_shape_and_history_reseeding() -> None:
    spec = ToolSpec(name="get_weather", description="Weather.")
    state = SessionState(instructions="Be nice.", tools=(spec,), items=_HISTORY)
    frames = _frames(_openai(voice="cedar").handshake(state).frames)
    session = frames[0]["session"]
    assert frames[0]["type"] == "session.update"
    assert session["type"] == "realtime"
    assert session["instructions"] == "Be nice."
    assert session["output_modalities"] == ["audio"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24_000}
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert session["audio"]["input"]["transcription"] == {"model": "gpt-4o-mini-transcribe"}
    assert session["audio"]["output"]["voice"] == "cedar"
    assert session["tools"] == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather.",
            "parameters": spec.parameters,
        }
    ]
    items = [f["item"] for f in frames[1:]]
    assert all(f["type"] == "conversation.item.create" for f in frames[1:])
    assert items == [
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "What's the weather?"}],
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Let me check."}],
        },
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": '{"temp":12}'},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "It is 12 degrees."}],
        },
    ]
    assert "response.create" not in [f["type"] for f in frames]


def test_handshake_leaves_undelivered_outputs_to_the_runtime() -> None:
    pending = PendingToolCall(
        call_id="call_1",
        name="get_weather",
        arguments='{"city":"Paris"}',
        status=ToolCallStatus.FINISHED,
        output='{"temp":12}',
    )
    state = SessionState(items=_HISTORY[:4], pending_tools=(pending,))
    items = [f["item"] for f in _frames(_openai().handshake(state).frames)[1:]]
    assert [i["type"] for i in items] == ["message", "message", "function_call"]
    frames = _openai().encode(
        DeliverToolResult(call_id="call_1", name="get_weather", output='{"temp":12}'), state
    )
    assert [f["type"] for f in _frames(frames)] == ["conversation.item.create", "response.create"]


def test_handshake_beta_shape() -> None:
    frames = _frames(_openai(beta=True).handshake(SessionState(items=_HISTORY)).frames)
    session = frames[0]["session"]
    assert "type" not in session
    assert session["input_audio_format"] == "pcm16"
    assert session["turn_detection"]["type"] == "server_vad"
    assert session["voice"] == "alloy"
    assert frames[2]["item"]["content"] == [{"type": "text", "text": "Let me check."}]


def test_handshake_xai_shape() -> None:
    frames = _frames(_xai().handshake(SessionState(instructions="hi")).frames)
    session = frames[0]["session"]
    assert "type" not in session
    assert session["voice"] == "eve"
    assert session["turn_detection"]["type"] == "server_vad"
    assert session["audio"]["input"]["transcription"] == {"model": "grok-transcribe"}
    manual = _frames(
        XAIRealtime(turn_detection={"type": None}).new_translator().handshake(SessionState()).frames
    )
    assert manual[0]["session"]["turn_detection"] == {"type": None}


def test_handshake_history_cap_keeps_calls_with_outputs() -> None:
    limits = Limits(max_history_messages=3)
    t = _openai(limits=limits)
    handshake = t.handshake(SessionState(items=_HISTORY))
    assert handshake.history_truncated  # the reconnect is then reported as not fully restored
    assert not _openai().handshake(SessionState(items=_HISTORY)).history_truncated
    items = [f["item"] for f in _frames(handshake.frames)[1:]]
    # Newest three: the output (its call was cut off, so it goes too), the empty user item
    # (skipped) and the last assistant message.
    assert items == [
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "It is 12 degrees."}],
        }
    ]


# --- classify -----------------------------------------------------------------------------


def _lost(close_code: int | None) -> ConnectionLostError:
    return ConnectionLostError("x", close_code=close_code, recoverable=True)


def _refused(status: int, retry_after_s: float | None = None) -> ProviderError:
    return ProviderError("x", http_status=status, retry_after_s=retry_after_s)


@pytest.mark.parametrize(
    ("error", "disposition"),
    [
        # close codes: a close we did not ask for is recoverable, a refusing one is not
        (_lost(1000), Disposition.RECOVERABLE),
        (_lost(1001), Disposition.RECOVERABLE),
        (_lost(1006), Disposition.RECOVERABLE),
        (_lost(1011), Disposition.RECOVERABLE),
        (_lost(1012), Disposition.RECOVERABLE),
        (_lost(1013), Disposition.RECOVERABLE),
        (_lost(None), Disposition.RECOVERABLE),
        (_lost(1008), Disposition.FATAL),
        (_lost(4001), Disposition.FATAL),
        # HTTP statuses of a refused upgrade
        (_refused(401), Disposition.FATAL),
        (_refused(403), Disposition.FATAL),
        (_refused(404), Disposition.FATAL),
        (_refused(408), Disposition.RECOVERABLE),
        (_refused(429), Disposition.RECOVERABLE),
        (_refused(500), Disposition.RECOVERABLE),
        (_refused(503), Disposition.RECOVERABLE),
        # the provider's own codes
        (ProviderError("x", provider_code="session_expired"), Disposition.RECOVERABLE),
        (ProviderError("x", provider_code="server_error"), Disposition.RECOVERABLE),
        (ProviderError("x", provider_code="rate_limit_exceeded"), Disposition.RECOVERABLE),
        (
            ProviderError("x", provider_code="invalid_api_key", recoverable=True),
            Disposition.FATAL,
        ),
        (ProviderError("x", provider_code="insufficient_quota"), Disposition.FATAL),
        # a fatal provider code wins over a close code that alone would be recoverable
        (
            ConnectionLostError("x", close_code=1000, provider_code="invalid_api_key"),
            Disposition.FATAL,
        ),
        # failures the connector detected itself
        (ProviderTimeout("x", condition="connect_timeout"), Disposition.RECOVERABLE),
        (
            ProviderError("x", condition="connect_failed", recoverable=True),
            Disposition.RECOVERABLE,
        ),
        (ProviderError("x", condition="missing_api_key", recoverable=False), Disposition.FATAL),
        (ProtocolError("bad frame"), Disposition.RECOVERABLE),
        (RuntimeError("anything"), Disposition.RECOVERABLE),
    ],
)
def test_classify(error: BaseException, disposition: Disposition) -> None:
    result = _openai().classify(error)
    assert result.disposition is disposition
    if disposition is Disposition.RECOVERABLE:
        assert result.fresh_start
        assert result.reason


@pytest.mark.parametrize(
    ("error", "retry_after_s"),
    [
        (_refused(429, retry_after_s=3.0), 3.0),
        (_refused(503, retry_after_s=1.5), 1.5),
        (_refused(503), None),
        (ProviderError("x", provider_code="rate_limit_exceeded", retry_after_s=3.0), 3.0),
    ],
)
def test_classify_keeps_the_servers_retry_after(
    error: ProviderError, retry_after_s: float | None
) -> None:
    result = _openai().classify(error)
    assert result.disposition is Disposition.RECOVERABLE
    assert result.retry_after_s == retry_after_s


def test_classify_tables_hold_one_kind_each() -> None:
    assert all(isinstance(c, int) for c in FATAL_CLOSE_CODES | RETRYABLE_HTTP_STATUSES)
    assert not any(c.isdigit() for c in FATAL_PROVIDER_CODES | RECOVERABLE_PROVIDER_CODES)


# --- presets ------------------------------------------------------------------------------


def test_presets_are_configuration() -> None:
    openai = OpenAIRealtime()
    xai = XAIRealtime(model="grok-voice-think-fast-1.0")
    assert type(xai) is type(openai)
    assert (openai.name, openai.model, openai.url) == (
        "openai",
        "gpt-realtime",
        "wss://api.openai.com/v1/realtime",
    )
    assert (xai.name, xai.model, xai.url, xai.voice, xai.api_key_env) == (
        "xai",
        "grok-voice-think-fast-1.0",
        "wss://api.x.ai/v1/realtime",
        "eve",
        "XAI_API_KEY",
    )
    assert xai.limits.rotate_after_s == 3000
    assert openai.limits.rotate_before_expiry_s == 600
    # Runtime check only: statically the frozen preset's read-only name/model/limits do not
    # match the Protocol's settable attributes.
    as_object: object = openai
    assert isinstance(as_object, Provider)
    t = xai.new_translator()
    assert isinstance(t, Translator)
    assert (t.provider, t.capabilities.truncate, t.capabilities.make_before_break) == (
        "xai",
        False,
        True,
    )
    assert openai.new_translator().capabilities.truncate
    assert not openai.new_translator().capabilities.server_resume


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    with pytest.raises(ProviderError, match="XAI_API_KEY") as info:
        XAIRealtime().new_connector()
    assert not info.value.recoverable
    assert _openai().classify(info.value).disposition is Disposition.FATAL


def test_key_never_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-very-secret-value"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    preset = OpenAIRealtime()
    connector = preset.new_connector()
    with_key = OpenAIRealtime(api_key=secret)
    for obj in (preset, connector, with_key, with_key.new_connector(), with_key.new_translator()):
        assert secret not in repr(obj)
        assert secret not in str(obj)


def test_static_contract_and_exports() -> None:
    import antiphon.adapters.openai as package

    translator: Translator = OpenAIRealtime().new_translator()  # checked by mypy too
    connector: Connector = OpenAIRealtime(api_key="k").new_connector()
    assert isinstance(translator, Translator)
    assert isinstance(connector, Connector)
    assert sorted(package.__all__) == sorted(
        name for name in dir(package) if not name.startswith("_") and name != "annotations"
    )
