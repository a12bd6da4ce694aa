"""What the app sees: ``Session.events()`` yields these, an exhaustive union.

They are derived from the journalled protocol events after each is recorded, plus the
runtime's own notices (``Reconnected``, ``SessionEnded``). Match on them with ``match`` and
``typing.assert_never`` to handle every case.
"""

from __future__ import annotations

import msgspec

from ..protocol import GenerationEndReason, ToolOutcome


class _AppEvent(msgspec.Struct, frozen=True, kw_only=True):
    pass


class AssistantAudio(_AppEvent, frozen=True, kw_only=True):
    """A chunk of the assistant's speech: PCM16 mono at ``sample_rate``."""

    generation_id: str
    pcm: bytes
    sample_rate: int


class AssistantText(_AppEvent, frozen=True, kw_only=True):
    """A piece of the assistant's transcript (or text output)."""

    generation_id: str
    text: str


class ReplyStarted(_AppEvent, frozen=True, kw_only=True):
    generation_id: str


class ReplyEnded(_AppEvent, frozen=True, kw_only=True):
    generation_id: str
    reason: GenerationEndReason
    text: str = ""  # the whole transcript of the reply


class UserSpeechStarted(_AppEvent, frozen=True, kw_only=True):
    """The provider heard the user start speaking: stop playing assistant audio (barge-in)."""


class UserSpeechStopped(_AppEvent, frozen=True, kw_only=True):
    pass


class UserTranscript(_AppEvent, frozen=True, kw_only=True):
    item_id: str
    text: str
    final: bool


class ToolCallStarted(_AppEvent, frozen=True, kw_only=True):
    call_id: str
    name: str
    arguments: str


class ToolCallEnded(_AppEvent, frozen=True, kw_only=True):
    call_id: str
    name: str
    outcome: ToolOutcome
    output: str


class ProviderNotice(_AppEvent, frozen=True, kw_only=True):
    """A provider error or warning that the session survived."""

    code: str
    message: str
    recoverable: bool


class Reconnected(_AppEvent, frozen=True, kw_only=True):
    """The session moved to a new provider connection.

    Attributes:
        epoch: The new connection's epoch.
        cause: Why (e.g. ``"drop"``, ``"session_expired"``, ``"rotation:age"``, ``"go_away"``).
        state_restored: True when the new connection holds everything the old one had; False
            when a generation was cut off mid-way (its unsaid part is lost) or history had to
            be shortened to fit the provider's limits.
        gap_ms: Time from losing the old connection (or starting the switch) to the new one
            being ready.
    """

    epoch: int
    cause: str
    state_restored: bool
    gap_ms: float


class SessionEnded(_AppEvent, frozen=True, kw_only=True):
    reason: str
    error: str = ""


SessionEvent = (
    AssistantAudio
    | AssistantText
    | ReplyStarted
    | ReplyEnded
    | UserSpeechStarted
    | UserSpeechStopped
    | UserTranscript
    | ToolCallStarted
    | ToolCallEnded
    | ProviderNotice
    | Reconnected
    | SessionEnded
)
