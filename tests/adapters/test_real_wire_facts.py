"""Hand-written conformance cases: what real OpenAI, Azure, xAI and Gemini traffic carries.

Each case is built from a fact about the providers' real wire that no file in
``shared/fixtures/recorded/`` holds (Vertex AI usage names, xAI server-side resumption,
``item.phase``, Azure's transcription failure, token details, informative frames, and the
client frames the real clients send). Frames are written the way the services send them.
"""

from __future__ import annotations

import json
from typing import Any

from antiphon.adapters import Disposition
from antiphon.adapters.gemini import GeminiTranslator
from antiphon.adapters.openai import OpenAIRealtime, OpenAITranslator, XAIRealtime
from antiphon.errors import ConnectionLostError
from antiphon.events import AppEventMapper, ProviderNotice, ReplyEnded, UserTranscript
from antiphon.protocol import (
    AssistantMessage,
    AudioFrame,
    ConnectionLost,
    ConnectionOpened,
    Event,
    FunctionCall,
    GenerateReply,
    GenerationEndReason,
    GenerationTextDelta,
    InputTranscriptFailed,
    ProviderErrorEvent,
    ProviderResumed,
    RateLimit,
    RateLimitsUpdated,
    ResumptionHandleUpdated,
    SessionState,
    TokenDetails,
    ToolSpec,
    UnknownProviderEvent,
    Usage,
    UserAudioCommitted,
    UserMessage,
    fold,
)


def _f(**fields: Any) -> str:
    return json.dumps(fields)


def _g(obj: dict[str, Any]) -> str:
    return json.dumps(obj)


def _decode_all(t: OpenAITranslator | GeminiTranslator, frames: list[str]) -> list[Event]:
    events: list[Event] = []
    for frame in frames:
        events.extend(t.decode(frame))
    return events


def _usages(events: list[Event]) -> list[Usage]:
    return [e for e in events if isinstance(e, Usage)]


# --- 1. Vertex AI names the output tokens candidatesTokenCount --------------------------------


def test_vertex_output_tokens_are_read_from_candidates_token_count() -> None:
    t = GeminiTranslator()
    vertex = {
        "serverContent": {"turnComplete": True},
        "usageMetadata": {
            "promptTokenCount": 310,
            "candidatesTokenCount": 42,
            "totalTokenCount": 352,
        },
    }
    gemini_api = {
        "serverContent": {"turnComplete": True},
        "usageMetadata": {
            "promptTokenCount": 300,
            "responseTokenCount": 40,
            "totalTokenCount": 340,
        },
    }
    (v,) = _usages(t.decode(_g(vertex)))
    (a,) = _usages(t.decode(_g(gemini_api)))
    assert (v.input_tokens, v.output_tokens, v.total_tokens) == (310, 42, 352)
    assert (a.input_tokens, a.output_tokens, a.total_tokens) == (300, 40, 340)
    totals = fold([v, a]).usage
    assert (totals.output_tokens, totals.total_tokens) == (82, 692)


# --- 2. xAI server-side resumption ------------------------------------------------------------

HISTORY = (
    UserMessage(id="item-u1", text="What is the weather in Paris?", from_audio=True),
    AssistantMessage(id="item-a1", text="Sunny."),
)
RESUMABLE = SessionState(
    instructions="Be brief.", items=HISTORY, resumption_handle="conv-1", conversation_id="conv-1"
)


def _xai() -> OpenAITranslator:
    return XAIRealtime().new_translator()


def _replay(item_id: str, role: str, content_type: str, text: str) -> str:
    content = {"type": content_type, ("transcript" if "audio" in content_type else "text"): text}
    item = {"id": item_id, "object": "realtime.item", "type": "message", "role": role}
    return _f(type="conversation.item.added", item={**item, "content": [content]})


def _connection_start(conversation_id: str, replay: list[str]) -> list[str]:
    return [
        _f(type="session.created", session={"id": "s", "voice": "ara"}),
        _f(type="conversation.created", conversation={"id": conversation_id}),
        *replay,
        _f(type="ping", timestamp=1),
        _f(type="session.updated", session={"instructions": "Be brief."}),
    ]


def test_xai_asks_for_resumption_in_every_session_update() -> None:
    fresh = _xai().handshake(SessionState(instructions="x"))
    assert json.loads(fresh.frames[0])["session"]["resumption"] == {"enabled": True}
    assert not fresh.resumed
    # OpenAI has no such thing: it would refuse the field.
    openai = OpenAIRealtime().new_translator()
    assert "resumption" not in json.loads(openai.handshake(SessionState()).frames[0])["session"]
    assert not openai.capabilities.server_resume
    assert _xai().capabilities.server_resume


def test_xai_conversation_id_is_the_resumption_handle_refreshed_every_turn() -> None:
    t = _xai()
    t.handshake(SessionState())
    events = _decode_all(t, _connection_start("conv-9", []))
    assert ResumptionHandleUpdated(handle="conv-9") in events
    assert not any(isinstance(e, ProviderResumed) for e in events)  # nothing was asked
    done = _f(
        type="response.done",
        response={"id": "r1", "status": "completed", "output": []},
        response_id="r1",
    )
    assert t.decode(done)[-1] == ResumptionHandleUpdated(handle="conv-9")
    assert fold(events).conversation_id == "conv-9"


def test_xai_resumed_conversation_is_not_reseeded() -> None:
    t = _xai()
    assert t.connect_request(RESUMABLE).query == {"conversation_id": "conv-1"}
    handshake = t.handshake(RESUMABLE)
    assert handshake.resumed
    assert [json.loads(f)["type"] for f in handshake.frames] == ["session.update"]
    replay = [
        _replay("item-u1", "user", "input_audio", "What is the weather in Paris?"),
        _replay("item-a1", "assistant", "output_audio", "Sunny."),
    ]
    events = _decode_all(t, _connection_start("conv-1", replay))
    assert t.ready
    verdicts = [e for e in events if isinstance(e, ProviderResumed)]
    assert verdicts == [ProviderResumed(resumed=True, conversation_id="conv-1")]
    # Nothing is owed: the first frame the connection encodes is just that frame.
    frames = t.encode(AudioFrame(pcm=b"\0\0" * 480, index=0), RESUMABLE)
    assert [json.loads(f)["type"] for f in frames] == ["input_audio_buffer.append"]
    # The runtime reports the connection as resumed, then forgets the verdict.
    state = fold(events, RESUMABLE)
    assert state.provider_resumed is True
    assert fold([ConnectionOpened(epoch=2, resumed=True)], state).provider_resumed is None


def test_xai_refused_resumption_falls_back_to_reseeding_ahead_of_the_first_frame() -> None:
    t = _xai()
    t.handshake(RESUMABLE)
    events = _decode_all(t, _connection_start("conv-2", []))  # a new conversation
    assert [e for e in events if isinstance(e, ProviderResumed)] == [
        ProviderResumed(resumed=False, conversation_id="conv-2")
    ]
    # The new, still empty conversation is not a handle to resume yet.
    assert not any(isinstance(e, ResumptionHandleUpdated) for e in events)
    assert fold(events, RESUMABLE).provider_resumed is False
    first = [json.loads(f) for f in t.encode(GenerateReply(), RESUMABLE)]
    assert [(f["type"], f.get("item", {}).get("role")) for f in first] == [
        ("conversation.item.create", "user"),
        ("conversation.item.create", "assistant"),
        ("response.create", None),
    ]
    again = t.encode(GenerateReply(), RESUMABLE)
    assert [json.loads(f)["type"] for f in again] == ["response.create"]
    done = _f(type="response.done", response={"id": "r1", "status": "completed"}, response_id="r1")
    assert t.decode(done)[-1] == ResumptionHandleUpdated(handle="conv-2")


def test_xai_resumption_verdict_without_conversation_created_follows_the_replay() -> None:
    t = _xai()
    t.handshake(RESUMABLE)
    replay = [_replay("item-u1", "user", "input_audio", "What is the weather in Paris?")]
    events = _decode_all(t, [*replay, _f(type="session.updated", session={})])
    assert [e for e in events if isinstance(e, ProviderResumed)] == [
        ProviderResumed(resumed=True, conversation_id="")
    ]


def test_xai_replayed_items_the_session_never_recorded_are_deleted() -> None:
    """A reply generated while the old connection stalled, and speech the server committed
    after the session's last safe point, would be in the conversation twice."""
    state = SessionState(
        items=(*HISTORY, UserMessage(id="u-local", text="And tomorrow?")),
        pending_tools=(),
        resumption_handle="conv-1",
    )
    t = _xai()
    t.handshake(state)
    replay = [
        _replay("item-u1", "user", "input_audio", "What is the weather in Paris?"),
        _replay("item-a1", "assistant", "output_audio", "Sunny."),
        _replay("item-t1", "user", "input_text", "And tomorrow?"),  # typed: server's own id
        _replay("item-a2", "assistant", "output_audio", "Rain tomorrow."),  # never heard
        _replay("item-u2", "user", "input_audio", "Thanks"),  # re-sent from the safe point
    ]
    _decode_all(t, _connection_start("conv-1", replay))
    frames = [json.loads(f) for f in t.encode(GenerateReply(), state)]
    assert frames == [
        {"type": "conversation.item.delete", "item_id": "item-a2"},
        {"type": "conversation.item.delete", "item_id": "item-u2"},
        {"type": "response.create"},
    ]
    # Items added after the connection carried something new are not a replay.
    assert t.decode(_replay("item-a3", "assistant", "output_audio", "Bye.")) == []
    assert [json.loads(f)["type"] for f in t.encode(GenerateReply(), state)] == ["response.create"]


def test_xai_replayed_tool_call_known_by_call_id_is_kept() -> None:
    state = SessionState(
        items=(FunctionCall(id="call_1", name="get_weather", arguments="{}"),),
        resumption_handle="conv-1",
    )
    t = _xai()
    t.handshake(state)
    call = {"id": "item-c1", "type": "function_call", "call_id": "call_1", "name": "get_weather"}
    other = {"id": "item-c2", "type": "function_call", "call_id": "call_2", "name": "get_weather"}
    replay = [
        _f(type="conversation.item.added", item=call),
        _f(type="conversation.item.added", item=other),
    ]
    _decode_all(t, _connection_start("conv-1", replay))
    frames = [json.loads(f) for f in t.encode(GenerateReply(), state)]
    assert frames[0] == {"type": "conversation.item.delete", "item_id": "item-c2"}


def test_xai_failure_before_the_resumption_verdict_drops_the_handle() -> None:
    lost = ConnectionLostError("gone", provider="xai", close_code=1011, recoverable=True)
    unanswered = _xai()
    unanswered.handshake(RESUMABLE)
    assert unanswered.classify(lost).fresh_start
    answered = _xai()
    answered.handshake(RESUMABLE)
    _decode_all(answered, _connection_start("conv-1", []))
    verdict = answered.classify(lost)
    assert verdict.disposition is Disposition.RECOVERABLE
    assert not verdict.fresh_start  # the conversation lives on: resume it again
    assert OpenAIRealtime().new_translator().classify(lost).fresh_start


def test_resumption_verdict_of_a_connection_that_never_opened_is_forgotten() -> None:
    state = fold([ProviderResumed(resumed=False)], SessionState(epoch=1))
    assert (
        fold([ConnectionLost(epoch=2, cause="x", recoverable=True)], state).provider_resumed is None
    )


def test_xai_preset_trusts_a_handle_for_the_resumption_window_only() -> None:
    assert XAIRealtime().handle_max_age_s == 25 * 60.0
    assert OpenAIRealtime().handle_max_age_s is None


# --- 3. item.phase: a spoken preamble and the answer ------------------------------------------


def _phase_response() -> list[str]:
    def item(item_id: str, phase: str) -> str:
        body = {"id": item_id, "type": "message", "role": "assistant", "phase": phase}
        return _f(type="response.output_item.added", response_id="r1", item=body)

    def delta(item_id: str, text: str) -> str:
        return _f(
            type="response.output_audio_transcript.delta",
            response_id="r1",
            item_id=item_id,
            delta=text,
        )

    return [
        _f(type="response.created", response={"id": "r1"}),
        item("i-pre", "commentary"),
        delta("i-pre", "Let me check that. "),
        item("i-ans", "final_answer"),
        delta("i-ans", "It is sunny."),
        _f(type="response.done", response={"id": "r1", "status": "completed", "output": []}),
    ]


def test_phase_separates_preamble_from_answer_in_events_state_and_app() -> None:
    t = OpenAIRealtime(model="gpt-realtime-2.1").new_translator()
    events = _decode_all(t, _phase_response())
    deltas = [(e.item_id, e.phase) for e in events if isinstance(e, GenerationTextDelta)]
    assert deltas == [("i-pre", "commentary"), ("i-ans", "final_answer")]
    messages = [i for i in fold(events).items if isinstance(i, AssistantMessage)]
    assert [(m.id, m.text, m.phase) for m in messages] == [
        ("i-pre", "Let me check that. ", "commentary"),
        ("i-ans", "It is sunny.", "final_answer"),
    ]
    mapper = AppEventMapper()
    app = [a for e in events for a in mapper.app_events(e)]
    (ended,) = [a for a in app if isinstance(a, ReplyEnded)]
    assert ended.reason is GenerationEndReason.COMPLETED
    assert (ended.text, ended.phase, ended.answer) == (
        "Let me check that. It is sunny.",
        "final_answer",
        "It is sunny.",
    )


def test_phase_from_conversation_item_added_and_unlabelled_text() -> None:
    t = OpenAIRealtime().new_translator()
    added = _f(
        type="conversation.item.added",
        item={"id": "i1", "type": "message", "role": "assistant", "phase": "commentary"},
    )
    assert t.decode(added) == []
    delta = _f(
        type="response.output_audio_transcript.delta", response_id="r", item_id="i1", delta="x"
    )
    (event,) = t.decode(delta)
    assert isinstance(event, GenerationTextDelta)
    assert event.phase == "commentary"
    plain = _f(
        type="response.output_audio_transcript.delta", response_id="r", item_id="i2", delta="y"
    )
    (event,) = t.decode(plain)
    assert isinstance(event, GenerationTextDelta)
    assert event.phase == ""


# --- 4. Azure: input transcription failed ---------------------------------------------------


def test_azure_transcription_failure_finalises_the_user_item_as_a_configuration_notice() -> None:
    t = OpenAIRealtime(beta=True).new_translator()
    frames = [
        _f(type="input_audio_buffer.speech_stopped", item_id="item_u", audio_end_ms=1200),
        _f(type="input_audio_buffer.committed", item_id="item_u", previous_item_id=None),
        _f(
            type="conversation.item.input_audio_transcription.failed",
            item_id="item_u",
            content_index=0,
            error={
                "type": "invalid_request_error",
                "code": "DeploymentNotFound",
                "message": "The API deployment for this resource does not exist.",
                "param": None,
            },
        ),
    ]
    events = _decode_all(t, frames)
    assert (
        InputTranscriptFailed(
            item_id="item_u",
            code="DeploymentNotFound",
            message="The API deployment for this resource does not exist.",
        )
        in events
    )
    (error,) = [e for e in events if isinstance(e, ProviderErrorEvent)]
    assert not error.recoverable  # a configuration error: no reconnect fixes it
    assert "item_u" in error.message
    (user,) = fold(events).items
    assert isinstance(user, UserMessage)
    assert (user.final, user.text) == (True, "")
    assert user.error == (
        "DeploymentNotFound: The API deployment for this resource does not exist."
    )
    mapper = AppEventMapper()
    app = [a for e in events for a in mapper.app_events(e)]
    (transcript,) = [a for a in app if isinstance(a, UserTranscript)]
    assert transcript.final
    assert transcript.error.startswith("DeploymentNotFound")
    (notice,) = [a for a in app if isinstance(a, ProviderNotice)]
    assert (notice.code, notice.recoverable) == ("DeploymentNotFound", False)


def test_transcription_failure_after_a_transcript_changes_nothing() -> None:
    events: list[Event] = [
        UserAudioCommitted(item_id="u"),
        InputTranscriptFailed(item_id="u", code="x"),
    ]
    (user,) = fold(events).items
    assert isinstance(user, UserMessage)
    assert user.final
    assert user.error == "x"
    state = fold([InputTranscriptFailed(item_id="v", message="m")], fold(events))
    assert state.items[-1] == UserMessage(id="v", from_audio=True, final=True, error="m")


# --- 5. usage details -----------------------------------------------------------------------


def test_openai_token_details_are_kept() -> None:
    usage = {
        "total_tokens": 1500,
        "input_tokens": 1100,
        "output_tokens": 400,
        "input_token_details": {
            "text_tokens": 300,
            "audio_tokens": 800,
            "image_tokens": 0,
            "cached_tokens": 640,
            "cached_tokens_details": {"text_tokens": 128, "audio_tokens": 512, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": 90, "audio_tokens": 310},
    }
    done = _f(type="response.done", response={"id": "r", "status": "completed", "usage": usage})
    (u,) = _usages(OpenAIRealtime().new_translator().decode(done))
    assert (u.input_tokens, u.output_tokens, u.total_tokens) == (1100, 400, 1500)
    assert u.cached_input_tokens == 640
    assert u.input_details == TokenDetails(text=300, audio=800)
    assert u.output_details == TokenDetails(text=90, audio=310)
    assert u.cached_details == TokenDetails(text=128, audio=512)
    totals = fold([u, u]).usage
    assert totals.cached_input_tokens == 1280
    assert totals.output_details == TokenDetails(text=180, audio=620)


def test_gemini_thoughts_and_modality_counts_are_kept() -> None:
    frame = {
        "usageMetadata": {
            "promptTokenCount": 500,
            "responseTokenCount": 120,
            "totalTokenCount": 700,
            "thoughtsTokenCount": 80,
            "cachedContentTokenCount": 64,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 200},
                {"modality": "AUDIO", "tokenCount": 300},
            ],
            "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 120}],
            "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 64}],
        }
    }
    (u,) = _usages(GeminiTranslator().decode(_g(frame)))
    assert (u.input_tokens, u.output_tokens, u.total_tokens) == (500, 120, 700)
    assert (u.reasoning_tokens, u.cached_input_tokens) == (80, 64)
    assert u.input_details == TokenDetails(text=200, audio=300)
    assert u.output_details == TokenDetails(audio=120)
    assert u.cached_details == TokenDetails(text=64)
    vertex = {
        "usageMetadata": {"candidatesTokensDetails": [{"modality": "AUDIO", "tokenCount": 9}]}
    }
    (v,) = _usages(GeminiTranslator().decode(_g(vertex)))
    assert v.output_details == TokenDetails(audio=9)


# --- 6. informative frames --------------------------------------------------------------------


def test_rate_limits_are_surfaced_to_the_state_and_the_app() -> None:
    frame = _f(
        type="rate_limits.updated",
        rate_limits=[
            {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 0.06},
            {"name": "tokens", "limit": 50000, "remaining": 1200, "reset_seconds": 12.5},
        ],
    )
    (event,) = OpenAIRealtime().new_translator().decode(frame)
    assert event == RateLimitsUpdated(
        limits=(
            RateLimit(name="requests", limit=1000, remaining=999, reset_seconds=0.06),
            RateLimit(name="tokens", limit=50000, remaining=1200, reset_seconds=12.5),
        )
    )
    assert fold([event]).rate_limits[1].remaining == 1200
    assert AppEventMapper().app_events(event) == [event]


def test_webrtc_playback_buffer_events_change_nothing() -> None:
    t = OpenAIRealtime().new_translator()
    for kind in ("output_audio_buffer.started", "output_audio_buffer.stopped"):
        assert t.decode(_f(type=kind, response_id="r")) == []


def test_vertex_grounding_metadata_is_journalled_verbatim() -> None:
    grounding = {"webSearchQueries": ["weather paris"], "groundingChunks": []}
    frame = _g({"serverContent": {"groundingMetadata": grounding}})
    (event,) = GeminiTranslator().decode(frame)
    assert isinstance(event, UnknownProviderEvent)
    assert event.provider_type == "serverContent.groundingMetadata"
    assert json.loads(event.raw) == grounding


def test_output_transcription_finished_flag_adds_nothing() -> None:
    t = GeminiTranslator()
    frame = {"serverContent": {"outputTranscription": {"text": "Hi.", "finished": True}}}
    texts = [e.text for e in t.decode(_g(frame)) if isinstance(e, GenerationTextDelta)]
    assert texts == ["Hi."]


# --- 7. client frames -------------------------------------------------------------------------


def test_voice_live_input_sampling_rate_is_sent_only_when_not_the_default() -> None:
    limits16 = OpenAIRealtime().limits.__class__(input_sample_rate=16_000)
    voice_live = OpenAIRealtime(beta=True, limits=limits16).new_translator()
    session = json.loads(voice_live.handshake(SessionState()).frames[0])["session"]
    assert session["input_audio_sampling_rate"] == 16_000
    beta = OpenAIRealtime(beta=True).new_translator()
    session = json.loads(beta.handshake(SessionState()).frames[0])["session"]
    assert "input_audio_sampling_rate" not in session  # 24 kHz: the default of both


def test_openai_sends_voice_and_tools_on_purpose() -> None:
    """The real clients send neither; antiphon does, so a reconnect keeps the configured
    voice and an update with no tools clears the tools a previous update declared."""
    session = json.loads(OpenAIRealtime().new_translator().handshake(SessionState()).frames[0])
    assert session["session"]["tools"] == []
    assert session["session"]["audio"]["output"]["voice"] == "alloy"


def test_gemini_seeds_history_with_turn_complete_false() -> None:
    t = GeminiTranslator()
    state = SessionState(instructions="Be brief.", items=HISTORY)
    setup, seed = (json.loads(f) for f in t.handshake(state).frames)
    assert seed["clientContent"]["turnComplete"] is False
    assert setup["setup"]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}


def test_gemini_tool_without_arguments_is_declared_by_name() -> None:
    t = GeminiTranslator()
    tool = ToolSpec(name="hang_up", parameters={"type": "object", "properties": {}})
    setup = t.setup_message(SessionState(tools=(tool,)))
    assert setup["tools"] == [{"functionDeclarations": [{"name": "hang_up"}]}]
