"""Wire shapes of the Phonic speech-to-speech server messages (``/v1/sts/ws``).

How this works: every server message the translator acts on is a msgspec Struct tagged on
the ``type`` field, and :data:`DECODER` decodes a frame straight from its bytes/str into one
of them in a single pass. Only the fields the translator reads are declared, each with a
default, so a message that leaves out a field the SDK calls required (``text`` on an
``audio_chunk``) still decodes; anything else the server sends (``timings``, the webhook
fields of ``tool_call_output_processed``, ...) is skipped.

A frame whose ``type`` is not in the union fails that decode; :data:`ENVELOPE_DECODER` then
reads just its ``type`` to tell an unknown message from a known one of the wrong shape.

Field names follow the official SDK (``phonic`` 0.32.42), which wins where the protocol notes
disagree: ``error`` and ``warning`` nest their ``message``/``code`` in an object of the same
name. The flat form is accepted too.

Pure: no IO, no clock.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "DECODER",
    "ENVELOPE_DECODER",
    "AssistantChoseNotToRespond",
    "AssistantEndedConversation",
    "AssistantFinishedSpeaking",
    "AssistantStartedSpeaking",
    "AudioChunk",
    "ConversationCreated",
    "ConversationReconnected",
    "Dtmf",
    "Envelope",
    "ErrorEvent",
    "ErrorInfo",
    "InputCancelled",
    "InputText",
    "InterruptedResponse",
    "ReadyToStartConversation",
    "ServerMessage",
    "ToolCall",
    "ToolCallInterrupted",
    "ToolCallOutputProcessed",
    "UserFinishedSpeaking",
    "UserStartedSpeaking",
    "WarningEvent",
]


class _Wire(msgspec.Struct, frozen=True, kw_only=True):
    """Lenient nested object: unknown fields ignored, every field optional."""


class _Message(_Wire, frozen=True, kw_only=True, tag_field="type"):
    """Base of tagged server messages."""


class ErrorInfo(_Wire, frozen=True, kw_only=True):
    message: str = ""
    code: str | int | None = None


class Envelope(_Wire, frozen=True, kw_only=True):
    """Just the ``type`` of any message."""

    type: str


# --- conversation -------------------------------------------------------------------------


class ConversationCreated(_Message, frozen=True, kw_only=True, tag="conversation_created"):
    conversation_id: str


class ConversationReconnected(_Message, frozen=True, kw_only=True, tag="conversation_reconnected"):
    """The answer to a dial with ``reconnect_conv_id`` (the SDK watches for it)."""

    conversation_id: str = ""


class ReadyToStartConversation(
    _Message, frozen=True, kw_only=True, tag="ready_to_start_conversation"
):
    pass


# --- user input ---------------------------------------------------------------------------


class InputText(_Message, frozen=True, kw_only=True, tag="input_text"):
    text: str = ""
    language: str = ""


class InputCancelled(_Message, frozen=True, kw_only=True, tag="input_cancelled"):
    pass


class UserStartedSpeaking(_Message, frozen=True, kw_only=True, tag="user_started_speaking"):
    pass


class UserFinishedSpeaking(_Message, frozen=True, kw_only=True, tag="user_finished_speaking"):
    pass


class Dtmf(_Message, frozen=True, kw_only=True, tag="dtmf"):
    digits: str = ""


# --- assistant output ---------------------------------------------------------------------


class AudioChunk(_Message, frozen=True, kw_only=True, tag="audio_chunk"):
    """Assistant audio (base64, in the configured ``output_format``) and its text."""

    audio: str = ""
    text: str = ""


class AssistantStartedSpeaking(
    _Message, frozen=True, kw_only=True, tag="assistant_started_speaking"
):
    pass


class AssistantFinishedSpeaking(
    _Message, frozen=True, kw_only=True, tag="assistant_finished_speaking"
):
    pass


class InterruptedResponse(_Message, frozen=True, kw_only=True, tag="interrupted_response"):
    """What the assistant had said of its turn when the user barged in."""

    text: str = ""


class AssistantChoseNotToRespond(
    _Message, frozen=True, kw_only=True, tag="assistant_chose_not_to_respond"
):
    pass


class AssistantEndedConversation(
    _Message, frozen=True, kw_only=True, tag="assistant_ended_conversation"
):
    pass


# --- tools --------------------------------------------------------------------------------


class ToolCall(_Message, frozen=True, kw_only=True, tag="tool_call"):
    tool_call_id: str
    tool_name: str
    parameters: dict[str, Any] = {}


class ToolCallOutputProcessed(
    _Message, frozen=True, kw_only=True, tag="tool_call_output_processed"
):
    tool_call_id: str = ""


class ToolCallInterrupted(_Message, frozen=True, kw_only=True, tag="tool_call_interrupted"):
    tool_call_id: str
    tool_name: str = ""


# --- errors -------------------------------------------------------------------------------


class ErrorEvent(_Message, frozen=True, kw_only=True, tag="error"):
    error: ErrorInfo | None = None
    # The flat form ({"type": "error", "message": ..., "code": ...}).
    message: str = ""
    code: str | int | None = None
    param_errors: dict[str, str] | None = None


class WarningEvent(_Message, frozen=True, kw_only=True, tag="warning"):
    warning: ErrorInfo | None = None
    message: str = ""
    code: str | int | None = None


ServerMessage = (
    ConversationCreated
    | ConversationReconnected
    | ReadyToStartConversation
    | InputText
    | InputCancelled
    | UserStartedSpeaking
    | UserFinishedSpeaking
    | Dtmf
    | AudioChunk
    | AssistantStartedSpeaking
    | AssistantFinishedSpeaking
    | InterruptedResponse
    | AssistantChoseNotToRespond
    | AssistantEndedConversation
    | ToolCall
    | ToolCallOutputProcessed
    | ToolCallInterrupted
    | ErrorEvent
    | WarningEvent
)
"""Every server message the translator understands."""

DECODER: msgspec.json.Decoder[ServerMessage] = msgspec.json.Decoder(ServerMessage)
ENVELOPE_DECODER: msgspec.json.Decoder[Envelope] = msgspec.json.Decoder(Envelope)
