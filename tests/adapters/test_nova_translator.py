"""Nova Sonic translator: decode tables, handshake priming, encode, classify."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest

from antiphon.adapters import Disposition, Translator
from antiphon.adapters.nova import (
    DEFAULT_LIMITS,
    NovaOptions,
    NovaSonic,
    NovaTranslator,
    history_messages,
    is_interrupted_marker,
)
from antiphon.errors import ConnectionLostError, ProtocolError, ProviderError, ProviderTimeout
from antiphon.protocol import (
    AssistantMessage,
    AudioFrame,
    CloseSession,
    DeliverToolResult,
    Event,
    FunctionCall,
    FunctionOutput,
    GenerationAudioDelta,
    GenerationEnded,
    GenerationEndReason,
    GenerationStarted,
    GenerationTextDelta,
    InputTranscriptFinal,
    Interrupt,
    KeepAlive,
    SendText,
    SessionState,
    ToolCallRequested,
    ToolSpec,
    UnknownProviderEvent,
    UpdateInstructions,
    UpdateTools,
    Usage,
    UserAudioCommitted,
    UserMessage,
    fold,
)

# --- helpers: output events as the service sends them ---------------------------------------


def ev(name: str, **body: Any) -> bytes:
    body.setdefault("completionId", "c1")
    return json.dumps({"event": {name: body}}).encode()


def start(cid: str, kind: str, role: str, stage: str | None = None) -> bytes:
    extra: dict[str, Any] = {}
    if stage is not None:
        extra["additionalModelFields"] = json.dumps({"generationStage": stage})
    return ev("contentStart", contentId=cid, type=kind, role=role, **extra)


def text(cid: str, role: str, content: str) -> bytes:
    return ev("textOutput", contentId=cid, role=role, content=content)


def end(cid: str, kind: str, stop: str) -> bytes:
    return ev("contentEnd", contentId=cid, type=kind, stopReason=stop)


def audio(cid: str, pcm: bytes) -> bytes:
    return ev("audioOutput", contentId=cid, content=base64.b64encode(pcm).decode())


def user_turn(cid: str, words: str) -> list[bytes]:
    return [
        start(cid, "TEXT", "USER", "FINAL"),
        text(cid, "USER", words),
        end(cid, "TEXT", "END_TURN"),
    ]


def reply(prefix: str, words: str, pcm: bytes = b"\x01\x00" * 4) -> list[bytes]:
    s, a, f = f"{prefix}-spec", f"{prefix}-audio", f"{prefix}-final"
    return [
        start(s, "TEXT", "ASSISTANT", "SPECULATIVE"),
        text(s, "ASSISTANT", words),
        end(s, "TEXT", "PARTIAL_TURN"),
        start(a, "AUDIO", "ASSISTANT"),
        audio(a, pcm),
        audio(a, pcm),
        end(a, "AUDIO", "END_TURN"),
        start(f, "TEXT", "ASSISTANT", "FINAL"),
        text(f, "ASSISTANT", words),
        end(f, "TEXT", "END_TURN"),
    ]


def decode(tr: NovaTranslator, frames: list[bytes]) -> list[Event]:
    out: list[Event] = []
    for frame in frames:
        out += tr.decode(frame)
    return out


def primed(state: SessionState | None = None, **kw: Any) -> NovaTranslator:
    tr = NovaTranslator(**kw)
    tr.handshake(state or SessionState(session_id="s", epoch=2))
    return tr


def names(frames: Sequence[Any]) -> list[str]:
    return [next(iter(json.loads(f)["event"])) for f in frames]


def bodies(frames: Sequence[Any]) -> list[dict[str, Any]]:
    return [next(iter(json.loads(f)["event"].values())) for f in frames]


# --- contract ---------------------------------------------------------------------------------


def test_satisfies_the_translator_protocol_and_limits() -> None:
    tr = NovaSonic().new_translator()
    assert isinstance(tr, Translator)
    assert tr.provider == "nova"
    caps = tr.capabilities
    assert (caps.server_vad, caps.server_resume, caps.make_before_break, caps.truncate) == (
        True,
        False,
        True,
        False,
    )
    lim = tr.limits
    assert (lim.input_sample_rate, lim.output_sample_rate, lim.frame_ms) == (16000, 24000, 32)
    assert (lim.rotate_after_s, lim.rotate_deadline_s, lim.idle_timeout_s) == (360, 450, 170)
    assert (lim.max_history_messages, lim.max_message_bytes, lim.max_history_bytes) == (
        40,
        1000,
        40_000,
    )
    assert lim.connect_timeout_s == 35
    assert lim.input_frame_bytes == 1024


def test_ready_right_after_handshake() -> None:
    tr = NovaTranslator()
    assert not tr.ready
    tr.handshake(SessionState())
    assert tr.ready


# --- decode -----------------------------------------------------------------------------------


def test_audio_turn_speculative_and_final_not_doubled() -> None:
    tr = primed()
    pcm = b"\x02\x00\x03\x00"
    events = decode(
        tr,
        [ev("completionStart"), *user_turn("u1", "Hello there."), *reply("r", "Hi there!", pcm)],
    )
    gen = "e2/c1/r-audio"
    assert events == [
        InputTranscriptFinal(item_id="e2/u1", text="Hello there."),
        UserAudioCommitted(item_id="e2/u1"),
        GenerationStarted(generation_id=gen),
        GenerationAudioDelta(generation_id=gen, audio=pcm, sample_rate=24000),
        GenerationAudioDelta(generation_id=gen, audio=pcm, sample_rate=24000),
        GenerationTextDelta(generation_id=gen, text="Hi there!"),
        GenerationEnded(generation_id=gen, reason=GenerationEndReason.COMPLETED),
    ]
    state = fold(events, SessionState())
    assert [(type(i).__name__, getattr(i, "text", "")) for i in state.items] == [
        ("UserMessage", "Hello there."),
        ("AssistantMessage", "Hi there!"),
    ]


def test_final_segments_with_partial_turn_join_into_one_generation() -> None:
    tr = primed()
    frames = [
        start("a1", "AUDIO", "ASSISTANT"),
        audio("a1", b"\x00\x00"),
        end("a1", "AUDIO", "PARTIAL_TURN"),
        start("f1", "TEXT", "ASSISTANT", "FINAL"),
        text("f1", "ASSISTANT", "First."),
        end("f1", "TEXT", "PARTIAL_TURN"),
        start("f2", "TEXT", "ASSISTANT", "FINAL"),
        text("f2", "ASSISTANT", "Second."),
        end("f2", "TEXT", "END_TURN"),
    ]
    events = decode(tr, frames)
    texts = "".join(e.text for e in events if isinstance(e, GenerationTextDelta))
    assert texts == "First. Second."
    ended = [e for e in events if isinstance(e, GenerationEnded)]
    assert len(ended) == 1
    assert len({e.generation_id for e in events if hasattr(e, "generation_id")}) == 1


@pytest.mark.parametrize(
    "marker",
    ['{ "interrupted" : true }', '{"interrupted":true}', ' {\n "interrupted"  :\ttrue } '],
)
def test_barge_in_marker_ends_once_and_drops_late_output(marker: str) -> None:
    assert is_interrupted_marker(marker)
    tr = primed()
    frames = [
        start("a", "AUDIO", "ASSISTANT"),
        audio("a", b"\x01\x00"),
        end("a", "AUDIO", "END_TURN"),
        start("f", "TEXT", "ASSISTANT", "FINAL"),
        text("f", "ASSISTANT", marker),
        end("f", "TEXT", "INTERRUPTED"),
        audio("a", b"\x01\x00"),  # late audio of the cut generation
        ev("completionEnd", stopReason="INTERRUPTED"),
    ]
    events = decode(tr, frames)
    ended = [e for e in events if isinstance(e, GenerationEnded)]
    assert ended == [
        GenerationEnded(generation_id="e2/c1/a", reason=GenerationEndReason.INTERRUPTED)
    ]
    assert not any(isinstance(e, GenerationTextDelta) for e in events)
    assert sum(isinstance(e, GenerationAudioDelta) for e in events) == 1


def test_marker_without_open_generation_starts_nothing() -> None:
    tr = primed()
    frames = [
        start("f", "TEXT", "ASSISTANT", "FINAL"),
        text("f", "ASSISTANT", '{"interrupted": true}'),
    ]
    assert decode(tr, frames) == []


def test_interrupted_text_is_kept_and_marked() -> None:
    tr = primed()
    frames = [
        start("a", "AUDIO", "ASSISTANT"),
        audio("a", b"\x01\x00"),
        end("a", "AUDIO", "END_TURN"),
        start("f", "TEXT", "ASSISTANT", "FINAL"),
        text("f", "ASSISTANT", "Once upon"),
        text("f", "ASSISTANT", '{ "interrupted" : true }'),
        end("f", "TEXT", "INTERRUPTED"),
    ]
    state = fold(decode(tr, frames), SessionState())
    assert state.items == (AssistantMessage(id="e2/c1/a", text="Once upon", interrupted=True),)


@pytest.mark.parametrize(
    ("content", "arguments"),
    [
        ('{"city": "Paris"}', '{"city": "Paris"}'),
        (json.dumps('{"city": "Paris"}'), '{"city": "Paris"}'),  # double-encoded
        ({"city": "Paris"}, '{"city":"Paris"}'),  # an object, not a string
        ("not json", "not json"),
    ],
)
def test_tool_use_is_requested_on_tool_content_end(content: Any, arguments: str) -> None:
    tr = primed()
    use = ev("toolUse", contentId="t", toolName="get_weather", toolUseId="tu-1", content=content)
    assert decode(tr, [start("t", "TOOL", "TOOL"), use]) == [
        GenerationStarted(generation_id="e2/c1/t")
    ]
    events = tr.decode(end("t", "TOOL", "TOOL_USE"))
    assert events == [
        ToolCallRequested(
            call_id="tu-1", name="get_weather", arguments=arguments, generation_id="e2/c1/t"
        ),
        GenerationEnded(generation_id="e2/c1/t", reason=GenerationEndReason.TOOL_CALL),
    ]


def test_tool_use_flushed_by_completion_end_when_block_never_ends() -> None:
    tr = primed()
    use = ev("toolUse", contentId="t", toolName="f", toolUseId="tu", content="{}")
    events = decode(tr, [use, ev("completionEnd", stopReason="TOOL_USE")])
    assert [type(e).__name__ for e in events] == [
        "GenerationStarted",
        "ToolCallRequested",
        "GenerationEnded",
    ]


def test_follow_up_after_tool_result_is_a_new_generation() -> None:
    tr = primed()
    frames = [
        start("t", "TOOL", "TOOL"),
        ev("toolUse", contentId="t", toolName="f", toolUseId="tu", content="{}"),
        end("t", "TOOL", "TOOL_USE"),
        *reply("r", "It is sunny."),
        ev("completionEnd", stopReason="END_TURN"),
    ]
    events = decode(tr, frames)
    starts = [e.generation_id for e in events if isinstance(e, GenerationStarted)]
    assert starts == ["e2/c1/t", "e2/c1/r-audio"]
    assert [e.reason for e in events if isinstance(e, GenerationEnded)] == [
        GenerationEndReason.TOOL_CALL,
        GenerationEndReason.COMPLETED,
    ]


def test_completion_end_closes_an_open_generation() -> None:
    tr = primed()
    events = decode(tr, [audio("a", b"\x00\x00"), ev("completionEnd", stopReason="END_TURN")])
    assert events[-1] == GenerationEnded(
        generation_id="e2/c1/a", reason=GenerationEndReason.COMPLETED
    )


def test_generation_ids_differ_between_epochs() -> None:
    ids = set()
    for epoch in (1, 2):
        tr = primed(SessionState(session_id="s", epoch=epoch))
        ids |= {
            e.generation_id for e in tr.decode(audio("a", b"\0\0")) if hasattr(e, "generation_id")
        }
    assert len(ids) == 2


def test_usage_events_become_deltas_that_sum_to_totals() -> None:
    tr = primed()

    def usage(d_in: int, d_out: int, tot_in: int, tot_out: int, with_delta: bool) -> bytes:
        body: dict[str, Any] = {
            "totalInputTokens": tot_in,
            "totalOutputTokens": tot_out,
            "totalTokens": tot_in + tot_out,
        }
        if with_delta:
            body["details"] = {
                "delta": {
                    "input": {"speechTokens": d_in, "textTokens": 0},
                    "output": {"speechTokens": d_out - 1, "textTokens": 1},
                },
                "total": {},
            }
        return ev("usageEvent", **body)

    events = decode(
        tr,
        [usage(10, 5, 10, 5, True), usage(0, 0, 10, 5, False), usage(3, 7, 13, 12, False)],
    )
    assert events == [
        Usage(input_tokens=10, output_tokens=5, total_tokens=15),
        Usage(input_tokens=3, output_tokens=7, total_tokens=10),
    ]
    state = fold(events, SessionState())
    assert (state.usage.input_tokens, state.usage.output_tokens) == (13, 12)


def test_unknown_event_is_kept() -> None:
    tr = primed()
    [event] = tr.decode(b'{"event":{"brandNewEvent":{"x":1}}}')
    assert isinstance(event, UnknownProviderEvent)
    assert event.provider_type == "brandNewEvent"
    assert "brandNewEvent" in event.raw


def test_unknown_fields_are_ignored() -> None:
    tr = primed()
    frame = json.dumps(
        {"event": {"audioOutput": {"content": "AAA=", "contentId": "a", "newField": [1]}}}
    )
    assert any(isinstance(e, GenerationAudioDelta) for e in tr.decode(frame))


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"not json",
        b"[]",
        b'{"event": 3}',
        b'{"event":{"audioOutput":{"content":"***"}}}',
        b'{"event":{"textOutput":{"content":5}}}',
        b'{"event":{"toolUse":{"toolName":"f"}}}',
        b'{"event":{"usageEvent":{"totalTokens":"x"}}}',
    ],
)
def test_malformed_frames_raise_protocol_error(frame: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        primed().decode(frame)
    assert info.value.provider == "nova"


# --- handshake --------------------------------------------------------------------------------


def _state(**kw: Any) -> SessionState:
    return SessionState(session_id="sess", epoch=3, **kw)


def test_handshake_shape_with_tools_and_history() -> None:
    tool = ToolSpec(
        name="get_weather",
        description="Weather",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}},
    )
    state = _state(
        instructions="Be brief.",
        tools=(tool,),
        items=(UserMessage(id="u", text="hi"), AssistantMessage(id="a", text="hello")),
    )
    tr = NovaTranslator(NovaOptions(voice="tiffany", endpointing_sensitivity="HIGH"))
    handshake = tr.handshake(state)
    assert not handshake.history_truncated
    assert not handshake.resumed  # Nova keeps no state between streams
    frames = handshake.frames
    assert names(frames) == [
        "sessionStart",
        "promptStart",
        *["contentStart", "textInput", "contentEnd"] * 3,
        "contentStart",
    ]
    b = bodies(frames)
    assert b[0]["turnDetectionConfiguration"] == {"endpointingSensitivity": "HIGH"}
    prompt = b[1]
    assert prompt["promptName"] == tr.prompt_name
    assert prompt["audioOutputConfiguration"]["voiceId"] == "tiffany"
    assert prompt["audioOutputConfiguration"]["sampleRateHertz"] == 24000
    spec = prompt["toolConfiguration"]["tools"][0]["toolSpec"]
    assert spec["name"] == "get_weather"
    assert isinstance(spec["inputSchema"]["json"], str)
    assert json.loads(spec["inputSchema"]["json"]) == tool.parameters
    assert prompt["toolUseOutputConfiguration"] == {"mediaType": "application/json"}
    roles = [x.get("role") for x in b if "role" in x]
    assert roles == ["SYSTEM", "USER", "ASSISTANT", "USER"]
    assert [x["interactive"] for x in b if "interactive" in x] == [False, False, False, True]
    assert [x["content"] for x in b if "content" in x] == ["Be brief.", "hi", "hello"]
    last = b[-1]
    assert last["type"] == "AUDIO"
    assert last["contentName"] == tr.audio_content_name
    assert last["audioInputConfiguration"]["sampleRateHertz"] == 16000
    # every content block's start, input and end share one name; names are distinct
    content_names = [x["contentName"] for x in b if "contentName" in x]
    assert len(set(content_names)) == 4


def test_nova_1_gets_no_turn_detection_and_no_tools_means_no_tool_config() -> None:
    tr = NovaTranslator(NovaOptions(model="amazon.nova-sonic-v1:0", endpointing_sensitivity="LOW"))
    b = bodies(tr.handshake(_state()).frames)
    assert "turnDetectionConfiguration" not in b[0]
    assert "toolConfiguration" not in b[1]
    assert names(tr.handshake(_state()).frames)[2] == "contentStart"  # no instructions: no SYSTEM


def test_names_are_deterministic_per_session_and_epoch() -> None:
    state = _state(instructions="x", items=(UserMessage(id="u", text="hi"),))
    first = NovaTranslator().handshake(state)
    assert first == NovaTranslator().handshake(state)  # a replay builds the same frames
    next_epoch = NovaTranslator().handshake(msgspec.structs.replace(state, epoch=4))
    other_session = NovaTranslator().handshake(msgspec.structs.replace(state, session_id="t"))
    prompt = bodies(first.frames)[1]["promptName"]
    assert bodies(next_epoch.frames)[1]["promptName"] != prompt
    assert bodies(other_session.frames)[1]["promptName"] != prompt
    assert str(uuid.UUID(prompt)) == prompt  # names are UUIDs, as the service expects


def test_history_rendering_of_tools_and_merging() -> None:
    items = (
        AssistantMessage(id="a0", text="Welcome!"),  # leading assistant: dropped
        UserMessage(id="u1", text="Weather?"),
        UserMessage(id="u2", text="In Paris."),
        FunctionCall(id="c1", name="get_weather", arguments='{"city":"Paris"}'),
        FunctionOutput(id="c1", name="get_weather", output='"sunny"'),
        AssistantMessage(id="a1", text="It is sunny."),
        UserMessage(id="u3", text="", from_audio=True, final=False),  # empty: skipped
    )
    msgs = history_messages(items)
    assert [(m.role, m.text) for m in msgs] == [
        ("USER", "Weather?\nIn Paris."),
        (
            "ASSISTANT",
            '[tool get_weather({"city":"Paris"})]\n[tool get_weather returned: "sunny"]\n'
            "It is sunny.",
        ),
    ]


def test_history_keeps_newest_within_count_and_first_is_user() -> None:
    items = tuple(
        (UserMessage if i % 2 == 0 else AssistantMessage)(id=str(i), text=f"m{i}")
        for i in range(100)
    )
    msgs = history_messages(items, max_messages=40)
    assert len(msgs) <= 40
    assert msgs[0].role == "USER"
    assert msgs[-1].text == "m99"
    # the 40 newest are m60..m99; m60 is USER so nothing is dropped
    assert [m.text for m in msgs] == [f"m{i}" for i in range(60, 100)]
    odd = history_messages(items[:-1], max_messages=40)  # newest 40 start with ASSISTANT m59
    assert odd[0].text == "m60"
    assert len(odd) == 39


def test_history_byte_caps_cut_on_utf8_boundaries() -> None:
    long_user = "é" * 700  # 1400 bytes
    items = (UserMessage(id="u", text=long_user), AssistantMessage(id="a", text="€" * 10))
    msgs = history_messages(items, max_message_bytes=1001)
    assert msgs[0].text == "é" * 500  # 1000 bytes: the 1001st byte would split a character
    assert len(msgs[0].text.encode()) <= 1001
    many = tuple(
        (UserMessage if i % 2 == 0 else AssistantMessage)(id=str(i), text="ü" * 400)
        for i in range(10)
    )
    kept = history_messages(many, max_total_bytes=4000)
    assert sum(len(m.text.encode()) for m in kept) <= 4000
    assert kept[0].role == "USER"
    assert len(kept) == 4  # five fit (800 B each); the oldest of them is ASSISTANT: dropped


def test_handshake_respects_limit_configuration() -> None:
    items = tuple(
        (UserMessage if i % 2 == 0 else AssistantMessage)(id=str(i), text="x" * 50)
        for i in range(20)
    )
    whole = NovaTranslator().handshake(_state(items=items))
    assert names(whole.frames).count("textInput") == 20
    assert not whole.history_truncated
    limits = msgspec.structs.replace(DEFAULT_LIMITS, max_history_messages=5, max_message_bytes=10)
    cut = NovaTranslator(limits=limits).handshake(_state(items=items))
    history = [x["content"] for x in bodies(cut.frames) if "content" in x]
    assert history == ["x" * 10] * 4  # the 5 newest start with ASSISTANT: dropped
    # ... so the reconnect is reported as not fully restored
    assert cut.history_truncated


# --- encode -----------------------------------------------------------------------------------


def test_audio_frame_goes_to_the_audio_block() -> None:
    tr = primed()
    [frame] = tr.encode(AudioFrame(pcm=b"\x01\x02" * 4, index=0), SessionState())
    body = bodies([frame])[0]
    assert names([frame]) == ["audioInput"]
    assert body["contentName"] == tr.audio_content_name
    assert body["promptName"] == tr.prompt_name
    assert base64.b64decode(body["content"]) == b"\x01\x02" * 4


def test_nothing_is_encoded_before_the_handshake() -> None:
    assert NovaTranslator().encode(AudioFrame(pcm=b"\0\0", index=0), SessionState()) == []


def test_send_text_is_an_interactive_user_block() -> None:
    tr = primed()
    frames = tr.encode(SendText(text="Hello"), SessionState())
    assert names(frames) == ["contentStart", "textInput", "contentEnd"]
    b = bodies(frames)
    assert (b[0]["role"], b[0]["interactive"], b[0]["type"]) == ("USER", True, "TEXT")
    assert b[1]["content"] == "Hello"


def test_a_result_for_a_call_of_an_earlier_stream_is_a_text_turn() -> None:
    """Nova takes no toolResult for a call it did not make on this stream: the output goes in
    as a USER text turn, interactive when the model should answer it."""
    tr = primed()
    state = SessionState()
    frames = tr.encode(DeliverToolResult(call_id="old", name="f", output="sunny"), state)
    assert names(frames) == ["contentStart", "textInput", "contentEnd"]
    b = bodies(frames)
    assert (b[0]["type"], b[0]["role"], b[0]["interactive"]) == ("TEXT", "USER", True)
    assert b[1]["content"] == "[tool f returned: sunny]"
    quiet = tr.encode(DeliverToolResult(call_id="old2", name="f", output="x", respond=False), state)
    assert bodies(quiet)[0]["interactive"] is False
    assert tr.encode(DeliverToolResult(call_id="old", name="f", output="sunny"), state) == []


def test_tool_result_only_for_calls_of_this_stream() -> None:
    tr = primed()
    state = SessionState()
    tr.decode(ev("toolUse", contentId="t", toolName="f", toolUseId="tu", content="{}"))
    tr.decode(end("t", "TOOL", "TOOL_USE"))
    frames = tr.encode(DeliverToolResult(call_id="tu", name="f", output="sunny"), state)
    assert names(frames) == ["contentStart", "toolResult", "contentEnd"]
    b = bodies(frames)
    assert b[0]["toolResultInputConfiguration"]["toolUseId"] == "tu"
    assert (b[0]["type"], b[0]["role"]) == ("TOOL", "TOOL")
    assert json.loads(b[1]["content"]) == {"result": "sunny"}  # non-JSON output wrapped
    # exactly once
    assert tr.encode(DeliverToolResult(call_id="tu", name="f", output="{}"), state) == []


def test_close_sequence_once() -> None:
    command = CloseSession()
    tr = primed()
    frames = tr.encode(command, SessionState())
    assert names(frames) == ["contentEnd", "promptEnd", "sessionEnd"]
    assert bodies(frames)[0]["contentName"] == tr.audio_content_name
    assert tr.encode(command, SessionState()) == []
    assert tr.encode(AudioFrame(pcm=b"\0\0", index=1), SessionState()) == []
    assert tr.encode(KeepAlive(), SessionState()) == []  # no audio block to keep alive


def test_keepalive_is_silent_audio() -> None:
    tr = primed(options=NovaOptions(keepalive_frames=2))
    frames = tr.encode(KeepAlive(), SessionState())
    assert names(frames) == ["audioInput", "audioInput"]
    assert all(base64.b64decode(b["content"]) == bytes(1024) for b in bodies(frames))


@pytest.mark.parametrize(
    "command", [Interrupt(), UpdateInstructions(instructions="x"), UpdateTools(tools=())]
)
def test_commands_nova_cannot_carry_mid_stream(command: Any) -> None:
    assert primed().encode(command, SessionState()) == []


# --- classify ---------------------------------------------------------------------------------


def _service(code: str, message: str = "x", **kw: Any) -> ProviderError:
    return ProviderError(message, provider_code=code, **kw)


@pytest.mark.parametrize(
    ("error", "disposition"),
    [
        # the service's own error names
        (_service("ModelTimeoutException", "Model has timed out"), "recoverable"),
        (_service("ThrottlingException", "slow down"), "recoverable"),
        (_service("ServiceUnavailableException"), "recoverable"),
        (_service("InternalServerException"), "recoverable"),
        (_service("ModelStreamErrorException"), "recoverable"),
        (_service("ModelNotReadyException"), "recoverable"),
        (_service("SomethingNewException"), "recoverable"),  # unknown: the budget bounds it
        (
            _service(
                "ValidationException",
                "... InternalErrorCode=531::RST_STREAM closed stream. HTTP/2 error code: NO_ERROR",
            ),
            "recoverable",
        ),
        (_service("ValidationException", "System instability detected"), "recoverable"),
        (_service("ValidationException", "Tool Response parsing error"), "recoverable"),
        (
            _service(
                "ValidationException",
                "Chat history should be sent completely before streaming audio.",
            ),
            "fatal",
        ),
        (_service("AccessDeniedException", "no"), "fatal"),
        (_service("ResourceNotFoundException", "no"), "fatal"),
        (_service("ServiceQuotaExceededException", "no"), "fatal"),
        # HTTP statuses of a refused stream, when only the status is known
        (ProviderError("x", http_status=403), "fatal"),
        (ProviderError("x", http_status=400), "fatal"),
        (ProviderError("x", http_status=404), "fatal"),
        (ProviderError("x", http_status=408), "recoverable"),
        (ProviderError("x", http_status=424), "recoverable"),
        (ProviderError("x", http_status=429), "recoverable"),
        (ProviderError("x", http_status=503), "recoverable"),
        # the service's name wins over its status
        (_service("ModelTimeoutException", http_status=408), "recoverable"),
        (_service("AccessDeniedException", http_status=403), "fatal"),
        # failures the connector detected itself
        (ConnectionLostError("eof", condition="eof", recoverable=True), "recoverable"),
        (ConnectionLostError("reset", condition="transport", recoverable=True), "recoverable"),
        (ProviderError("Invalid event bytes.", condition="event_stream"), "recoverable"),
        (ProviderError("x", condition="unknown_exception_type"), "recoverable"),
        (ProviderTimeout("send", condition="send_timeout"), "recoverable"),
        (ProviderError("asyncio only", condition="unsupported_event_loop"), "fatal"),
        (ProviderError("no region", condition="config"), "fatal"),
        (ProviderError("handshake failed", condition="tls"), "fatal"),
        (ProtocolError("bad frame"), "recoverable"),
    ],
)
def test_classify(error: BaseException, disposition: str) -> None:
    assert primed().classify(error).disposition == Disposition(disposition)


@pytest.mark.parametrize(
    ("error", "retry_after_s"),
    [
        # the documented minimum back-off, also when the SDK names none or a shorter one
        (_service("ThrottlingException"), 1.0),
        (_service("ThrottlingException", retry_after_s=0.2), 1.0),
        (_service("ThrottlingException", retry_after_s=5.0), 5.0),
        (_service("ServiceUnavailableException", retry_after_s=2.0), 2.0),
        (_service("ModelTimeoutException"), None),
        (ProviderError("x", http_status=429, retry_after_s=3.0), 3.0),
    ],
)
def test_classify_says_when_to_come_back(error: ProviderError, retry_after_s: float | None) -> None:
    assert primed().classify(error).retry_after_s == retry_after_s


# --- SDK exceptions at the connector's edge ---------------------------------------------------


def test_sdk_exceptions_are_translated_into_typed_fields() -> None:
    from aws_sdk_bedrock_runtime.models import (
        AccessDeniedException,
        ModelTimeoutException,
        ThrottlingException,
        ValidationException,
    )
    from smithy_aws_core.config.exceptions import ConfigValidationError
    from smithy_aws_event_stream.exceptions import InvalidEventBytes, UnmodeledEventError
    from smithy_core.response import ResponseMetadata

    from antiphon.adapters.nova import translate_exception

    refused = AccessDeniedException(
        message="no", response_metadata=ResponseMetadata(http_status_code=403)
    )
    cases: list[tuple[BaseException, str, str, int | None, bool]] = [
        (
            ModelTimeoutException(message="Model has timed out"),
            "ModelTimeoutException",
            "",
            None,
            True,
        ),
        (ThrottlingException(message="slow"), "ThrottlingException", "", None, True),
        (ValidationException(message="x 531::RST_STREAM y"), "ValidationException", "", None, True),
        (ValidationException(message="bad history"), "ValidationException", "", None, False),
        (AccessDeniedException(message="no"), "AccessDeniedException", "", None, False),
        (refused, "AccessDeniedException", "", 403, False),
        (InvalidEventBytes(), "", "event_stream", None, True),
        (UnmodeledEventError("Boom", "went wrong"), "Boom", "", None, True),
        (KeyError("newException"), "", "unknown_exception_type", None, True),
        (ConfigValidationError("region", "no region"), "", "config", None, False),
    ]
    for exc, code, condition, status, recoverable in cases:
        err = translate_exception(exc)
        assert (err.provider_code, err.condition, err.http_status, err.close_code) == (
            code,
            condition,
            status,
            None,
        ), exc
        assert (err.recoverable, err.provider) == (recoverable, "nova"), exc
    assert str(translate_exception(ValidationException(message="bad history"))) == "bad history"
    # the documented minimum back-off rides on the error too
    assert translate_exception(ThrottlingException(message="slow")).retry_after_s == 1.0
    lost = translate_exception(OSError("Failed to read from stream."))
    assert isinstance(lost, ConnectionLostError)
    assert (lost.condition, lost.close_code) == ("transport", None)
    assert lost.recoverable
