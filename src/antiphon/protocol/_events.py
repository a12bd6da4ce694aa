"""Events: journalled, provider-neutral state changes.

Every event is a frozen msgspec Struct with an explicit, stable ``tag``; a journal keeps tags
forever, so a tag is never renamed (add an alias in ``EVENT_TAG_ALIASES`` instead) and new
fields always get defaults.

Translators produce events from wire frames; the generation tracker appends them to the
journal and folds them into :class:`~antiphon.protocol.SessionState` with ``apply``. Audio
arrives inline from a translator (``audio``) and is moved to the journal's audio store before
the event is journalled, leaving a ``span`` behind: journals never carry audio inline.
"""

from __future__ import annotations

import enum
import typing
from typing import Any

import msgspec

from ._base import AudioSpan
from ._items import HistoryInsert
from ._tools import ToolOutcome, ToolSpec


class EventBase(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", forbid_unknown_fields=False
):
    """Base of all events. Unknown fields are ignored so older code reads newer journals."""


# --- session ------------------------------------------------------------------------------


class SessionStarted(EventBase, frozen=True, kw_only=True, tag="session.started"):
    session_id: str
    provider: str
    model: str = ""
    instructions: str = ""
    tools: tuple[ToolSpec, ...] = ()
    options: dict[str, Any] = {}


class SessionClosed(EventBase, frozen=True, kw_only=True, tag="session.closed"):
    reason: str = "closed"


class InstructionsUpdated(EventBase, frozen=True, kw_only=True, tag="instructions.updated"):
    instructions: str


class ToolsUpdated(EventBase, frozen=True, kw_only=True, tag="tools.updated"):
    tools: tuple[ToolSpec, ...]


class OptionsUpdated(EventBase, frozen=True, kw_only=True, tag="options.updated"):
    options: dict[str, Any]


class HistoryEdited(EventBase, frozen=True, kw_only=True, tag="history.edited"):
    """The app edited the conversation (``Session.edit_history``): ``delete`` names items to
    remove (a tool call's id removes the call and its output), then ``insert`` adds items,
    each after the item it names. The provider's own resumable state no longer matches, so
    its resumption handle is dropped and the next connection is seeded from the history."""

    delete: tuple[str, ...] = ()
    insert: tuple[HistoryInsert, ...] = ()


# --- connection ---------------------------------------------------------------------------


class ConnectionOpened(EventBase, frozen=True, kw_only=True, tag="connection.opened"):
    """A provider connection for ``epoch`` is up and primed."""

    epoch: int
    provider_session_id: str = ""
    expires_at_s: float | None = None  # provider's own expiry (unix seconds), when announced
    resumed: bool = False  # the provider restored state server-side (e.g. Gemini handle)


class ConnectionLost(EventBase, frozen=True, kw_only=True, tag="connection.lost"):
    """A connection ended without us asking.

    Attributes:
        kind: Why, as the provider's translator classified it (a ``FailureKind`` value:
            ``"transient"``, ``"quota"``, ``"authentication"``, ...); "" when not classified
            (a process restart).
    """

    epoch: int
    cause: str
    recoverable: bool
    detail: str = ""
    kind: str = ""


class ProviderSwitched(EventBase, frozen=True, kw_only=True, tag="provider.switched"):
    """The session moved to another provider (failover, or back to its first provider).

    What belonged to the old provider's server (resumption handle, session and conversation
    ids, expiry, announced limits) is dropped from the state; the conversation, the tools and
    the pending calls are the session's and carry over.

    Attributes:
        provider: The provider moved to (its name, as ``SessionStarted.provider``).
        model: Its model.
        previous_provider: The provider left.
        cause: Why (the failure's cause code, ``"circuit_open"``, ``"return"``).
    """

    provider: str
    model: str
    previous_provider: str
    cause: str


class ConnectionRotated(EventBase, frozen=True, kw_only=True, tag="connection.rotated"):
    """A planned switch from ``previous_epoch`` to ``epoch`` (session cap, goAway, ...)."""

    epoch: int
    previous_epoch: int
    cause: str


class ProviderSessionInfo(EventBase, frozen=True, kw_only=True, tag="provider.session"):
    """The provider announced (or changed) its session: id, expiry, conversation id."""

    provider_session_id: str = ""
    conversation_id: str = ""
    expires_at_s: float | None = None


class GoAwayReceived(EventBase, frozen=True, kw_only=True, tag="provider.go_away"):
    time_left_ms: int


class ResumptionHandleUpdated(EventBase, frozen=True, kw_only=True, tag="provider.resumption"):
    """A provider resumption handle. ``received_at_s`` (wall seconds) is stamped by the runtime
    when it records the event, so handle age survives a replay."""

    handle: str
    resumable: bool = True
    received_at_s: float = 0.0


class ProviderErrorEvent(EventBase, frozen=True, kw_only=True, tag="provider.error"):
    code: str
    message: str = ""
    recoverable: bool = False


class ProviderResumed(EventBase, frozen=True, kw_only=True, tag="provider.resumed"):
    """Whether the provider took up its own server-side state on the connection being opened,
    for providers that tell only in their first frames (xAI answers a resumption request
    with the same ``conversation_id`` and replays the items it holds, or with a new one).

    A translator emits it before it turns ``ready``; the runtime then reports
    ``ConnectionOpened.resumed`` from it rather than from ``Handshake.resumed`` (which says
    only that resumption was asked for."""

    resumed: bool
    conversation_id: str = ""


class UnknownProviderEvent(EventBase, frozen=True, kw_only=True, tag="provider.unknown"):
    """A provider event this version does not understand, kept verbatim (never a crash)."""

    provider_type: str
    raw: str = ""


# --- user input ---------------------------------------------------------------------------


class UserAudio(EventBase, frozen=True, kw_only=True, tag="user.audio"):
    """Audio handed to the provider for ``epoch``; ``audio`` is inline only before journalling."""

    epoch: int = 0
    first_frame: int = 0
    frames: int = 0
    sample_rate: int = 16_000
    audio: bytes = b""
    span: AudioSpan | None = None


class UserAudioCommitted(EventBase, frozen=True, kw_only=True, tag="user.audio_committed"):
    """The provider took the user audio up to ``audio_end_ms`` of this connection's input into
    the conversation: a safe point. Audio before it need never be re-sent."""

    item_id: str = ""
    audio_end_ms: int | None = None  # None: everything sent so far


class UserAudioCleared(EventBase, frozen=True, kw_only=True, tag="user.audio_cleared"):
    """The app discarded the user audio not committed yet (``Session.clear_audio``): what went
    out before it is settled, as at a safe point covering everything sent; ``frames_dropped``
    frames that had not gone out were dropped (never journalled, their indices reused)."""

    frames_dropped: int = 0


class UserAudioSettled(EventBase, frozen=True, kw_only=True, tag="user.audio_settled"):
    """User audio frames below ``frame`` are settled: in the provider's conversation (a safe
    point covered them) or cleared by the app. A session resumed after a crash sends the
    journalled frames from here on again, so audio that was in flight is not lost."""

    frame: int


class UserSpeechStarted(EventBase, frozen=True, kw_only=True, tag="user.speech_started"):
    item_id: str = ""
    audio_start_ms: int | None = None


class UserSpeechStopped(EventBase, frozen=True, kw_only=True, tag="user.speech_stopped"):
    item_id: str = ""
    audio_end_ms: int | None = None


class UserTextSent(EventBase, frozen=True, kw_only=True, tag="user.text"):
    """Text the app sent as a user message."""

    item_id: str
    text: str


class InputTranscriptDelta(EventBase, frozen=True, kw_only=True, tag="user.transcript_delta"):
    item_id: str
    text: str
    cumulative: bool = False  # True: ``text`` replaces what came before (xAI ``.updated``)


class InputTranscriptFinal(EventBase, frozen=True, kw_only=True, tag="user.transcript"):
    item_id: str
    text: str


class InputTranscriptFailed(EventBase, frozen=True, kw_only=True, tag="user.transcript_failed"):
    """The provider could not transcribe the user's speech in ``item_id`` (Azure
    ``DeploymentNotFound``, a transcription model error). The item stays in the conversation —
    the model heard the audio — with no text, final, and ``code``/``message`` as the reason."""

    item_id: str
    code: str = ""
    message: str = ""


# --- generation ---------------------------------------------------------------------------


class GenerationEndReason(enum.StrEnum):
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    TOOL_CALL = "tool_call"
    FAILED = "failed"


class GenerationStarted(EventBase, frozen=True, kw_only=True, tag="generation.started"):
    generation_id: str


class GenerationTextDelta(EventBase, frozen=True, kw_only=True, tag="generation.text"):
    """Assistant text: the transcript of its speech, or text output in text mode.

    ``phase`` is the provider's label of the item the text belongs to, where it gives one
    (OpenAI ``item.phase``: ``"commentary"`` for a spoken preamble such as "let me check
    that", ``"final_answer"`` for the answer); "" when it gives none."""

    generation_id: str
    item_id: str = ""
    text: str
    phase: str = ""


class GenerationAudioDelta(EventBase, frozen=True, kw_only=True, tag="generation.audio"):
    generation_id: str
    item_id: str = ""
    sample_rate: int = 24_000
    audio: bytes = b""
    span: AudioSpan | None = None


class GenerationEnded(EventBase, frozen=True, kw_only=True, tag="generation.ended"):
    generation_id: str
    reason: GenerationEndReason
    detail: str = ""


class AssistantTruncated(EventBase, frozen=True, kw_only=True, tag="generation.truncated"):
    """Only the first ``audio_end_ms`` of the item's audio was heard (barge-in).

    ``text``, when the provider says it (Phonic ``interrupted_response``), is what was spoken
    before the barge-in; it replaces the message's generated text in the history."""

    item_id: str
    audio_end_ms: int
    text: str | None = None


class TokenDetails(msgspec.Struct, frozen=True, kw_only=True):
    """Tokens of one side of a :class:`Usage`, by modality (zeros where the provider is silent)."""

    text: int = 0
    audio: int = 0
    image: int = 0
    video: int = 0

    def __add__(self, other: TokenDetails) -> TokenDetails:
        return TokenDetails(
            text=self.text + other.text,
            audio=self.audio + other.audio,
            image=self.image + other.image,
            video=self.video + other.video,
        )


class Usage(EventBase, frozen=True, kw_only=True, tag="usage"):
    """Tokens of one provider turn.

    Attributes:
        input_tokens / output_tokens / total_tokens: The provider's totals.
        cached_input_tokens: Part of ``input_tokens`` served from the provider's cache
            (OpenAI ``input_token_details.cached_tokens``, Gemini ``cachedContentTokenCount``).
        reasoning_tokens: Thinking tokens (Gemini ``thoughtsTokenCount``); Gemini counts them
            in ``total_tokens`` but not in ``output_tokens``.
        input_details / output_details / cached_details: The same counts by modality (OpenAI
            ``*_token_details``, Gemini ``promptTokensDetails`` / ``responseTokensDetails`` /
            ``cacheTokensDetails``).
        ttft_ms: Time to the first token, where measured.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    ttft_ms: float | None = None
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    input_details: TokenDetails = TokenDetails()
    output_details: TokenDetails = TokenDetails()
    cached_details: TokenDetails = TokenDetails()


class RateLimit(msgspec.Struct, frozen=True, kw_only=True):
    """One of the provider's rate limits as it stands (OpenAI ``rate_limits.updated``)."""

    name: str  # "requests", "tokens", ...
    limit: int = 0
    remaining: int = 0
    reset_seconds: float = 0.0


class RateLimitsUpdated(EventBase, frozen=True, kw_only=True, tag="provider.rate_limits"):
    """The provider's rate limits after a response: how close the account is to them."""

    limits: tuple[RateLimit, ...] = ()


# --- tools --------------------------------------------------------------------------------


class ToolCallRequested(EventBase, frozen=True, kw_only=True, tag="tool.requested"):
    call_id: str
    name: str
    arguments: str = "{}"
    generation_id: str = ""


class ToolCallStarted(EventBase, frozen=True, kw_only=True, tag="tool.started"):
    call_id: str


class ToolCallFinished(EventBase, frozen=True, kw_only=True, tag="tool.finished"):
    """The call's single output is recorded (completed, failed, timed out, cancelled or
    unknown). It is delivered to the provider only after this is durable."""

    call_id: str
    name: str
    output: str
    outcome: ToolOutcome = ToolOutcome.OK


class ToolCallCancelRequested(EventBase, frozen=True, kw_only=True, tag="tool.cancel_requested"):
    """The provider withdrew calls (Gemini ``toolCallCancellation``) or a barge-in did."""

    call_ids: tuple[str, ...]
    reason: str = ""


class ToolApprovalRequested(EventBase, frozen=True, kw_only=True, tag="tool.approval_requested"):
    """A call of a tool that requires approval waits for ``Session.approve`` or ``deny``."""

    call_id: str
    name: str
    arguments: str = "{}"


class ToolApprovalGranted(EventBase, frozen=True, kw_only=True, tag="tool.approval_granted"):
    """The app approved the call: it runs (once)."""

    call_id: str


class ToolApprovalDenied(EventBase, frozen=True, kw_only=True, tag="tool.approval_denied"):
    """The app denied the call, or approval timed out; its error output follows."""

    call_id: str
    reason: str = ""


class ToolCallProgress(EventBase, frozen=True, kw_only=True, tag="tool.progress"):
    """A running tool reported progress (for the app; the model is not told).

    ``fraction`` is how much is done, in ``[0, 1]``, when the tool says."""

    call_id: str
    message: str = ""
    fraction: float | None = None


class ToolResultDelivered(EventBase, frozen=True, kw_only=True, tag="tool.delivered"):
    call_id: str
    epoch: int


Event = (
    SessionStarted
    | SessionClosed
    | InstructionsUpdated
    | ToolsUpdated
    | OptionsUpdated
    | HistoryEdited
    | ConnectionOpened
    | ConnectionLost
    | ProviderSwitched
    | ConnectionRotated
    | ProviderSessionInfo
    | GoAwayReceived
    | ResumptionHandleUpdated
    | ProviderErrorEvent
    | ProviderResumed
    | RateLimitsUpdated
    | UnknownProviderEvent
    | UserAudio
    | UserAudioCommitted
    | UserAudioCleared
    | UserAudioSettled
    | UserSpeechStarted
    | UserSpeechStopped
    | UserTextSent
    | InputTranscriptDelta
    | InputTranscriptFinal
    | InputTranscriptFailed
    | GenerationStarted
    | GenerationTextDelta
    | GenerationAudioDelta
    | GenerationEnded
    | AssistantTruncated
    | Usage
    | ToolCallRequested
    | ToolCallStarted
    | ToolCallFinished
    | ToolCallCancelRequested
    | ToolResultDelivered
    | ToolApprovalRequested
    | ToolApprovalGranted
    | ToolApprovalDenied
    | ToolCallProgress
)
"""Every journalled event."""

EVENT_TYPES: tuple[type[EventBase], ...] = typing.get_args(Event)

EVENT_TAG_ALIASES: dict[str, str] = {}
"""Old tag -> current tag, for records written before a rename."""


def event_tag(event: EventBase) -> str:
    """The stable tag of an event."""
    tag = type(event).__struct_config__.tag
    return tag if isinstance(tag, str) else type(event).__name__
