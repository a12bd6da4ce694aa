"""SessionState and the pure, total reducer ``apply(state, event) -> state``.

How this works: the state is an immutable msgspec Struct. ``apply`` looks up a handler by the
event's type in a table and returns a new state built with ``msgspec.structs.replace``; events
that carry no state change return the state unchanged. Every handler accepts every value its
event type can hold, so ``apply`` never raises on a valid event — replaying a journal folds its
events into exactly the state the live session had.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
from msgspec.structs import replace

from ._base import SCHEMA_VERSION
from ._events import (
    AssistantTruncated,
    ConnectionLost,
    ConnectionOpened,
    ConnectionRotated,
    Event,
    EventBase,
    GenerationAudioDelta,
    GenerationEnded,
    GenerationEndReason,
    GenerationStarted,
    GenerationTextDelta,
    GoAwayReceived,
    HistoryEdited,
    InputTranscriptDelta,
    InputTranscriptFailed,
    InputTranscriptFinal,
    InstructionsUpdated,
    OptionsUpdated,
    ProviderErrorEvent,
    ProviderResumed,
    ProviderSessionInfo,
    ProviderSwitched,
    RateLimit,
    RateLimitsUpdated,
    ResumptionHandleUpdated,
    SessionClosed,
    SessionStarted,
    TokenDetails,
    ToolApprovalDenied,
    ToolApprovalGranted,
    ToolApprovalRequested,
    ToolCallCancelRequested,
    ToolCallFinished,
    ToolCallRequested,
    ToolCallStarted,
    ToolResultDelivered,
    ToolsUpdated,
    UnknownProviderEvent,
    Usage,
    UserAudio,
    UserAudioCommitted,
    UserAudioSettled,
    UserTextSent,
)
from ._items import AssistantMessage, FunctionCall, FunctionOutput, Item, UserMessage
from ._tools import ToolOutcome, ToolSpec

# --- tool calls in flight -----------------------------------------------------------------


class ToolCallStatus(enum.StrEnum):
    REQUESTED = "requested"  # journalled; may run now
    RUNNING = "running"  # started; if the process dies here the outcome is unknown
    CANCEL_REQUESTED = "cancel_requested"
    FINISHED = "finished"  # output recorded, not yet delivered


class ToolApproval(enum.StrEnum):
    """Where a call of a tool that requires approval stands."""

    NONE = ""  # not asked (the tool needs no approval, or the executor has not asked yet)
    PENDING = "pending"
    GRANTED = "granted"
    DENIED = "denied"


class PendingToolCall(msgspec.Struct, frozen=True, kw_only=True):
    call_id: str
    name: str
    arguments: str
    status: ToolCallStatus
    output: str = ""
    outcome: ToolOutcome = ToolOutcome.OK
    withdrawn: bool = False  # the provider cancelled it: its result is recorded, never sent
    approval: ToolApproval = ToolApproval.NONE


class OpenGeneration(msgspec.Struct, frozen=True, kw_only=True):
    generation_id: str
    item_id: str = ""
    text: str = ""
    audio_bytes: int = 0
    epoch: int = 0
    segments: int = 0  # assistant messages already split off (text before a tool call)
    heard_ms: int | None = None  # truncated to this after a barge-in, before the reply ended
    phase: str = ""  # the provider's phase of the current segment (see GenerationTextDelta)

    @property
    def message_id(self) -> str:
        """Id for the assistant message this generation's text becomes."""
        if self.item_id:
            return self.item_id
        return self.generation_id if not self.segments else f"{self.generation_id}/{self.segments}"


class UsageTotals(msgspec.Struct, frozen=True, kw_only=True):
    """The session's :class:`~antiphon.protocol.Usage` events, summed field by field."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    input_details: TokenDetails = TokenDetails()
    output_details: TokenDetails = TokenDetails()
    cached_details: TokenDetails = TokenDetails()


class SessionState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a session knows, as folded from its events.

    Attributes:
        items: The conversation, oldest first: what a new connection is primed with.
        generation: The assistant generation in progress, if any.
        pending_tools: Tool calls that have not had their output delivered yet.
        resumption_handle: Newest resumable provider handle (Gemini), or "".
        epoch: Current connection epoch (0 before the first connection).
        provider_resumed: What the provider said (``ProviderResumed``) about resuming its own
            state on the connection being opened; None once that connection is open, or
            when it said nothing.
        rate_limits: The provider's newest rate limits (``RateLimitsUpdated``).
        user_audio_bytes / assistant_audio_bytes: Audio positions in the audio store.
        user_frames: User audio frames journalled: the index the next one gets.
        audio_settled: User audio frames below this are settled (``UserAudioSettled``): a
            session resumed after a crash sends the journalled frames from here on again.
    """

    schema: int = SCHEMA_VERSION
    session_id: str = ""
    provider: str = ""
    model: str = ""
    instructions: str = ""
    tools: tuple[ToolSpec, ...] = ()
    options: dict[str, Any] = {}
    items: tuple[Item, ...] = ()
    generation: OpenGeneration | None = None
    pending_tools: tuple[PendingToolCall, ...] = ()
    resumption_handle: str = ""
    resumption_handle_at_s: float = 0.0  # wall time the handle was received
    provider_session_id: str = ""
    conversation_id: str = ""
    expires_at_s: float | None = None
    epoch: int = 0
    connected: bool = False
    closed: bool = False
    go_away_ms: int | None = None
    usage: UsageTotals = UsageTotals()
    user_audio_bytes: int = 0
    user_frames: int = 0
    audio_settled: int = 0
    assistant_audio_bytes: int = 0
    generations: int = 0
    interrupted_generations: int = 0
    last_error: str = ""
    unknown_events: int = 0
    provider_resumed: bool | None = None
    rate_limits: tuple[RateLimit, ...] = ()

    def pending_tool(self, call_id: str) -> PendingToolCall | None:
        for call in self.pending_tools:
            if call.call_id == call_id:
                return call
        return None

    def history(self) -> tuple[Item, ...]:
        """The conversation to prime a new connection with: ``items`` without the outputs of
        tool calls still waiting for delivery (the runtime delivers those after priming)."""
        waiting = {c.call_id for c in self.pending_tools}
        if not waiting:
            return self.items
        return tuple(
            item
            for item in self.items
            if not (isinstance(item, FunctionOutput) and item.id in waiting)
        )

    def undelivered_results(self) -> tuple[PendingToolCall, ...]:
        """Recorded tool outputs not yet delivered to the provider, oldest first (withdrawn
        calls included: the runtime settles those without sending anything)."""
        return tuple(c for c in self.pending_tools if c.status is ToolCallStatus.FINISHED)

    def tools_outstanding(self) -> bool:
        """A tool call is still running (or waiting to run) for the provider."""
        return any(
            c.status is not ToolCallStatus.FINISHED and not c.withdrawn for c in self.pending_tools
        )

    @property
    def turns(self) -> int:
        """Completed assistant turns (messages) in the conversation."""
        return sum(1 for item in self.items if isinstance(item, AssistantMessage))


# --- the reducer --------------------------------------------------------------------------


def _find(items: tuple[Item, ...], item_id: str) -> int:
    """Index of the newest item with ``item_id``, or -1. Scans from the end: updates almost
    always concern the newest items."""
    if not item_id:
        return -1
    for i in range(len(items) - 1, -1, -1):
        if items[i].id == item_id:
            return i
    return -1


def _set_item(items: tuple[Item, ...], index: int, item: Item) -> tuple[Item, ...]:
    return (*items[:index], item, *items[index + 1 :])


def _upsert_user(state: SessionState, item_id: str, text: str, *, final: bool) -> SessionState:
    items = state.items
    i = _find(items, item_id)
    if i >= 0 and isinstance(items[i], UserMessage):
        old = items[i]
        assert isinstance(old, UserMessage)
        return replace(state, items=_set_item(items, i, replace(old, text=text, final=final)))
    msg = UserMessage(id=item_id, text=text, from_audio=True, final=final)
    return replace(state, items=(*items, msg))


def _session_started(s: SessionState, e: SessionStarted) -> SessionState:
    return replace(
        s,
        session_id=e.session_id,
        provider=e.provider,
        model=e.model,
        instructions=e.instructions,
        tools=e.tools,
        options=dict(e.options),
    )


def _session_closed(s: SessionState, e: SessionClosed) -> SessionState:
    return replace(s, closed=True, connected=False)


def _instructions(s: SessionState, e: InstructionsUpdated) -> SessionState:
    return replace(s, instructions=e.instructions)


def _tools(s: SessionState, e: ToolsUpdated) -> SessionState:
    return replace(s, tools=e.tools)


def _options(s: SessionState, e: OptionsUpdated) -> SessionState:
    return replace(s, options={**s.options, **e.options})


def _history_edited(s: SessionState, e: HistoryEdited) -> SessionState:
    # A call whose output is still to be delivered stays: its output will join it.
    gone = set(e.delete).difference(c.call_id for c in s.pending_tools)
    items = tuple(item for item in s.items if item.id not in gone)
    for insert in e.insert:
        item = insert.item
        if any(type(i) is type(item) and i.id == item.id for i in items):
            continue  # one item of a kind per id (a call and its output share theirs)
        if isinstance(item, FunctionOutput) and not any(
            isinstance(i, FunctionCall) and i.id == item.id for i in items
        ):
            continue  # an output answers a call in the history, or is not there at all
        # After the named item; first for "", last for an id the history does not hold.
        at = 0 if not insert.after else (_find(items, insert.after) + 1 or len(items))
        items = (*items[:at], item, *items[at:])
    # The provider's own copy of the conversation (a resumable handle) is the old one.
    return replace(s, items=items, resumption_handle="", resumption_handle_at_s=0.0)


def _opened(s: SessionState, e: ConnectionOpened) -> SessionState:
    return replace(
        s,
        epoch=e.epoch,
        connected=True,
        go_away_ms=None,
        provider_session_id=e.provider_session_id or s.provider_session_id,
        expires_at_s=e.expires_at_s,
        provider_resumed=None,
    )


def _lost(s: SessionState, e: ConnectionLost) -> SessionState:
    if e.epoch != s.epoch:
        # A connection that failed before it was opened: forget what it said about resuming.
        return replace(s, provider_resumed=None) if s.provider_resumed is not None else s
    return _cut_generation(replace(s, connected=False, provider_resumed=None))


def _cut_generation(s: SessionState) -> SessionState:
    """A connection ended under an open generation: keep what was said, marked interrupted."""
    gen = s.generation
    if gen is None:
        return s
    items = s.items
    if gen.text:
        cut = AssistantMessage(id=gen.message_id, text=gen.text, interrupted=True, phase=gen.phase)
        items = (*items, cut)
    return replace(
        s, generation=None, items=items, interrupted_generations=s.interrupted_generations + 1
    )


def _rotated(s: SessionState, e: ConnectionRotated) -> SessionState:
    return replace(s, epoch=e.epoch, go_away_ms=None)


def _provider_session(s: SessionState, e: ProviderSessionInfo) -> SessionState:
    return replace(
        s,
        provider_session_id=e.provider_session_id or s.provider_session_id,
        conversation_id=e.conversation_id or s.conversation_id,
        expires_at_s=e.expires_at_s if e.expires_at_s is not None else s.expires_at_s,
    )


def _go_away(s: SessionState, e: GoAwayReceived) -> SessionState:
    return replace(s, go_away_ms=e.time_left_ms)


def _handle(s: SessionState, e: ResumptionHandleUpdated) -> SessionState:
    # A non-resumable update (mid-generation, tool call pending) must not replace a good handle.
    if not (e.resumable and e.handle):
        return s
    return replace(s, resumption_handle=e.handle, resumption_handle_at_s=e.received_at_s)


def _switched(s: SessionState, e: ProviderSwitched) -> SessionState:
    """Another provider: nothing of the old provider's server state is kept."""
    return replace(
        s,
        provider=e.provider,
        model=e.model,
        resumption_handle="",
        resumption_handle_at_s=0.0,
        provider_session_id="",
        conversation_id="",
        expires_at_s=None,
        go_away_ms=None,
        provider_resumed=None,
        rate_limits=(),
    )


def _provider_resumed(s: SessionState, e: ProviderResumed) -> SessionState:
    return replace(
        s, provider_resumed=e.resumed, conversation_id=e.conversation_id or s.conversation_id
    )


def _rate_limits(s: SessionState, e: RateLimitsUpdated) -> SessionState:
    return replace(s, rate_limits=e.limits)


def _provider_error(s: SessionState, e: ProviderErrorEvent) -> SessionState:
    return replace(s, last_error=f"{e.code}: {e.message}" if e.message else e.code)


def _unknown(s: SessionState, e: UnknownProviderEvent) -> SessionState:
    return replace(s, unknown_events=s.unknown_events + 1)


def _user_audio(s: SessionState, e: UserAudio) -> SessionState:
    n = e.span.length if e.span is not None else len(e.audio)
    return replace(s, user_audio_bytes=s.user_audio_bytes + n, user_frames=s.user_frames + e.frames)


def _settled(s: SessionState, e: UserAudioSettled) -> SessionState:
    return replace(s, audio_settled=e.frame) if e.frame > s.audio_settled else s


def _committed(s: SessionState, e: UserAudioCommitted) -> SessionState:
    if not e.item_id or _find(s.items, e.item_id) >= 0:
        return s
    return replace(s, items=(*s.items, UserMessage(id=e.item_id, from_audio=True, final=False)))


def _user_text(s: SessionState, e: UserTextSent) -> SessionState:
    return replace(s, items=(*s.items, UserMessage(id=e.item_id, text=e.text)))


def _transcript_delta(s: SessionState, e: InputTranscriptDelta) -> SessionState:
    i = _find(s.items, e.item_id)
    old = s.items[i] if i >= 0 else None
    if isinstance(old, UserMessage) and old.final and old.text:
        return s  # a late delta after the final transcript changes nothing
    base = old.text if isinstance(old, UserMessage) and not e.cumulative else ""
    return _upsert_user(s, e.item_id, base + e.text, final=False)


def _transcript_final(s: SessionState, e: InputTranscriptFinal) -> SessionState:
    return _upsert_user(s, e.item_id, e.text, final=True)


def _transcript_failed(s: SessionState, e: InputTranscriptFailed) -> SessionState:
    error = f"{e.code}: {e.message}" if e.code and e.message else e.code or e.message
    error = error or "transcription failed"
    i = _find(s.items, e.item_id)
    old = s.items[i] if i >= 0 else None
    if isinstance(old, UserMessage):
        if old.final and old.text:
            return s  # a transcript already came: it stands
        failed = replace(old, text="", final=True, error=error)
        return replace(s, items=_set_item(s.items, i, failed))
    msg = UserMessage(id=e.item_id, from_audio=True, final=True, error=error)
    return replace(s, items=(*s.items, msg))


def _ensure_generation(s: SessionState, generation_id: str, item_id: str) -> OpenGeneration:
    gen = s.generation
    if gen is not None and gen.generation_id == generation_id:
        if item_id and not gen.item_id:
            return replace(gen, item_id=item_id)
        return gen
    return OpenGeneration(generation_id=generation_id, item_id=item_id, epoch=s.epoch)


def _gen_started(s: SessionState, e: GenerationStarted) -> SessionState:
    if s.generation is not None and s.generation.generation_id != e.generation_id:
        s = _cut_generation(s)
    return replace(
        s,
        generation=_ensure_generation(s, e.generation_id, ""),
        generations=s.generations + (s.generation is None),
    )


def _gen_text(s: SessionState, e: GenerationTextDelta) -> SessionState:
    if s.generation is None or s.generation.generation_id != e.generation_id:
        s = _gen_started(s, GenerationStarted(generation_id=e.generation_id))
    gen = _ensure_generation(s, e.generation_id, e.item_id)
    if e.phase and gen.text and e.phase != gen.phase:
        # A new phase is a new message (a preamble, then the answer, in one reply): the
        # history keeps them apart, each with its phase.
        said = AssistantMessage(id=gen.message_id, text=gen.text, phase=gen.phase)
        s = replace(s, items=(*s.items, said))
        gen = replace(gen, text="", item_id=e.item_id, segments=gen.segments + 1, heard_ms=None)
    phase = e.phase or gen.phase
    return replace(s, generation=replace(gen, text=gen.text + e.text, phase=phase))


def _gen_audio(s: SessionState, e: GenerationAudioDelta) -> SessionState:
    if s.generation is None or s.generation.generation_id != e.generation_id:
        s = _gen_started(s, GenerationStarted(generation_id=e.generation_id))
    n = e.span.length if e.span is not None else len(e.audio)
    gen = _ensure_generation(s, e.generation_id, e.item_id)
    return replace(
        s,
        generation=replace(gen, audio_bytes=gen.audio_bytes + n),
        assistant_audio_bytes=s.assistant_audio_bytes + n,
    )


def _gen_ended(s: SessionState, e: GenerationEnded) -> SessionState:
    gen = s.generation
    if gen is None or gen.generation_id != e.generation_id:
        return s
    interrupted = e.reason is GenerationEndReason.INTERRUPTED
    items = s.items
    if gen.text:
        message = AssistantMessage(
            id=gen.message_id,
            text=gen.text,
            interrupted=interrupted,
            heard_ms=gen.heard_ms,
            phase=gen.phase,
        )
        items = (*items, message)
    return replace(
        s,
        generation=None,
        items=items,
        interrupted_generations=s.interrupted_generations + interrupted,
    )


def _truncated(s: SessionState, e: AssistantTruncated) -> SessionState:
    gen = s.generation
    if gen is not None and e.item_id and e.item_id in (gen.item_id, gen.generation_id):
        # Providers confirm a truncation before the reply's end: keep it for the message.
        text = gen.text if e.text is None else e.text
        return replace(s, generation=replace(gen, heard_ms=e.audio_end_ms, text=text))
    i = _find(s.items, e.item_id)
    old = s.items[i] if i >= 0 else None
    if not isinstance(old, AssistantMessage):
        return s
    text = old.text if e.text is None else e.text  # what was heard, when the provider says
    heard = replace(old, heard_ms=e.audio_end_ms, text=text)
    return replace(s, items=_set_item(s.items, i, heard))


def _usage(s: SessionState, e: Usage) -> SessionState:
    u = s.usage
    return replace(
        s,
        usage=UsageTotals(
            input_tokens=u.input_tokens + e.input_tokens,
            output_tokens=u.output_tokens + e.output_tokens,
            total_tokens=u.total_tokens + e.total_tokens,
            cached_input_tokens=u.cached_input_tokens + e.cached_input_tokens,
            reasoning_tokens=u.reasoning_tokens + e.reasoning_tokens,
            input_details=u.input_details + e.input_details,
            output_details=u.output_details + e.output_details,
            cached_details=u.cached_details + e.cached_details,
        ),
    )


def _set_call(s: SessionState, call_id: str, **changes: Any) -> SessionState:
    calls = s.pending_tools
    for i, call in enumerate(calls):
        if call.call_id == call_id:
            return replace(s, pending_tools=(*calls[:i], replace(call, **changes), *calls[i + 1 :]))
    return s


def _tool_requested(s: SessionState, e: ToolCallRequested) -> SessionState:
    if s.pending_tool(e.call_id) is not None or _find(s.items, e.call_id) >= 0:
        return s  # a provider repeating a call (or a replay of the same event) is one call
    call = PendingToolCall(
        call_id=e.call_id, name=e.name, arguments=e.arguments, status=ToolCallStatus.REQUESTED
    )
    items = s.items
    gen = s.generation
    if gen is not None and gen.text:
        # What the assistant said before the call comes before it in the history.
        items = (*items, AssistantMessage(id=gen.message_id, text=gen.text, phase=gen.phase))
        s = replace(s, generation=replace(gen, text="", item_id="", segments=gen.segments + 1))
    item = FunctionCall(id=e.call_id, name=e.name, arguments=e.arguments)
    return replace(s, pending_tools=(*s.pending_tools, call), items=(*items, item))


def _tool_started(s: SessionState, e: ToolCallStarted) -> SessionState:
    call = s.pending_tool(e.call_id)
    if call is None or call.status is not ToolCallStatus.REQUESTED:
        return s
    return _set_call(s, e.call_id, status=ToolCallStatus.RUNNING)


def _tool_cancel(s: SessionState, e: ToolCallCancelRequested) -> SessionState:
    for call_id in e.call_ids:
        call = s.pending_tool(call_id)
        if call is not None and call.status is not ToolCallStatus.FINISHED:
            s = _set_call(s, call_id, status=ToolCallStatus.CANCEL_REQUESTED, withdrawn=True)
    return s


def _tool_finished(s: SessionState, e: ToolCallFinished) -> SessionState:
    call = s.pending_tool(e.call_id)
    if call is None or call.status is ToolCallStatus.FINISHED:
        return s  # exactly one output per call: a second one is ignored
    s = _set_call(s, e.call_id, status=ToolCallStatus.FINISHED, output=e.output, outcome=e.outcome)
    out = FunctionOutput(id=e.call_id, name=e.name, output=e.output, outcome=e.outcome)
    return replace(s, items=(*s.items, out))


def _approval(status: ToolApproval) -> _Handler:
    def handler(
        s: SessionState, e: ToolApprovalRequested | ToolApprovalGranted | ToolApprovalDenied
    ) -> SessionState:
        call = s.pending_tool(e.call_id)
        if call is None or call.status is ToolCallStatus.FINISHED:
            return s
        if call.approval in (ToolApproval.GRANTED, ToolApproval.DENIED):
            return s  # a decision is final
        return _set_call(s, e.call_id, approval=status)

    return handler


def _tool_delivered(s: SessionState, e: ToolResultDelivered) -> SessionState:
    calls = tuple(c for c in s.pending_tools if c.call_id != e.call_id)
    return replace(s, pending_tools=calls) if len(calls) != len(s.pending_tools) else s


_Handler = Callable[[SessionState, Any], SessionState]

_HANDLERS: dict[type[EventBase], _Handler] = {
    SessionStarted: _session_started,
    SessionClosed: _session_closed,
    InstructionsUpdated: _instructions,
    ToolsUpdated: _tools,
    OptionsUpdated: _options,
    HistoryEdited: _history_edited,
    ConnectionOpened: _opened,
    ConnectionLost: _lost,
    ConnectionRotated: _rotated,
    ProviderSessionInfo: _provider_session,
    GoAwayReceived: _go_away,
    ResumptionHandleUpdated: _handle,
    ProviderErrorEvent: _provider_error,
    ProviderResumed: _provider_resumed,
    ProviderSwitched: _switched,
    RateLimitsUpdated: _rate_limits,
    UnknownProviderEvent: _unknown,
    UserAudio: _user_audio,
    UserAudioSettled: _settled,
    UserAudioCommitted: _committed,
    UserTextSent: _user_text,
    InputTranscriptDelta: _transcript_delta,
    InputTranscriptFinal: _transcript_final,
    InputTranscriptFailed: _transcript_failed,
    GenerationStarted: _gen_started,
    GenerationTextDelta: _gen_text,
    GenerationAudioDelta: _gen_audio,
    GenerationEnded: _gen_ended,
    AssistantTruncated: _truncated,
    Usage: _usage,
    ToolCallRequested: _tool_requested,
    ToolCallStarted: _tool_started,
    ToolCallCancelRequested: _tool_cancel,
    ToolCallFinished: _tool_finished,
    ToolResultDelivered: _tool_delivered,
    ToolApprovalRequested: _approval(ToolApproval.PENDING),
    ToolApprovalGranted: _approval(ToolApproval.GRANTED),
    ToolApprovalDenied: _approval(ToolApproval.DENIED),
}
"""Event type -> handler. Types absent here (speech edges) change no state."""


def apply(state: SessionState, event: Event) -> SessionState:
    """Fold one event into the state. Pure and total: never raises on a valid event."""
    handler = _HANDLERS.get(type(event))
    return state if handler is None else handler(state, event)


def fold(events: Iterable[Event], state: SessionState | None = None) -> SessionState:
    """Fold many events, starting from ``state`` (or an empty state)."""
    s = SessionState() if state is None else state
    handlers = _HANDLERS
    for event in events:
        handler = handlers.get(type(event))
        if handler is not None:
            s = handler(s, event)
    return s
