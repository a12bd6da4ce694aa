"""The Phonic translator: every message of the protocol both ways, the handshake for a new,
a resumed and a re-seeded conversation, audio chunking and G.711, and failure classes.

Frames are written from the protocol reference (no public recording of Phonic exists) with
the field names of the official SDK.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import msgspec
import pytest

from antiphon.adapters import Disposition, Handshake, Limits
from antiphon.adapters.phonic import MAX_CHUNK_MS, Phonic, PhonicTranslator, resumable_close
from antiphon.codecs import mulaw_decode, mulaw_encode
from antiphon.errors import ConnectionLostError, ProtocolError, ProviderError, ProviderTimeout
from antiphon.protocol import (
    AssistantMessage,
    AssistantTruncated,
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
    InputTranscriptFinal,
    Interrupt,
    KeepAlive,
    ProviderErrorEvent,
    ProviderSessionInfo,
    ResumptionHandleUpdated,
    SendText,
    SessionStarted,
    SessionState,
    ToolCallCancelRequested,
    ToolCallRequested,
    ToolOutcome,
    ToolSpec,
    UnknownProviderEvent,
    UpdateInstructions,
    UpdateOptions,
    UpdateTools,
    UserAudioCommitted,
    UserMessage,
    UserSpeechStarted,
    UserSpeechStopped,
    fold,
)

WEATHER = ToolSpec(
    name="get_weather",
    description="Weather in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)

STATE = SessionState(
    session_id="s1",
    provider="phonic",
    instructions="Be brief.",
    tools=(WEATHER,),
    epoch=1,
)

HISTORY = (
    UserMessage(id="u1", text="What's the weather in Paris?"),
    AssistantMessage(id="a1", text="Let me check."),
    FunctionCall(id="c1", name="get_weather", arguments='{"city": "Paris"}'),
    FunctionOutput(id="c1", name="get_weather", output='"sunny"'),
    AssistantMessage(id="a2", text="It is sunny in Paris.", interrupted=True),
)


def frame(**fields: Any) -> str:
    return json.dumps(fields)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ready(translator: PhonicTranslator, state: SessionState = STATE) -> list[Event]:
    translator.handshake(state)
    events = translator.decode(frame(type="conversation_created", conversation_id="conv_1"))
    events += translator.decode(frame(type="ready_to_start_conversation"))
    assert translator.ready
    return events


def decode_all(translator: PhonicTranslator, *frames: str) -> list[Event]:
    return [event for f in frames for event in translator.decode(f)]


def config_of(handshake: Handshake) -> dict[str, Any]:
    (only,) = handshake.frames
    config: dict[str, Any] = json.loads(only)
    assert config["type"] == "config"
    return config


# --- handshake ------------------------------------------------------------------------------


def test_a_new_conversation_is_one_config_with_tools_formats_and_voice() -> None:
    translator = Phonic(api_key="k", voice_id="sabrina", welcome_message="Hi!").new_translator()
    handshake = translator.handshake(STATE)
    assert not handshake.resumed
    assert not handshake.history_truncated
    assert translator.connect_request(STATE).query == {}
    config = config_of(handshake)
    assert config["system_prompt"] == "Be brief."
    assert config["input_format"] == config["output_format"] == "pcm_24000"
    assert config["voice_id"] == "sabrina"
    assert config["welcome_message"] == "Hi!"
    (tool,) = config["tools"]
    assert tool["type"] == "custom_websocket"
    assert tool["execution_mode"] == "sync"
    assert tool["tool_call_output_timeout_ms"] == 60_000
    assert tool["tool_schema"] == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city.",
            "parameters": WEATHER.parameters,
        },
    }


def test_options_and_config_extra_reach_the_config() -> None:
    translator = Phonic(api_key="k", config_extra={"vad_threshold": 0.6}).new_translator()
    state = msgspec.structs.replace(
        STATE, options={"voice": "grant", "audio_speed": 1.2, "config": {"project": "p"}}
    )
    config = config_of(translator.handshake(state))
    assert config["voice_id"] == "grant"
    assert config["audio_speed"] == 1.2
    assert config["vad_threshold"] == 0.6
    assert config["project"] == "p"


def test_a_conversation_id_resumes_without_sending_anything() -> None:
    translator = PhonicTranslator()
    state = msgspec.structs.replace(STATE, resumption_handle="conv_7", items=HISTORY)
    assert translator.connect_request(state).query == {"reconnect_conv_id": "conv_7"}
    handshake = translator.handshake(state)
    assert handshake == Handshake(frames=(), resumed=True)
    assert not translator.ready
    events = translator.decode(frame(type="conversation_reconnected", conversation_id="conv_7"))
    assert translator.ready
    assert events == [
        ProviderSessionInfo(conversation_id="conv_7"),
        ResumptionHandleUpdated(handle="conv_7"),
    ]


def test_a_re_seeded_conversation_folds_the_history_into_the_prompt() -> None:
    translator = Phonic(api_key="k", welcome_message="Hi!").new_translator()
    state = msgspec.structs.replace(STATE, items=HISTORY)
    handshake = translator.handshake(state)
    assert handshake.history_truncated  # a transcript in a prompt: not restored as such
    config = config_of(handshake)
    prompt = config["system_prompt"]
    assert prompt.startswith("Be brief.\n\n")
    lines = prompt.splitlines()[-5:]
    assert lines == [
        "User: What's the weather in Paris?",
        "Assistant: Let me check.",
        'Assistant called tool get_weather with {"city": "Paris"}',
        'Tool get_weather returned: "sunny"',
        "Assistant: It is sunny in Paris. [interrupted by the user]",
    ]
    assert "welcome_message" not in config  # no second greeting mid-conversation


def test_the_seed_keeps_the_newest_lines_within_its_size() -> None:
    translator = PhonicTranslator(max_seed_chars=60)
    state = msgspec.structs.replace(STATE, items=HISTORY)
    prompt = config_of(translator.handshake(state))["system_prompt"]
    assert "It is sunny in Paris." in prompt
    assert "What's the weather" not in prompt


def test_an_undelivered_output_is_left_out_of_the_seed() -> None:
    state = fold(
        [
            SessionStarted(session_id="s", provider="phonic", instructions="x"),
            ToolCallRequested(call_id="c9", name="get_weather", arguments="{}"),
        ]
    )
    state = msgspec.structs.replace(
        state, items=(*state.items, FunctionOutput(id="c9", name="get_weather", output="SECRET"))
    )
    handshake = PhonicTranslator().handshake(state)
    assert "SECRET" not in config_of(handshake)["system_prompt"]


# --- decode: conversation, user -----------------------------------------------------------


def test_conversation_created_is_the_resumption_handle() -> None:
    translator = PhonicTranslator()
    translator.handshake(STATE)
    assert translator.decode(frame(type="conversation_created", conversation_id="conv_1")) == [
        ProviderSessionInfo(conversation_id="conv_1"),
        ResumptionHandleUpdated(handle="conv_1"),
    ]
    assert not translator.ready
    assert translator.decode(frame(type="ready_to_start_conversation")) == []
    assert translator.ready


def test_a_user_turn_is_started_stopped_committed_and_transcribed() -> None:
    translator = PhonicTranslator()
    ready(translator)
    translator.encode(AudioFrame(pcm=b"\0\0" * 12000, index=0), STATE)  # 500 ms sent
    events = decode_all(
        translator,
        frame(type="user_started_speaking"),
        frame(type="user_finished_speaking"),
        frame(type="input_text", text="Hello there.", language="en"),
    )
    assert events == [
        UserSpeechStarted(item_id="u1-1"),
        UserSpeechStopped(item_id="u1-1", audio_end_ms=500),
        # The safe point lags what was sent: audio still in flight is re-sent after a drop.
        UserAudioCommitted(item_id="u1-1", audio_end_ms=300),
        InputTranscriptFinal(item_id="u1-1", text="Hello there."),
    ]


def test_input_cancelled_leaves_the_turn_empty() -> None:
    translator = PhonicTranslator()
    ready(translator)
    events = decode_all(
        translator,
        frame(type="user_started_speaking"),
        frame(type="input_cancelled"),
        frame(type="input_cancelled"),
    )
    assert events == [
        UserSpeechStarted(item_id="u1-1"),
        InputTranscriptFinal(item_id="u1-1", text=""),
    ]


# --- decode: assistant --------------------------------------------------------------------


def test_a_reply_streams_audio_and_text_between_started_and_finished() -> None:
    translator = PhonicTranslator()
    ready(translator)
    pcm = b"\x01\x02" * 480
    events = decode_all(
        translator,
        frame(type="audio_chunk", audio=b64(b"\0\0" * 480), text=""),  # silence between turns
        frame(type="assistant_started_speaking"),
        frame(type="audio_chunk", audio=b64(pcm), text="Hi", timings={"ttft": 1.0}),
        frame(type="audio_chunk", audio=b64(pcm), text=" there"),
        frame(type="assistant_finished_speaking"),
        frame(type="audio_chunk", audio=b64(b"\0\0" * 480), text=""),
    )
    assert events == [
        GenerationStarted(generation_id="g1-1"),
        GenerationAudioDelta(generation_id="g1-1", item_id="g1-1", sample_rate=24_000, audio=pcm),
        GenerationTextDelta(generation_id="g1-1", item_id="g1-1", text="Hi"),
        GenerationAudioDelta(generation_id="g1-1", item_id="g1-1", sample_rate=24_000, audio=pcm),
        GenerationTextDelta(generation_id="g1-1", item_id="g1-1", text=" there"),
        GenerationEnded(generation_id="g1-1", reason=GenerationEndReason.COMPLETED),
        ResumptionHandleUpdated(handle="conv_1"),
    ]


def test_text_outside_a_turn_opens_a_generation() -> None:
    translator = PhonicTranslator()
    ready(translator)
    events = translator.decode(frame(type="audio_chunk", audio="", text="Hello"))
    assert events == [
        GenerationStarted(generation_id="g1-1"),
        GenerationTextDelta(generation_id="g1-1", item_id="g1-1", text="Hello"),
    ]


def test_sound_outside_a_turn_opens_a_generation_and_silence_does_not() -> None:
    translator = PhonicTranslator(output_format="mulaw_8000", input_format="mulaw_8000")
    ready(translator)
    assert translator.decode(frame(type="audio_chunk", audio=b64(b"\xff\x7f" * 160))) == []
    events = translator.decode(frame(type="audio_chunk", audio=b64(b"\x10" * 320), text=""))
    assert [type(e) for e in events] == [GenerationStarted, GenerationAudioDelta]


def test_mulaw_output_is_decoded_to_pcm16_at_8khz() -> None:
    translator = Phonic(api_key="k", input_format="mulaw_8000", output_format="mulaw_8000")
    t = translator.new_translator()
    ready(t)
    codes = bytes(range(256))
    events = decode_all(
        t,
        frame(type="assistant_started_speaking"),
        frame(type="audio_chunk", audio=b64(codes), text=""),
    )
    audio = events[-1]
    assert isinstance(audio, GenerationAudioDelta)
    assert audio.sample_rate == 8000
    assert audio.audio == mulaw_decode(codes)


def test_a_barge_in_cuts_the_reply_and_interrupted_response_keeps_what_was_heard() -> None:
    translator = PhonicTranslator()
    events = ready(translator)
    pcm = b"\x01\x02" * 2400  # 100 ms at 24 kHz
    events += decode_all(
        translator,
        frame(type="assistant_started_speaking"),
        frame(type="audio_chunk", audio=b64(pcm), text="Once upon a time,"),
        frame(type="audio_chunk", audio=b64(pcm), text=" a robot lived by the sea."),
        frame(type="user_started_speaking"),
    )
    assert events[-2:] == [
        GenerationEnded(
            generation_id="g1-1", reason=GenerationEndReason.INTERRUPTED, detail="barge-in"
        ),
        UserSpeechStarted(item_id="u1-1"),
    ]
    later = decode_all(
        translator,
        frame(type="user_finished_speaking"),
        frame(type="assistant_finished_speaking"),  # nothing open any more
        frame(type="interrupted_response", text="Once upon a time,"),
    )
    assert later[-2:] == [
        ResumptionHandleUpdated(handle="conv_1"),
        AssistantTruncated(item_id="g1-1", audio_end_ms=200, text="Once upon a time,"),
    ]
    state = fold([SessionStarted(session_id="s", provider="phonic"), *events, *later])
    (message,) = [i for i in state.items if isinstance(i, AssistantMessage)]
    assert message.text == "Once upon a time,"
    assert message.interrupted
    assert message.heard_ms == 200


def test_interrupted_response_without_a_speech_start_cuts_the_open_reply() -> None:
    translator = PhonicTranslator()
    ready(translator)
    events = decode_all(
        translator,
        frame(type="assistant_started_speaking"),
        frame(type="audio_chunk", audio="", text="Once upon"),
        frame(type="interrupted_response", text="Once"),
    )
    assert events[-2:] == [
        GenerationEnded(
            generation_id="g1-1", reason=GenerationEndReason.INTERRUPTED, detail="barge-in"
        ),
        AssistantTruncated(item_id="g1-1", audio_end_ms=0, text="Once"),
    ]
    assert translator.decode(frame(type="interrupted_response", text="again")) == []


def test_chose_not_to_respond_and_ended_conversation() -> None:
    translator = PhonicTranslator()
    ready(translator)
    assert decode_all(
        translator,
        frame(type="assistant_started_speaking"),
        frame(type="assistant_chose_not_to_respond"),
    ) == [
        GenerationStarted(generation_id="g1-1"),
        GenerationEnded(generation_id="g1-1", reason=GenerationEndReason.COMPLETED),
    ]
    (ended,) = translator.decode(frame(type="assistant_ended_conversation"))
    assert isinstance(ended, ProviderErrorEvent)
    assert ended.code == "assistant_ended_conversation"
    verdict = translator.classify(ConnectionLostError("closed", close_code=1000))
    assert verdict.disposition is Disposition.FATAL


# --- decode: tools ------------------------------------------------------------------------


def test_a_tool_call_ends_the_generation_and_the_follow_up_is_a_new_one() -> None:
    translator = PhonicTranslator()
    ready(translator)
    events = decode_all(
        translator,
        frame(type="assistant_started_speaking"),
        frame(type="audio_chunk", audio="", text="Let me check."),
        frame(
            type="tool_call",
            tool_call_id="tc_1",
            tool_name="get_weather",
            parameters={"city": "Paris"},
        ),
        frame(type="tool_call_output_processed", tool_call_id="tc_1", tool={"name": "x"}),
        frame(type="audio_chunk", audio="", text="It is sunny."),
        frame(type="assistant_finished_speaking"),
    )
    assert events == [
        GenerationStarted(generation_id="g1-1"),
        GenerationTextDelta(generation_id="g1-1", item_id="g1-1", text="Let me check."),
        ToolCallRequested(
            call_id="tc_1", name="get_weather", arguments='{"city":"Paris"}', generation_id="g1-1"
        ),
        GenerationEnded(generation_id="g1-1", reason=GenerationEndReason.TOOL_CALL),
        GenerationStarted(generation_id="g1-2"),
        GenerationTextDelta(generation_id="g1-2", item_id="g1-2", text="It is sunny."),
        GenerationEnded(generation_id="g1-2", reason=GenerationEndReason.COMPLETED),
        ResumptionHandleUpdated(handle="conv_1"),
    ]


def test_tool_call_interrupted_withdraws_the_call() -> None:
    translator = PhonicTranslator()
    ready(translator)
    assert translator.decode(
        frame(type="tool_call_interrupted", tool_call_id="tc_1", tool_name="get_weather")
    ) == [ToolCallCancelRequested(call_ids=("tc_1",), reason="interrupted")]


# --- decode: errors and the unknown ---------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            {"type": "error", "error": {"message": "bad", "code": "invalid_config"}},
            ProviderErrorEvent(code="invalid_config", message="bad", recoverable=True),
        ),
        (
            {
                "type": "error",
                "error": {"message": "bad"},
                "param_errors": {"voice_id": "unknown voice"},
            },
            ProviderErrorEvent(
                code="error", message="bad (voice_id: unknown voice)", recoverable=True
            ),
        ),
        (
            {"type": "error", "message": "flat", "code": 7},
            ProviderErrorEvent(code="7", message="flat", recoverable=True),
        ),
        (
            {"type": "warning", "warning": {"message": "slow down"}},
            ProviderErrorEvent(code="warning", message="slow down", recoverable=True),
        ),
    ],
)
def test_errors_and_warnings(message: dict[str, Any], expected: Event) -> None:
    assert PhonicTranslator().decode(json.dumps(message)) == [expected]


def test_unknown_types_and_dtmf_are_kept() -> None:
    translator = PhonicTranslator()
    text = frame(type="brand_new_event", x=1)
    assert translator.decode(text) == [
        UnknownProviderEvent(provider_type="brand_new_event", raw=text)
    ]
    (dtmf,) = translator.decode(frame(type="dtmf", digits="42"))
    assert isinstance(dtmf, UnknownProviderEvent)
    assert dtmf.provider_type == "dtmf"
    assert '"42"' in dtmf.raw


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        b"\xff\xfe",
        "[]",
        '{"no_type": 1}',
        '{"type": 5}',
        '{"type": "conversation_created"}',  # its id is required
        '{"type": "tool_call", "tool_call_id": "x"}',
        '{"type": "audio_chunk", "audio": 5}',
        '{"type": "assistant_started_speaking"}{"type": "audio_chunk", "audio": "!!"}',
    ],
)
def test_malformed_frames_are_protocol_errors(bad: str | bytes) -> None:
    with pytest.raises(ProtocolError):
        PhonicTranslator().decode(bad)


@pytest.mark.parametrize("audio", ["!!!", b64(b"\x01\x02\x03")])
def test_bad_reply_audio_is_a_protocol_error(audio: str) -> None:
    translator = PhonicTranslator()
    ready(translator)
    translator.decode(frame(type="assistant_started_speaking"))
    with pytest.raises(ProtocolError):
        translator.decode(frame(type="audio_chunk", audio=audio, text=""))


def test_a_binary_json_frame_decodes_like_text() -> None:
    translator = PhonicTranslator()
    assert translator.decode(b'{"type": "ready_to_start_conversation"}') == []
    assert translator.ready


# --- encode -------------------------------------------------------------------------------


def chunks(frames: list[str | bytes]) -> list[bytes]:
    out = []
    for f in frames:
        msg = json.loads(f)
        assert msg["type"] == "audio_chunk"
        out.append(base64.b64decode(msg["audio"]))
    return out


@pytest.mark.parametrize("chunk_ms", [10, 20, MAX_CHUNK_MS])
def test_audio_is_cut_into_chunks_of_at_most_40_ms(chunk_ms: int) -> None:
    translator = PhonicTranslator(
        input_format="pcm_44100", output_format="pcm_44100", chunk_ms=chunk_ms
    )
    pcm = bytes(range(256)) * 69  # 17664 bytes ≈ 200 ms at 44.1 kHz, not a whole chunk count
    pieces = chunks(translator.encode(AudioFrame(pcm=pcm, index=0), STATE))
    assert b"".join(pieces) == pcm
    limit = 44_100 * MAX_CHUNK_MS // 1000 * 2
    assert all(len(p) <= limit and len(p) % 2 == 0 for p in pieces)
    assert all(len(p) == 44_100 * chunk_ms // 1000 * 2 for p in pieces[:-1])


def test_mulaw_input_is_g711_of_the_pcm() -> None:
    translator = PhonicTranslator(input_format="mulaw_8000", output_format="mulaw_8000")
    pcm = (b"\x10\x27\xf0\xd8" * 80)[:320]  # 20 ms at 8 kHz
    pieces = chunks(translator.encode(AudioFrame(pcm=pcm, index=0), STATE))
    assert b"".join(pieces) == mulaw_encode(pcm)
    assert [len(p) for p in pieces] == [160]


def test_text_and_reply_requests() -> None:
    translator = PhonicTranslator()
    assert [json.loads(f) for f in translator.encode(SendText(text="hi"), STATE)] == [
        {"type": "generate_reply", "user_message": "hi"}
    ]
    assert [
        json.loads(f) for f in translator.encode(SendText(text="hi", generate_reply=False), STATE)
    ] == [{"type": "add_system_message", "system_message": "User: hi"}]
    assert [json.loads(f) for f in translator.encode(GenerateReply(), STATE)] == [
        {"type": "generate_reply"}
    ]
    assert [json.loads(f) for f in translator.encode(GenerateReply(instructions="Go"), STATE)] == [
        {"type": "generate_reply", "system_message": "Go"}
    ]


def test_a_result_for_a_call_of_this_conversation_is_a_tool_call_output() -> None:
    translator = PhonicTranslator()
    ready(translator)
    translator.decode(frame(type="tool_call", tool_call_id="tc_1", tool_name="get_weather"))
    out = translator.encode(
        DeliverToolResult(call_id="tc_1", name="get_weather", output='{"t": 21}'), STATE
    )
    assert [json.loads(f) for f in out] == [
        {"type": "tool_call_output", "tool_call_id": "tc_1", "output": {"t": 21}}
    ]
    failed = translator.encode(
        DeliverToolResult(
            call_id="tc_1", name="get_weather", output="boom", outcome=ToolOutcome.ERROR
        ),
        STATE,
    )
    assert json.loads(failed[0])["output"] == {"error": "boom", "outcome": "error"}


def test_a_resumed_conversation_still_knows_its_earlier_calls() -> None:
    translator = PhonicTranslator()
    translator.handshake(msgspec.structs.replace(STATE, resumption_handle="conv_1"))
    out = translator.encode(
        DeliverToolResult(call_id="tc_0", name="get_weather", output='"x"'), STATE
    )
    assert json.loads(out[0])["type"] == "tool_call_output"


def test_a_result_for_a_call_of_an_earlier_conversation_is_a_system_message() -> None:
    translator = PhonicTranslator()
    ready(translator)
    respond = translator.encode(
        DeliverToolResult(call_id="tc_0", name="get_weather", output='"sunny"'), STATE
    )
    assert [json.loads(f) for f in respond] == [
        {"type": "generate_reply", "system_message": 'Tool get_weather returned: "sunny"'}
    ]
    quiet = translator.encode(
        DeliverToolResult(call_id="tc_0", name="get_weather", output='"sunny"', respond=False),
        STATE,
    )
    assert json.loads(quiet[0])["type"] == "add_system_message"


def test_mid_session_updates() -> None:
    translator = PhonicTranslator()
    assert [
        json.loads(f) for f in translator.encode(UpdateInstructions(instructions="New"), STATE)
    ] == [{"type": "update_system_prompt", "system_prompt": "New"}]
    (tools,) = translator.encode(UpdateTools(tools=(WEATHER,)), STATE)
    msg = json.loads(tools)
    assert msg["type"] == "update_tools_subset"
    assert msg["tools"][0]["tool_schema"]["function"]["name"] == "get_weather"
    state = msgspec.structs.replace(STATE, items=HISTORY)
    (reset,) = translator.encode(UpdateOptions(options={"voice": "nolan"}), state)
    msg = json.loads(reset)
    assert msg["type"] == "reset"
    assert "type" not in msg["config"]
    assert msg["config"]["voice_id"] == "nolan"
    assert "It is sunny in Paris." in msg["config"]["system_prompt"]


@pytest.mark.parametrize(
    "command", [Interrupt(played_ms=100), CommitAudio(), KeepAlive(), CloseSession()]
)
def test_what_phonic_has_no_message_for_encodes_to_nothing(command: Any) -> None:
    assert PhonicTranslator().encode(command, STATE) == []


# --- classify -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "disposition", "fresh", "retry_after"),
    [
        (ConnectionLostError("drop", close_code=1006), Disposition.RECOVERABLE, False, None),
        (ConnectionLostError("eof", condition="eof"), Disposition.RECOVERABLE, False, None),
        (ConnectionLostError("restart", close_code=1012), Disposition.RECOVERABLE, False, None),
        (
            ConnectionLostError("drain", close_code=1001, provider_code="restarting"),
            Disposition.RECOVERABLE,
            False,
            None,
        ),
        (ConnectionLostError("away", close_code=1001), Disposition.RECOVERABLE, True, None),
        (ConnectionLostError("normal", close_code=1000), Disposition.RECOVERABLE, True, None),
        (ConnectionLostError("gone", close_code=4800), Disposition.RECOVERABLE, True, None),
        (ConnectionLostError("gone", close_code=4801), Disposition.RECOVERABLE, True, None),
        (ConnectionLostError("full", close_code=4004), Disposition.RECOVERABLE, False, 10.0),
        (ConnectionLostError("limit", close_code=4010), Disposition.RECOVERABLE, False, 10.0),
        (ConnectionLostError("account", close_code=4000), Disposition.FATAL, False, None),
        (ConnectionLostError("no input", close_code=4500), Disposition.FATAL, False, None),
        (ConnectionLostError("policy", close_code=1008), Disposition.FATAL, False, None),
        (ConnectionLostError("other", close_code=4321), Disposition.FATAL, False, None),
        (ConnectionLostError("internal", close_code=1011), Disposition.RECOVERABLE, True, None),
        (ProviderTimeout("stalled", condition="stalled"), Disposition.RECOVERABLE, True, None),
        (ProviderError("refused", http_status=401), Disposition.FATAL, False, None),
        (
            ProviderError("busy", http_status=429, retry_after_s=3.0),
            Disposition.RECOVERABLE,
            False,
            3.0,
        ),
        (ProviderError("down", http_status=503), Disposition.RECOVERABLE, False, None),
        (
            ProviderError("unreachable", condition="connect_failed", recoverable=True),
            Disposition.RECOVERABLE,
            False,
            None,
        ),
        (ProviderError("no key", condition="missing_api_key"), Disposition.FATAL, False, None),
        (ValueError("odd"), Disposition.RECOVERABLE, True, None),
    ],
)
def test_classify(
    error: BaseException, disposition: Disposition, fresh: bool, retry_after: float | None
) -> None:
    verdict = PhonicTranslator().classify(error)
    assert verdict.disposition is disposition
    if disposition is Disposition.RECOVERABLE:
        assert verdict.fresh_start is fresh
        assert verdict.retry_after_s == retry_after


def test_resumable_closes_follow_the_sdk() -> None:
    assert resumable_close(1006, "")
    assert resumable_close(1012, "restarting")
    assert resumable_close(1001, "restarting")
    assert not resumable_close(1001, "")
    assert not resumable_close(1000, "")
    assert not resumable_close(4800, "")


# --- configuration ------------------------------------------------------------------------


def test_the_preset_derives_limits_from_the_formats() -> None:
    phonic = Phonic(api_key="secret-key", input_format="mulaw_8000", output_format="pcm_44100")
    assert phonic.limits.input_sample_rate == 8000
    assert phonic.limits.output_sample_rate == 44_100
    assert phonic.limits.input_frame_bytes == 320
    assert phonic.handle_max_age_s is None
    assert "secret-key" not in repr(phonic)


@pytest.mark.parametrize(
    "changes",
    [
        {"input_format": "pcm_11025"},
        {"chunk_ms": 41},
        {"limits": Limits(input_sample_rate=16_000, output_sample_rate=24_000)},
    ],
)
def test_bad_configuration_fails_at_once(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"format|chunk_ms"):
        Phonic(api_key="k", **changes)


def test_no_key_is_a_fatal_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PHONIC_API_KEY", raising=False)
    with pytest.raises(ProviderError, match="PHONIC_API_KEY") as info:
        Phonic().new_connector()
    assert not info.value.recoverable


def test_the_key_comes_from_the_environment_and_is_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PHONIC_API_KEY", "ph-secret-123")
    connector = Phonic().new_connector()
    assert "ph-secret-123" not in repr(connector)
    assert "ph-secret-123" not in repr(Phonic())
