"""What the app sees: ``Session.events()`` yields :data:`SessionEvent`, an exhaustive union.

How this works: app events are derived from the journalled protocol events, one recorded
event at a time and in journal order, by :class:`AppEventMapper` — pure, so the mapping is
tested without a session and a journal can be turned into the app's view offline. The
runtime adds its own notices (:class:`Reconnected`, :class:`SessionEnded`).

One name, one meaning: where the app's event *is* the journalled fact, the app gets the
protocol struct itself (:class:`~antiphon.protocol.UserSpeechStarted`,
:class:`~antiphon.protocol.UserSpeechStopped`, :class:`~antiphon.protocol.ToolCallRequested`
— the model asked for a call —, :class:`~antiphon.protocol.ToolCallFinished` — the call's one
output is recorded —, :class:`~antiphon.protocol.ToolApprovalRequested` — a call waits for
``Session.approve``/``deny`` — and its ``ToolApprovalGranted``/``ToolApprovalDenied``).
The app-only events below carry what the app needs in another shape (audio inline rather
than as a journal span, a reply's whole transcript). Match on them with ``match`` and
``typing.assert_never`` to handle every case.
"""

from __future__ import annotations

import msgspec

from .protocol import (
    Event,
    GenerationAudioDelta,
    GenerationEnded,
    GenerationEndReason,
    GenerationStarted,
    GenerationTextDelta,
    InputTranscriptDelta,
    InputTranscriptFailed,
    InputTranscriptFinal,
    ProviderErrorEvent,
    RateLimitsUpdated,
    ToolApprovalDenied,
    ToolApprovalGranted,
    ToolApprovalRequested,
    ToolCallFinished,
    ToolCallProgress,
    ToolCallRequested,
    UserSpeechStarted,
    UserSpeechStopped,
)


class _AppEvent(msgspec.Struct, frozen=True, kw_only=True):
    pass


class AssistantAudio(_AppEvent, frozen=True, kw_only=True):
    """A chunk of the assistant's speech: PCM16 mono at ``sample_rate``."""

    generation_id: str
    pcm: bytes
    sample_rate: int


class AssistantText(_AppEvent, frozen=True, kw_only=True):
    """A piece of the assistant's transcript (or text output).

    ``phase`` tells a spoken preamble (``"commentary"``, e.g. "let me check that") from the
    answer (``"final_answer"``) where the provider labels them (newer OpenAI models); ""
    where it does not."""

    generation_id: str
    text: str
    phase: str = ""


class ReplyStarted(_AppEvent, frozen=True, kw_only=True):
    """The model began a reply (a generation)."""

    generation_id: str


class ReplyEnded(_AppEvent, frozen=True, kw_only=True):
    """A reply ended: completed, interrupted, handed over to a tool call, or failed.

    ``phase`` is the provider's phase of the reply's last text (``"commentary"`` for a
    preamble before a tool call, ``"final_answer"`` for an answer; "" when unlabelled);
    ``answer`` is the part of ``text`` that is not commentary."""

    generation_id: str
    reason: GenerationEndReason
    text: str = ""  # the whole transcript of the reply
    phase: str = ""
    answer: str = ""


class UserTranscript(_AppEvent, frozen=True, kw_only=True):
    """The provider's transcript of the user's speech; ``final`` once it will not change.

    ``error`` is set (and ``text`` empty, ``final`` True) when the provider could not
    transcribe the turn: ``"<code>: <message>"``. The model still heard it."""

    item_id: str
    text: str
    final: bool
    error: str = ""


class ProviderNotice(_AppEvent, frozen=True, kw_only=True):
    """A provider error or warning that the session survived."""

    code: str
    message: str
    recoverable: bool


class Reconnected(_AppEvent, frozen=True, kw_only=True):
    """The session moved to a new provider connection.

    Attributes:
        epoch: The new connection's epoch.
        cause: Why (e.g. ``"closed:1006"``, ``"session_expired"``, ``"rotation:age"``,
            ``"go_away"``, ``"resume"``).
        state_restored: True when the new connection holds everything the old one had; False
            when a generation was cut off mid-way (its unsaid part is lost), history had to
            be shortened to fit the provider's limits, or a tool's outcome is unknown.
        gap_ms: Time from losing the old connection (or starting the switch) to the new one
            being ready.
        provider: The provider the new connection is to (another one after a failover).
        previous_provider: The provider of the connection before, when it was another one
            (a failover, or a return to the first provider); "" for the same provider.
    """

    epoch: int
    cause: str
    state_restored: bool
    gap_ms: float
    provider: str = ""
    previous_provider: str = ""


class AudioOverrun(_AppEvent, frozen=True, kw_only=True):
    """User audio overflowed the resend window (``limits.resend_window_s``) before the
    provider took it: the oldest frames were evicted. Of those, the ones not yet sent are
    lost; the others can no longer be re-sent after a reconnect. Sent at the first eviction,
    then after every further second of audio evicted.

    Attributes:
        frames_evicted: Frames evicted so far in the session.
        ms_evicted: The same, in milliseconds of audio.
    """

    frames_evicted: int
    ms_evicted: int


class SessionEnded(_AppEvent, frozen=True, kw_only=True):
    """The last event of a session: ``reason`` is ``closed`` or ``failed`` (with ``error``)."""

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
    | ToolCallRequested
    | ToolCallFinished
    | ToolApprovalRequested
    | ToolApprovalGranted
    | ToolApprovalDenied
    | ToolCallProgress
    | ProviderNotice
    | RateLimitsUpdated
    | AudioOverrun
    | Reconnected
    | SessionEnded
)


class AppEventMapper:
    """Turns recorded protocol events into app events. Pure; one instance per session.

    It keeps the text of each open reply, so :class:`ReplyEnded` carries the whole
    transcript. Feed it every recorded event in journal order.
    """

    def __init__(self) -> None:
        self._reply_text: dict[str, list[tuple[str, str]]] = {}  # id -> [(phase, text)]

    def app_events(self, event: Event) -> list[SessionEvent]:
        """The app events for one recorded ``event`` (as it came in: audio still inline)."""
        match event:
            case GenerationAudioDelta():
                return [
                    AssistantAudio(
                        generation_id=event.generation_id,
                        pcm=event.audio,
                        sample_rate=event.sample_rate,
                    )
                ]
            case GenerationTextDelta():
                pieces = self._reply_text.setdefault(event.generation_id, [])
                pieces.append((event.phase, event.text))
                return [
                    AssistantText(
                        generation_id=event.generation_id, text=event.text, phase=event.phase
                    )
                ]
            case GenerationStarted():
                return [ReplyStarted(generation_id=event.generation_id)]
            case GenerationEnded():
                said = self._reply_text.pop(event.generation_id, [])
                return [
                    ReplyEnded(
                        generation_id=event.generation_id,
                        reason=event.reason,
                        text="".join(text for _, text in said),
                        phase=said[-1][0] if said else "",
                        answer="".join(text for phase, text in said if phase != "commentary"),
                    )
                ]
            case (
                UserSpeechStarted()
                | UserSpeechStopped()
                | ToolCallRequested()
                | ToolCallFinished()
                | ToolApprovalRequested()
                | ToolApprovalGranted()
                | ToolApprovalDenied()
                | ToolCallProgress()
                | RateLimitsUpdated()
            ):
                return [event]
            case InputTranscriptDelta():
                return [UserTranscript(item_id=event.item_id, text=event.text, final=False)]
            case InputTranscriptFinal():
                return [UserTranscript(item_id=event.item_id, text=event.text, final=True)]
            case InputTranscriptFailed():
                error = ": ".join(p for p in (event.code, event.message) if p)
                return [
                    UserTranscript(
                        item_id=event.item_id,
                        text="",
                        final=True,
                        error=error or "transcription failed",
                    )
                ]
            case ProviderErrorEvent():
                return [
                    ProviderNotice(
                        code=event.code, message=event.message, recoverable=event.recoverable
                    )
                ]
            case _:
                return []


__all__ = [
    "AppEventMapper",
    "AssistantAudio",
    "AssistantText",
    "AudioOverrun",
    "ProviderNotice",
    "RateLimitsUpdated",
    "Reconnected",
    "ReplyEnded",
    "ReplyStarted",
    "SessionEnded",
    "SessionEvent",
    "ToolApprovalDenied",
    "ToolApprovalGranted",
    "ToolApprovalRequested",
    "ToolCallFinished",
    "ToolCallProgress",
    "ToolCallRequested",
    "UserSpeechStarted",
    "UserSpeechStopped",
    "UserTranscript",
]
