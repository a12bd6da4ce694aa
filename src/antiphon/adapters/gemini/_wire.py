"""Gemini Live server messages as msgspec Structs (ProtoJSON, both key casings).

ProtoJSON lets a field arrive as ``lowerCamelCase`` or as its ``snake_case`` proto name, and
real traffic mixes them (the SDK itself sends both). msgspec maps one wire name per field, so
every field that has two spellings is declared twice: ``x`` (snake) and ``x_`` (camel, via
``msgspec.field(name=...)``); :func:`first` picks whichever is set. Values inside protobuf
``Struct`` fields (function-call ``args``) are kept verbatim, never re-cased.

A frame is first split into its top-level keys as :class:`msgspec.Raw` (no parsing of the
values), then each known key is decoded with its own typed decoder, so an unknown key costs
nothing and can be reported as an unknown provider event.
"""

from __future__ import annotations

from typing import Any

import msgspec


def first[T](a: T | None, b: T | None) -> T | None:
    """The snake-case value if present, else the camel-case one."""
    return a if a is not None else b


class _Lenient(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """Base: unknown provider fields are ignored (providers add fields without notice)."""


class SetupComplete(_Lenient, frozen=True, kw_only=True):
    session_id: str | None = None
    session_id_: str | None = msgspec.field(default=None, name="sessionId")


class Blob(_Lenient, frozen=True, kw_only=True):
    data: str = ""
    mime_type: str | None = None
    mime_type_: str | None = msgspec.field(default=None, name="mimeType")


class Part(_Lenient, frozen=True, kw_only=True):
    text: str | None = None
    thought: bool = False
    inline_data: Blob | None = None
    inline_data_: Blob | None = msgspec.field(default=None, name="inlineData")


class Content(_Lenient, frozen=True, kw_only=True):
    role: str | None = None
    parts: list[Part] = []


class Transcription(_Lenient, frozen=True, kw_only=True):
    text: str = ""
    finished: bool = False


class ServerContent(_Lenient, frozen=True, kw_only=True):
    model_turn: Content | None = None
    model_turn_: Content | None = msgspec.field(default=None, name="modelTurn")
    input_transcription: Transcription | None = None
    input_transcription_: Transcription | None = msgspec.field(
        default=None, name="inputTranscription"
    )
    output_transcription: Transcription | None = None
    output_transcription_: Transcription | None = msgspec.field(
        default=None, name="outputTranscription"
    )
    generation_complete: bool | None = None
    generation_complete_: bool | None = msgspec.field(default=None, name="generationComplete")
    turn_complete: bool | None = None
    turn_complete_: bool | None = msgspec.field(default=None, name="turnComplete")
    interrupted: bool = False
    # Vertex (Google Search grounding): kept verbatim, not modelled (an empty Raw when
    # absent: msgspec takes no Raw in a union with None).
    grounding_metadata: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    grounding_metadata_: msgspec.Raw = msgspec.field(
        default_factory=msgspec.Raw, name="groundingMetadata"
    )


class FunctionCall(_Lenient, frozen=True, kw_only=True):
    id: str = ""
    name: str = ""
    args: dict[str, Any] | None = None


class ToolCall(_Lenient, frozen=True, kw_only=True):
    function_calls: list[FunctionCall] | None = None
    function_calls_: list[FunctionCall] | None = msgspec.field(default=None, name="functionCalls")


class ToolCallCancellation(_Lenient, frozen=True, kw_only=True):
    ids: list[str] = []


class GoAway(_Lenient, frozen=True, kw_only=True):
    # A ProtoJSON Duration is a string ("50s", "0.100s"); the object form
    # {"seconds", "nanos"} is accepted too.
    time_left: str | dict[str, Any] | None = None
    time_left_: str | dict[str, Any] | None = msgspec.field(default=None, name="timeLeft")


class SessionResumptionUpdate(_Lenient, frozen=True, kw_only=True):
    new_handle: str | None = None
    new_handle_: str | None = msgspec.field(default=None, name="newHandle")
    resumable: bool = False


class ModalityTokenCount(_Lenient, frozen=True, kw_only=True):
    modality: str = ""  # TEXT, AUDIO, IMAGE, VIDEO, DOCUMENT
    token_count: int | None = None
    token_count_: int | None = msgspec.field(default=None, name="tokenCount")


class UsageMetadata(_Lenient, frozen=True, kw_only=True):
    prompt_token_count: int | None = None
    prompt_token_count_: int | None = msgspec.field(default=None, name="promptTokenCount")
    # The Gemini API names the output "response"; Vertex AI names it "candidates".
    response_token_count: int | None = None
    response_token_count_: int | None = msgspec.field(default=None, name="responseTokenCount")
    candidates_token_count: int | None = None
    candidates_token_count_: int | None = msgspec.field(default=None, name="candidatesTokenCount")
    total_token_count: int | None = None
    total_token_count_: int | None = msgspec.field(default=None, name="totalTokenCount")
    cached_content_token_count: int | None = None
    cached_content_token_count_: int | None = msgspec.field(
        default=None, name="cachedContentTokenCount"
    )
    thoughts_token_count: int | None = None
    thoughts_token_count_: int | None = msgspec.field(default=None, name="thoughtsTokenCount")
    prompt_tokens_details: list[ModalityTokenCount] | None = None
    prompt_tokens_details_: list[ModalityTokenCount] | None = msgspec.field(
        default=None, name="promptTokensDetails"
    )
    response_tokens_details: list[ModalityTokenCount] | None = None
    response_tokens_details_: list[ModalityTokenCount] | None = msgspec.field(
        default=None, name="responseTokensDetails"
    )
    candidates_tokens_details: list[ModalityTokenCount] | None = None
    candidates_tokens_details_: list[ModalityTokenCount] | None = msgspec.field(
        default=None, name="candidatesTokensDetails"
    )
    cache_tokens_details: list[ModalityTokenCount] | None = None
    cache_tokens_details_: list[ModalityTokenCount] | None = msgspec.field(
        default=None, name="cacheTokensDetails"
    )


class VoiceActivity(_Lenient, frozen=True, kw_only=True):
    type: str | None = None
    voice_activity_type: str | None = None
    voice_activity_type_: str | None = msgspec.field(default=None, name="voiceActivityType")


TOP_LEVEL = dict[str, msgspec.Raw]
"""A frame split into its top-level keys, values left unparsed."""

top_decoder: msgspec.json.Decoder[dict[str, msgspec.Raw]] = msgspec.json.Decoder(TOP_LEVEL)

# Canonical (camelCase) top-level key for either spelling.
KEY_ALIASES: dict[str, str] = {
    "setupComplete": "setupComplete",
    "setup_complete": "setupComplete",
    "serverContent": "serverContent",
    "server_content": "serverContent",
    "toolCall": "toolCall",
    "tool_call": "toolCall",
    "toolCallCancellation": "toolCallCancellation",
    "tool_call_cancellation": "toolCallCancellation",
    "goAway": "goAway",
    "go_away": "goAway",
    "sessionResumptionUpdate": "sessionResumptionUpdate",
    "session_resumption_update": "sessionResumptionUpdate",
    "usageMetadata": "usageMetadata",
    "usage_metadata": "usageMetadata",
    "voiceActivity": "voiceActivity",
    "voice_activity": "voiceActivity",
}

setup_complete_decoder = msgspec.json.Decoder(SetupComplete)
server_content_decoder = msgspec.json.Decoder(ServerContent)
tool_call_decoder = msgspec.json.Decoder(ToolCall)
cancellation_decoder = msgspec.json.Decoder(ToolCallCancellation)
go_away_decoder = msgspec.json.Decoder(GoAway)
resumption_decoder = msgspec.json.Decoder(SessionResumptionUpdate)
usage_decoder = msgspec.json.Decoder(UsageMetadata)
voice_activity_decoder = msgspec.json.Decoder(VoiceActivity)

json_encoder = msgspec.json.Encoder()
