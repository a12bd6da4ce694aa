"""Wire shapes of the OpenAI Realtime (GA and beta) and xAI Grok voice server events.

How this works: every server event the translator acts on is a msgspec Struct tagged on the
``type`` field, and :data:`DECODER` decodes a frame straight from its bytes/str into one of
them in a single pass (the audio-delta path never builds a dict). Only the fields the
translator reads are declared; everything else a provider sends (``event_id``,
``obfuscation``, xAI's ``rid``/``latency``/``previous_item_id`` ...) is skipped. Beta and xAI
names of the same event are subclasses with another tag, so one handler serves all spellings.

A frame whose ``type`` is not in the union fails that decode; :data:`ENVELOPE_DECODER` then
reads just its ``type`` to tell a known no-op event (:data:`IGNORED_TYPES`) from an unknown one.

Pure: no IO, no clock.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "DECODER",
    "ENVELOPE_DECODER",
    "IGNORED_TYPES",
    "AudioDelta",
    "AudioDeltaBeta",
    "ContentPart",
    "ConversationCreated",
    "Envelope",
    "ErrorEvent",
    "ErrorInfo",
    "FunctionArgumentsDone",
    "InputAudioCommitted",
    "InputTokenDetails",
    "InputTranscriptionCompleted",
    "InputTranscriptionDelta",
    "InputTranscriptionFailed",
    "InputTranscriptionUpdated",
    "ItemAdded",
    "ItemCreatedBeta",
    "ItemInfo",
    "ItemTruncated",
    "ModalityTokens",
    "OutputItem",
    "OutputItemAdded",
    "Ping",
    "RateLimitInfo",
    "RateLimitsUpdated",
    "ResponseCreated",
    "ResponseDone",
    "ResponseInfo",
    "ServerEvent",
    "SessionCreated",
    "SessionInfo",
    "SessionUpdated",
    "SpeechStarted",
    "SpeechStopped",
    "StatusDetails",
    "TextDelta",
    "TextDeltaBeta",
    "TextDeltaOutputText",
    "TextDeltaXAI",
    "TokenUsage",
]


class _Wire(msgspec.Struct, frozen=True, kw_only=True):
    """Lenient nested object: unknown fields ignored, every field optional."""


class _Event(_Wire, frozen=True, kw_only=True, tag_field="type"):
    """Base of tagged server events."""


# --- nested objects -----------------------------------------------------------------------


class SessionInfo(_Wire, frozen=True, kw_only=True):
    id: str | None = None
    expires_at: float | None = None  # unix seconds; xAI sends none


class ConversationInfo(_Wire, frozen=True, kw_only=True):
    id: str | None = None


class ErrorInfo(_Wire, frozen=True, kw_only=True):
    type: str | None = None
    code: str | int | None = None
    message: str | None = None


class StatusDetails(_Wire, frozen=True, kw_only=True):
    type: str | None = None
    reason: str | None = None
    error: ErrorInfo | None = None


class ModalityTokens(_Wire, frozen=True, kw_only=True):
    text_tokens: int = 0
    audio_tokens: int = 0
    image_tokens: int = 0


class InputTokenDetails(ModalityTokens, frozen=True, kw_only=True):
    cached_tokens: int = 0
    cached_tokens_details: ModalityTokens | None = None


class TokenUsage(_Wire, frozen=True, kw_only=True):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_token_details: InputTokenDetails | None = None
    output_token_details: ModalityTokens | None = None


class ContentPart(_Wire, frozen=True, kw_only=True):
    type: str | None = None


class OutputItem(_Wire, frozen=True, kw_only=True):
    """An item of ``response.done``'s ``output``: only its type is read there."""

    type: str | None = None


class ItemInfo(_Wire, frozen=True, kw_only=True):
    """The ``item`` of ``conversation.item.added`` / ``response.output_item.added``."""

    id: str | None = None
    type: str | None = None
    role: str | None = None
    call_id: str | None = None
    content: list[ContentPart] | None = None
    # Newer OpenAI models: "commentary" (a spoken preamble) or "final_answer".
    phase: str | None = None


class RateLimitInfo(_Wire, frozen=True, kw_only=True):
    name: str = ""
    limit: int = 0
    remaining: int = 0
    reset_seconds: float = 0.0


class ResponseInfo(_Wire, frozen=True, kw_only=True):
    id: str | None = None
    status: str | None = None
    # OpenAI: an object or null; xAI: the string "unimplemented".
    status_details: StatusDetails | str | None = None
    output: list[OutputItem] | None = None
    usage: TokenUsage | None = None


# --- session ------------------------------------------------------------------------------


class SessionCreated(_Event, frozen=True, kw_only=True, tag="session.created"):
    session: SessionInfo | None = None


class SessionUpdated(_Event, frozen=True, kw_only=True, tag="session.updated"):
    session: SessionInfo | None = None


class ConversationCreated(_Event, frozen=True, kw_only=True, tag="conversation.created"):
    conversation: ConversationInfo | None = None


class Ping(_Event, frozen=True, kw_only=True, tag="ping"):
    """xAI keep-alive; carries nothing the session needs."""


class ErrorEvent(_Event, frozen=True, kw_only=True, tag="error"):
    error: ErrorInfo | None = None


# --- user input ---------------------------------------------------------------------------


class SpeechStarted(_Event, frozen=True, kw_only=True, tag="input_audio_buffer.speech_started"):
    item_id: str | None = None
    audio_start_ms: float | None = None


class SpeechStopped(_Event, frozen=True, kw_only=True, tag="input_audio_buffer.speech_stopped"):
    item_id: str | None = None
    audio_end_ms: float | None = None


class InputAudioCommitted(_Event, frozen=True, kw_only=True, tag="input_audio_buffer.committed"):
    item_id: str | None = None


class InputTranscriptionDelta(
    _Event,
    frozen=True,
    kw_only=True,
    tag="conversation.item.input_audio_transcription.delta",
):
    item_id: str | None = None
    delta: str | None = None


class InputTranscriptionUpdated(
    _Event,
    frozen=True,
    kw_only=True,
    tag="conversation.item.input_audio_transcription.updated",
):
    """xAI only: a cumulative snapshot of the transcript so far (may revise words)."""

    item_id: str | None = None
    transcript: str | None = None


class InputTranscriptionCompleted(
    _Event,
    frozen=True,
    kw_only=True,
    tag="conversation.item.input_audio_transcription.completed",
):
    item_id: str | None = None
    transcript: str | None = None
    status: str | None = None  # xAI: "in_progress" repeats, then "completed"


class InputTranscriptionFailed(
    _Event,
    frozen=True,
    kw_only=True,
    tag="conversation.item.input_audio_transcription.failed",
):
    item_id: str | None = None
    error: ErrorInfo | None = None


# --- generation ---------------------------------------------------------------------------


class ResponseCreated(_Event, frozen=True, kw_only=True, tag="response.created"):
    response: ResponseInfo | None = None


class ResponseDone(_Event, frozen=True, kw_only=True, tag="response.done"):
    response: ResponseInfo | None = None
    response_id: str | None = None  # xAI repeats the id at the top level
    usage: TokenUsage | None = None  # xAI puts the real usage here (response.usage is {})


class AudioDelta(_Event, frozen=True, kw_only=True, tag="response.output_audio.delta"):
    response_id: str | None = None
    item_id: str | None = None
    delta: str = ""


class AudioDeltaBeta(AudioDelta, frozen=True, kw_only=True, tag="response.audio.delta"):
    pass


class TextDelta(_Event, frozen=True, kw_only=True, tag="response.output_audio_transcript.delta"):
    """Assistant text: the transcript of its speech, or text output in text mode."""

    response_id: str | None = None
    item_id: str | None = None
    delta: str | None = None


class TextDeltaBeta(TextDelta, frozen=True, kw_only=True, tag="response.audio_transcript.delta"):
    pass


class TextDeltaOutputText(TextDelta, frozen=True, kw_only=True, tag="response.output_text.delta"):
    pass


class TextDeltaXAI(TextDelta, frozen=True, kw_only=True, tag="response.text.delta"):
    """xAI's (and the beta's) name for text-mode deltas."""


class FunctionArgumentsDone(
    _Event, frozen=True, kw_only=True, tag="response.function_call_arguments.done"
):
    response_id: str | None = None
    item_id: str | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None


class ItemTruncated(_Event, frozen=True, kw_only=True, tag="conversation.item.truncated"):
    item_id: str | None = None
    audio_end_ms: float | None = None


class ItemAdded(_Event, frozen=True, kw_only=True, tag="conversation.item.added"):
    """An item entered the conversation (xAI also replays a resumed conversation's items)."""

    item: ItemInfo | None = None


class ItemCreatedBeta(ItemAdded, frozen=True, kw_only=True, tag="conversation.item.created"):
    pass


class OutputItemAdded(_Event, frozen=True, kw_only=True, tag="response.output_item.added"):
    response_id: str | None = None
    item: ItemInfo | None = None


class RateLimitsUpdated(_Event, frozen=True, kw_only=True, tag="rate_limits.updated"):
    rate_limits: list[RateLimitInfo] | None = None


ServerEvent = (
    SessionCreated
    | SessionUpdated
    | ConversationCreated
    | Ping
    | ErrorEvent
    | SpeechStarted
    | SpeechStopped
    | InputAudioCommitted
    | InputTranscriptionDelta
    | InputTranscriptionUpdated
    | InputTranscriptionCompleted
    | InputTranscriptionFailed
    | ResponseCreated
    | ResponseDone
    | AudioDelta
    | AudioDeltaBeta
    | TextDelta
    | TextDeltaBeta
    | TextDeltaOutputText
    | TextDeltaXAI
    | FunctionArgumentsDone
    | ItemTruncated
    | ItemAdded
    | ItemCreatedBeta
    | OutputItemAdded
    | RateLimitsUpdated
)
"""Every server event the translator acts on."""

DECODER: msgspec.json.Decoder[ServerEvent] = msgspec.json.Decoder(ServerEvent)


class Envelope(msgspec.Struct, frozen=True):
    """Just the ``type`` of a frame: the slow path for events outside :data:`ServerEvent`."""

    type: str


ENVELOPE_DECODER: msgspec.json.Decoder[Envelope] = msgspec.json.Decoder(Envelope)

IGNORED_TYPES: frozenset[str] = frozenset(
    {
        # Item bookkeeping: the translator follows the conversation through the response,
        # transcript and tool events instead.
        "conversation.item.done",
        "conversation.item.deleted",
        "conversation.item.retrieved",
        "conversation.item.input_audio_transcription.segment",
        "response.output_item.done",
        "response.content_part.added",
        "response.content_part.done",
        # The ``.done`` of streams whose deltas were already decoded.
        "response.output_audio.done",
        "response.audio.done",
        "response.output_audio_transcript.done",
        "response.audio_transcript.done",
        "response.output_text.done",
        "response.text.done",
        # Tool arguments are taken whole from ``.done``.
        "response.function_call_arguments.delta",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "input_audio_buffer.cleared",
        # Idle timeout: the server commits and responds itself; ``committed`` follows.
        "input_audio_buffer.timeout_triggered",
        # WebRTC/SIP only: the server's playback buffer of a peer connection. antiphon holds
        # the audio path itself (websocket), so it never has such a buffer; on a WebRTC
        # sideband socket the peer connection plays the audio, not antiphon.
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.cleared",
        "transcription_session.updated",
    }
)
"""Known server events that change no session state: decoded to no events."""
