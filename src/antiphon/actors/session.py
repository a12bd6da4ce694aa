"""The public Session: ``open_session`` / ``resume_session`` and the calls an app makes.

How this works: a session is a supervisor (rest-for-one) over, in start order, the journal
flusher (only for a journal that needs its owner to flush), the tool-executor, audio-in and
the connection manager (which runs the transport-send/recv pair of each epoch). A provider
failure restarts only the connection manager — never audio-in or the tool executor — so
audio, tool calls and the conversation survive. Every state change goes through the
recorder, which journals it before anything acts on it and emits the app's events in journal
order; ``resume_session`` folds the journal back into the state and carries on.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import msgspec
from anyio.abc import TaskStatus

from ..adapters import Provider
from ..errors import (
    InvalidArgument,
    InvalidArgumentType,
    JournalError,
    SessionClosedError,
    ToolError,
)
from ..events import AudioOverrun, SessionEnded, SessionEvent
from ..journal import CaptureMode, FileJournal, Journal
from ..protocol import (
    ClearAudio,
    CommitAudio,
    ConnectionLost,
    EditHistory,
    Event,
    FunctionCall,
    FunctionOutput,
    GenerateReply,
    HistoryEdited,
    HistoryInsert,
    InstructionsUpdated,
    Interrupt,
    OptionsUpdated,
    SendText,
    SessionClosed,
    SessionStarted,
    SessionState,
    SubmitToolResult,
    ToolApproval,
    ToolApprovalDenied,
    ToolApprovalGranted,
    ToolApprovalRequested,
    ToolCallCancelRequested,
    ToolCallFinished,
    ToolCallRequested,
    ToolCallStatus,
    ToolOutcome,
    ToolSpec,
    ToolsUpdated,
    UpdateInstructions,
    UpdateOptions,
    UpdateTools,
    UserAudio,
    UserAudioCleared,
    UserAudioSettled,
    UserTextSent,
)
from ._arguments import (
    check_audio,
    check_backoff,
    check_capture,
    check_cause,
    check_clock,
    check_flag,
    check_journal,
    check_options,
    check_outcome,
    check_played_ms,
    check_provider,
    check_reconnect,
    check_seed,
    check_session_id,
    check_text,
    check_tools,
)
from ._clock import Clock, SystemClock
from ._outbox import Outbox
from ._supervisor import Backoff, ChildSpec, Intensity, StatusProxy, Strategy, Supervisor
from ._tools import Tool, ToolSource, encode_output, error_output, split_tool_sources
from .audio_in import AudioIn
from .connection import ConnectionManager, cut_generation
from .recorder import Recorder
from .tool_executor import ToolExecutor, app_tool_result, recover_calls


@dataclass(frozen=True, kw_only=True)
class SessionStatistics:
    """What ``Session.statistics()`` reports."""

    session_id: str
    epoch: int
    actors: dict[str, dict[str, Any]]
    connection: dict[str, Any]
    audio: dict[str, int]
    tools_completed: int
    app_events_dropped: int
    supervisor_seed: int
    restarts: dict[str, int]


class Session:
    """A live voice session. Create it with :func:`open_session` or :func:`resume_session`.

    Attributes:
        provider: The provider preset the session runs on.
        session_id: The session's id in its journal.
        journal: The journal the session is recorded in.
        error: The error that ended the session, when it failed (else None).
    """

    def __init__(
        self,
        *,
        provider: Provider,
        session_id: str,
        state: SessionState,
        journal: Journal,
        tools: Sequence[Tool],
        clock: Clock,
        reconnect: Intensity,
        backoff: Backoff,
        seed: int,
        capture: CaptureMode | None = None,
    ) -> None:
        self.provider = provider
        self.session_id = session_id
        self.journal = journal
        self._clock = clock
        self._tools = {t.name: t for t in tools}
        self._writer = journal.writer(session_id)
        limits = provider.limits
        self._recorder = Recorder(
            state=state,
            writer=self._writer,
            clock=clock,
            on_journal_failure=self._fail,
            capture=capture,
        )
        self._audio_in = AudioIn(
            out_rate=limits.input_sample_rate,
            frame_ms=limits.frame_ms,
            resend_window_s=limits.resend_window_s,
            record=lambda event: self._recorder.record([event]),
            on_overrun=lambda evicted: self._recorder.emit(
                AudioOverrun(frames_evicted=evicted, ms_evicted=evicted * limits.frame_ms)
            ),
            on_settled=lambda frame: self._recorder.record([UserAudioSettled(frame=frame)]),
        )
        self._executor = ToolExecutor(
            tools=self._tools,
            record=self._recorder.record,
            state=lambda: self._recorder.state,
            late_result=self._late_result,
        )
        self._late_results: list[str] = []  # results of long-running calls, for a turn's end
        self._outbox = Outbox(self._audio_in.log.wake)
        self._connection = ConnectionManager(
            provider=provider,
            recorder=self._recorder,
            audio_in=self._audio_in,
            outbox=self._outbox,
            clock=clock,
            fail_session=self._fail,
        )
        self._recorder.subscribe(self._on_events)
        self._supervisor = Supervisor(
            f"session {session_id}",
            [
                *(  # a journal that syncs on its own (file, memory) needs no task per session
                    [ChildSpec(name="journal-flusher", run=self._recorder.run_flusher)]
                    if self._recorder.needs_flusher
                    else []
                ),
                ChildSpec(name="tool-executor", run=self._executor.run),
                ChildSpec(name="audio-in", run=self._audio_in.run),
                ChildSpec(
                    name="transport",
                    run=self._connection.run,
                    min_backoff=self._connection.retry_after,
                    healthy=self._connection.failed_after_healthy,
                ),
            ],
            strategy=Strategy.REST_FOR_ONE,
            intensity=reconnect,
            backoff=backoff,
            clock=clock,
            seed=seed,
        )
        self._scope: anyio.CancelScope | None = None
        self._closed = False
        self._ended: anyio.Event | None = None  # made when someone waits for the end
        self.error: BaseException | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def _run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        started = False

        def mark_started(value: None = None) -> None:
            nonlocal started
            started = True
            task_status.started()

        with anyio.CancelScope() as scope:
            self._scope = scope
            try:
                await self._supervisor.run(task_status=StatusProxy(mark_started))
            except Exception as exc:
                # Escalated (or failed to start): the session ends with the error, reported
                # as SessionEnded; open_session's caller is not torn down with a traceback.
                self._fail(exc)
                if not started:
                    task_status.started()

    def _fail(self, error: BaseException) -> None:
        if self._closed:
            return
        self.error = error
        self._finish("failed", f"{type(error).__name__}: {error}")
        if self._scope is not None:
            self._scope.cancel()

    def _finish(self, reason: str, error: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._recorder.journal_error is None:  # a failed journal takes nothing more
                self._audio_in.flush_record()
                self._recorder.record([SessionClosed(reason=reason)])
                self._writer.flush()
        except JournalError as exc:
            reason, error = "failed", error or f"{type(exc).__name__}: {exc}"
        finally:
            self._recorder.emit(SessionEnded(reason=reason, error=error))
            self._recorder.close_app_events()
            if self._ended is not None:
                self._ended.set()

    async def aclose(self) -> None:
        """End the session: flush audio, close the provider connection cleanly, close the
        journal stream. Idempotent."""
        if not self._closed:
            with anyio.CancelScope(shield=True):
                # Chunks still queued in audio-in's mailbox go into the log first.
                with anyio.move_on_after(self.provider.limits.close_timeout_s):
                    while self._audio_in.queued() and self._audio_in.running:  # noqa: ASYNC110 - bounded, once per session
                        await anyio.sleep(0.005)
                self._audio_in.flush()
                await self._connection.aclose()
            self._finish("closed")
        else:
            # Ended by a failure: the connection is gone, but the connector may hold SDK tasks.
            with anyio.CancelScope(shield=True):
                await self._connection.release()
        if self._scope is not None:
            self._scope.cancel()
        if self._recorder.journal_error is None:
            self._writer.close()

    @property
    def state(self) -> SessionState:
        """The session's current state (immutable snapshot)."""
        return self._recorder.state

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise SessionClosedError(f"session {self.session_id} has ended")

    # -- app commands -------------------------------------------------------------------------

    async def send_audio(self, pcm: bytes, *, sample_rate: int, channels: int = 1) -> None:
        """Send user audio: PCM16 little-endian at any supported rate and channel count.

        Args:
            pcm: Interleaved PCM16 little-endian audio: ``bytes``, ``bytearray``,
                ``memoryview`` or a buffer of int16 samples (an ``int16`` numpy array). Float
                samples are refused, not guessed at: convert them with
                :func:`antiphon.codecs.float32_to_pcm16`. A mutable buffer is copied, so it
                may be reused as soon as the call returns.
            sample_rate: One of :data:`antiphon.codecs.SUPPORTED_RATES`.
            channels: Interleaved channels, ``1..antiphon.codecs.MAX_CHANNELS``.

        Raises:
            InvalidAudio: (a :class:`CodecError`) the rate is not supported, the channel
                count is out of range, or ``pcm`` is not a whole number of frames. Nothing
                was sent.
            InvalidArgumentType: ``pcm`` is not PCM16 bytes, or the rate or channel count is
                not an int.
            SessionClosedError: the session has ended.
        """
        self._check_open()
        await self._audio_in.submit(check_audio(pcm, sample_rate, channels))

    async def send_text(self, text: str, *, generate_reply: bool = True) -> None:
        """Add a user text message to the conversation (and ask for a reply by default).

        Raises:
            InvalidArgumentType: ``text`` is not a ``str`` or ``generate_reply`` not a bool.
            InvalidArgument: ``text`` is blank or holds a lone surrogate.
            SessionClosedError: the session has ended.
        """
        self._check_open()
        text = check_text(text, "text", blank=False)
        generate_reply = check_flag(generate_reply, "generate_reply")
        # Named after the seq it is recorded at: unique in the session, also across resumes.
        item_id = f"text-{self._recorder.next_seq}"
        self._recorder.record([UserTextSent(item_id=item_id, text=text)])
        self._outbox.put(SendText(text=text, item_id=item_id, generate_reply=generate_reply))

    async def generate_reply(
        self,
        *,
        instructions: str = "",
        tool_choice: str | None = None,
        tools: Iterable[str] | None = None,
    ) -> None:
        """Ask the model to respond now, optionally with instructions for this reply only.

        Args:
            instructions: Instructions for this reply only.
            tool_choice: This reply's tool choice: ``"auto"``, ``"none"``, ``"required"`` or
                the name of a tool it must call (None: the session's).
            tools: Names of the session's tools this reply may call (None: all of them).

        Raises:
            InvalidArgumentType: an argument has the wrong type.
            InvalidArgument: ``instructions`` holds a lone surrogate; a tool name is not one
                of the session's tools; ``tool_choice`` or ``tools`` is given to a provider
                that cannot choose tools per reply (``Capabilities.reply_tools``).
            SessionClosedError: the session has ended.
        """
        self._check_open()
        instructions = check_text(instructions, "instructions")
        choice, specs = self._reply_tools(tool_choice, tools)
        self._outbox.put(GenerateReply(instructions=instructions, tool_choice=choice, tools=specs))

    def _reply_tools(
        self, tool_choice: str | None, tools: Iterable[str] | None
    ) -> tuple[str | None, tuple[ToolSpec, ...] | None]:
        if tool_choice is None and tools is None:
            return None, None
        if not self._connection.capabilities.reply_tools:
            raise InvalidArgument(
                f"{self.provider.name} cannot choose tools per reply; use update_options"
                "(tool_choice=...) or update_tools",
                argument="tool_choice" if tool_choice is not None else "tools",
            )
        known = {spec.name: spec for spec in self.state.tools}
        specs: tuple[ToolSpec, ...] | None = None
        if tools is not None:
            if isinstance(tools, str):
                raise InvalidArgumentType(
                    "tools must be an iterable of tool names, not a str", argument="tools"
                )
            names = [check_text(name, "tools", blank=False) for name in tools]
            unknown = [name for name in names if name not in known]
            if unknown:
                raise InvalidArgument(f"unknown tools {unknown}", argument="tools")
            specs = tuple(known[name] for name in dict.fromkeys(names))
        if tool_choice is not None:
            tool_choice = check_text(tool_choice, "tool_choice", blank=False)
            offered = known if specs is None else {spec.name for spec in specs}
            if tool_choice not in ("auto", "none", "required") and tool_choice not in offered:
                raise InvalidArgument(
                    f"tool_choice {tool_choice!r} is neither a mode nor a tool of this reply",
                    argument="tool_choice",
                )
        return tool_choice, specs

    async def commit_audio(self) -> None:
        """End the user's turn (manual turn-taking). It takes no arguments to check.

        Raises:
            SessionClosedError: the session has ended.
        """
        self._check_open()
        self._audio_in.flush()
        self._outbox.put(CommitAudio())

    async def clear_audio(self) -> None:
        """Discard the user audio not committed yet.

        Audio not sent yet is dropped from the audio log, and what was sent since the
        provider's last safe point will not be re-sent by a reconnect. Providers with an input
        buffer (``Capabilities.clear_audio``: OpenAI) drop what they hold too; the others
        have already heard the audio that went out (their turn detection runs on it).

        Raises:
            SessionClosedError: the session has ended.
        """
        self._check_open()
        limits = self._connection.limits
        # The frames of an AudioFrame being sent right now are kept: the sender's cursor moves
        # past them when the send completes, and must not end up beyond the log's end.
        in_flight = max(1, limits.max_chunk_ms // self._audio_in.frame_ms)
        sent_end = self._connection.sent_end()  # frames below it went out on a connection
        dropped = self._audio_in.clear(sent_end=sent_end, in_flight=in_flight)
        self._recorder.record([UserAudioCleared(frames_dropped=dropped)])
        self._outbox.put(ClearAudio())

    async def interrupt(self, *, played_ms: int | None = None) -> None:
        """Stop the current reply; ``played_ms`` is how much of it the user heard.

        Raises:
            InvalidArgumentType: ``played_ms`` is neither None nor an int.
            InvalidArgument: ``played_ms`` is negative.
            SessionClosedError: the session has ended.
        """
        self._check_open()
        self._outbox.put(Interrupt(played_ms=check_played_ms(played_ms)))

    async def update_instructions(self, instructions: str) -> None:
        """Replace the system instructions (empty clears them).

        Raises:
            InvalidArgumentType: ``instructions`` is not a ``str``.
            InvalidArgument: ``instructions`` holds a lone surrogate.
            SessionClosedError: the session has ended.
        """
        self._check_open()
        instructions = check_text(instructions, "instructions")
        self._recorder.record([InstructionsUpdated(instructions=instructions)])
        self._outbox.put(UpdateInstructions(instructions=instructions))

    async def edit_history(
        self, *, delete: Iterable[str] = (), insert: Iterable[HistoryInsert] = ()
    ) -> None:
        """Edit the conversation: delete items by id, then insert items.

        The edit is journalled and folded into ``state.items``, so every later connection
        (a reconnect, a rotation, a resume) is seeded with the edited history. Providers that
        edit a live conversation (``Capabilities.edit_history``: OpenAI) get it at once;
        for the others the session rotates to a fresh connection at the next turn boundary
        (the provider's own copy of the conversation, a resumable handle, is dropped).

        To change an item's content, delete it and insert it again under its id. A tool
        call's id names the call and its output: deleting it deletes both.

        Args:
            delete: Ids of items in ``state.items``.
            insert: Items to add, each after the item its ``after`` names (``""``: first).

        Raises:
            InvalidArgumentType: an argument has the wrong type.
            InvalidArgument: an id to delete is not in the history, or is a tool call whose
                output is still to be delivered; an inserted item's id is empty or already
                in the history; an inserted tool output answers no call in the history.
            SessionClosedError: the session has ended.
        """
        self._check_open()
        edit = self._check_edit(delete, insert)
        if not edit.delete and not edit.insert:
            return
        self._recorder.record([edit])
        if self._connection.capabilities.edit_history:
            self._outbox.put(EditHistory(delete=edit.delete, insert=edit.insert))
        else:
            self._connection.request_rotation("rotation:history_edit")

    def _check_edit(self, delete: Iterable[str], insert: Iterable[HistoryInsert]) -> HistoryEdited:
        if isinstance(delete, str):
            raise InvalidArgumentType(
                "delete must be an iterable of item ids, not a str", argument="delete"
            )
        ids = tuple(dict.fromkeys(check_text(i, "delete", blank=False) for i in delete))
        inserts = tuple(insert)
        for edit in inserts:
            if not isinstance(edit, HistoryInsert):
                raise InvalidArgumentType(
                    f"insert must hold HistoryInsert items, not {type(edit).__name__}",
                    argument="insert",
                )
        state = self.state
        held = {item.id for item in state.items}
        for item_id in ids:
            if item_id not in held:
                raise InvalidArgument(f"no item {item_id!r} in the history", argument="delete")
            if state.pending_tool(item_id) is not None:
                raise InvalidArgument(
                    f"tool call {item_id!r} still waits for its output to be delivered",
                    argument="delete",
                )
        gone = set(ids)
        # One item of a kind per id: a tool call and its output share the call's id.
        kept = {(type(item), item.id) for item in state.items if item.id not in gone}
        for edit in inserts:
            item = edit.item
            if not item.id or (type(item), item.id) in kept:
                raise InvalidArgument(
                    f"inserted item id {item.id!r} is empty or already in the history",
                    argument="insert",
                )
            kept.add((type(item), item.id))
            if isinstance(item, FunctionOutput) and (FunctionCall, item.id) not in kept:
                raise InvalidArgument(
                    f"inserted output {item.id!r} answers no call in the history",
                    argument="insert",
                )
        return HistoryEdited(delete=ids, insert=inserts)

    async def update_tools(self, tools: Iterable[Tool | Callable[..., Any]]) -> None:
        """Replace the tools the model may call.

        Raises:
            InvalidArgumentType: ``tools`` is not an iterable of tools or callables.
            ToolError: a tool is unusable (see :func:`tool`), its name is one a provider
                refuses, or two tools share a name.
            SessionClosedError: the session has ended.
        """
        self._check_open()
        built = check_tools(tools)
        self._tools = {t.name: t for t in built}
        self._executor.update_tools(self._tools)
        specs = tuple(t.spec for t in built)
        self._recorder.record([ToolsUpdated(tools=specs)])
        self._outbox.put(UpdateTools(tools=specs))

    def _add_tools(self, tools: Sequence[Tool]) -> None:
        """Add the tools of opened tool sources, before the first connection."""
        built = check_tools([*self._tools.values(), *tools])
        self._tools = {t.name: t for t in built}
        self._executor.update_tools(self._tools)
        self._recorder.record([ToolsUpdated(tools=tuple(t.spec for t in built))])

    async def update_options(self, **options: Any) -> None:
        """Change provider-neutral options (merged into the current ones).

        Raises:
            InvalidArgumentType: a value JSON cannot carry.
            InvalidArgument: the provider cannot encode the options (its translator's pure
                encoding is tried first).
            SessionClosedError: the session has ended.
        """
        self._check_open()
        options = check_options(options, self.provider, self.state)
        self._recorder.record([OptionsUpdated(options=options)])
        self._outbox.put(UpdateOptions(options=options))

    def rotate(self, *, cause: str = "requested") -> None:
        """Move to a fresh provider connection at the next turn boundary.

        Args:
            cause: A short label; the reconnect is journalled and reported as
                ``rotation:<cause>``.

        Raises:
            InvalidArgumentType: ``cause`` is not a ``str``.
            InvalidArgument: ``cause`` is empty or not printable.
            SessionClosedError: the session has ended.
        """
        self._check_open()
        cause = check_cause(cause)
        self._connection.request_rotation(f"rotation:{cause}")

    def submit_tool_result(
        self, call_id: str, output: Any, *, outcome: ToolOutcome = ToolOutcome.OK
    ) -> None:
        """Answer a call of an app-executed tool (a :class:`Tool` without a callable).

        The app sees the call as a ``ToolCallRequested`` event. Its answer is recorded as the
        call's one result (``ToolCallFinished``) and delivered to the provider exactly once:
        on the current connection, or on the next one after a reconnect or a resume.

        Args:
            call_id: The ``call_id`` of the ``ToolCallRequested`` event.
            output: The result, as a tool function would return it: a ``str`` is sent as it
                is, anything else as JSON.
            outcome: How the call went; the model is told (e.g. ``ToolOutcome.ERROR``).

        Raises:
            ToolError: no call ``call_id`` is waiting for the app's result: the model never
                made it, it already has its result, or its tool is run by the session; or
                the output cannot be sent (not JSON-encodable, or too large).
            InvalidArgumentType: ``call_id`` is not a ``str``, ``outcome`` not a
                :class:`~antiphon.protocol.ToolOutcome`.
            InvalidArgument: ``call_id`` is empty, or the output is text UTF-8 cannot encode.
            SessionClosedError: the session has ended.
        """
        self._check_open()
        command = SubmitToolResult(
            call_id=check_text(call_id, "call_id", blank=False),
            output=encode_output(
                check_text(output, "output") if isinstance(output, str) else output
            ),
            outcome=check_outcome(outcome),
        )
        state = self._recorder.state
        self._recorder.record([app_tool_result(state, command, self._tools)])

    def approve(self, call_id: str) -> None:
        """Approve a call of a tool made with ``requires_approval=True``: it runs (once).

        The app sees the request as a ``ToolApprovalRequested`` event. The decision is
        journalled (``ToolApprovalGranted``), so it holds across reconnects and a resume.

        Raises:
            ToolError: no call ``call_id`` is waiting for approval (never made, already
                decided or answered, or its tool needs no approval).
            InvalidArgumentType: ``call_id`` is not a ``str``.
            SessionClosedError: the session has ended.
        """
        self._check_open()
        call_id = self._awaiting_approval(call_id)
        self._recorder.record([ToolApprovalGranted(call_id=call_id)])
        self._executor.decide(call_id, granted=True)

    def deny(self, call_id: str, reason: str = "denied by the user") -> None:
        """Deny a call of a tool made with ``requires_approval=True``: it never runs, and the
        model is told why (an error output, the call's one output).

        Raises:
            ToolError: no call ``call_id`` is waiting for approval (never made, already
                decided or answered, or its tool needs no approval).
            InvalidArgumentType: ``call_id`` or ``reason`` is not a ``str``.
            InvalidArgument: ``reason`` holds a lone surrogate.
            SessionClosedError: the session has ended.
        """
        self._check_open()
        call_id = self._awaiting_approval(call_id)
        reason = check_text(reason, "reason")
        call = self._recorder.state.pending_tool(call_id)
        assert call is not None  # checked by _awaiting_approval
        self._recorder.record(
            [
                ToolApprovalDenied(call_id=call_id, reason=reason),
                ToolCallFinished(
                    call_id=call_id,
                    name=call.name,
                    output=error_output("denied", reason),
                    outcome=ToolOutcome.ERROR,
                ),
            ]
        )
        self._executor.decide(call_id, granted=False)

    def _awaiting_approval(self, call_id: object) -> str:
        call_id = check_text(call_id, "call_id", blank=False)
        call = self._recorder.state.pending_tool(call_id)
        if call is None or call.status is ToolCallStatus.FINISHED:
            raise ToolError(f"no tool call {call_id!r} is waiting for approval")
        if call.approval is not ToolApproval.PENDING:
            raise ToolError(
                f"tool call {call_id!r} is not waiting for approval"
                + (f" (already {call.approval.value})" if call.approval.value else "")
            )
        return call_id

    async def events(self) -> AsyncIterator[SessionEvent]:
        """The session's events, in order, ending after ``SessionEnded``."""
        async for event in self._recorder.app_events:
            yield event

    async def wait_closed(self) -> None:
        if self._closed:  # ended (_finish does not await between the flag and the event)
            await anyio.lowlevel.checkpoint()
            return
        if self._ended is None:
            self._ended = anyio.Event()
        await self._ended.wait()

    def subscribe(self, listener: Callable[[Sequence[Event], int], None]) -> None:
        """Call ``listener(events, epoch)`` with every batch of journalled events, right after
        it is journalled (synchronously: the listener must not block; tracing and metrics
        exporters are what this is for). Events recorded before the call are in
        ``journal.records(session_id)``; none is recorded between reading those and
        subscribing if nothing awaits in between."""
        self._recorder.subscribe(listener)

    def statistics(self) -> SessionStatistics:
        conn = self._connection.statistics()
        actors = {
            a.name: msgspec.structs.asdict(a.statistics())
            for a in (self._recorder, self._executor, self._audio_in)
        }
        restarts = self._supervisor.restarts()
        for name, info in actors.items():
            info["restarts"] = restarts.get(name, 0)
        log = self._audio_in.log
        return SessionStatistics(
            session_id=self.session_id,
            epoch=self._connection.epoch,
            actors=actors,
            connection={**conn.__dict__, "restarts": restarts.get("transport", 0)},
            audio={
                "frames_in": self._audio_in.frames_in,
                "frames_sent": conn.frames_sent,
                "frames_resent": conn.frames_resent,
                "frames_evicted": log.evicted,
                "frames_skipped": conn.frames_skipped,
                "frames_sent_at_once": conn.frames_sent_at_once,
                "safe_index": log.safe,
            },
            tools_completed=self._executor.completed,
            app_events_dropped=self._recorder.stats.app_events_dropped,
            supervisor_seed=self._supervisor.seed,
            restarts=restarts,
        )

    # -- wiring ----------------------------------------------------------------------------------

    def _on_events(self, events: Sequence[Event], epoch: int) -> None:
        for event in events:
            if isinstance(event, ToolCallRequested):
                self._dispatch_call(event)
            elif isinstance(event, ToolCallCancelRequested):
                self._executor.cancel(event.call_ids, event.reason or "cancelled by the provider")
        if self._late_results and self._recorder.state.generation is None:
            self._send_late_results()

    def _late_result(self, call: ToolCallRequested, output: str, outcome: ToolOutcome) -> None:
        """A long-running call is done: tell the model, at the end of the reply in progress
        (a reply is never cut for it), and ask it to respond."""
        if self._closed:
            return
        said = "result" if outcome is ToolOutcome.OK else f"outcome ({outcome.value})"
        self._late_results.append(
            f"The {said} of the earlier {call.name} call ({call.call_id}) is in: {output}"
        )
        if self._recorder.state.generation is None:
            self._send_late_results()

    def _send_late_results(self) -> None:
        texts, self._late_results = self._late_results, []
        for text in texts:
            # Named after the seq it is recorded at, as send_text does: unique, also across
            # resumes. Journalled as user text, so a reconnect re-primes it like any other.
            item_id = f"text-{self._recorder.next_seq}"
            self._recorder.record([UserTextSent(item_id=item_id, text=text)])
            self._outbox.put(SendText(text=text, item_id=item_id, generate_reply=True))

    def _dispatch_call(self, call: ToolCallRequested, *, rerun: bool = False) -> None:
        """Hand a journalled call to the executor. ``rerun``: a call recovered after a crash
        (it may have started before)."""
        pending = self._recorder.state.pending_tool(call.call_id)
        if pending is None or pending.status is ToolCallStatus.FINISHED:
            return  # a repeated request for a call that already has its output
        if pending.status is not ToolCallStatus.REQUESTED and not rerun:
            return
        tool = self._tools.get(call.name)
        if tool is not None and tool.app_executed:
            return  # the app runs it and answers with submit_tool_result
        if not self._executor.send_nowait(call):
            self._recorder.record(
                [
                    ToolCallFinished(
                        call_id=call.call_id,
                        name=call.name,
                        output=error_output("error", "too many tool calls at once"),
                    )
                ]
            )


def _new_session_id() -> str:
    return "s-" + secrets.token_hex(8)


@asynccontextmanager
async def _running(session: Session, sources: Sequence[ToolSource] = ()) -> AsyncIterator[Session]:
    async with AsyncExitStack() as opened:
        # Tool sources (MCP servers) open before the first connection, so it offers their
        # tools; they close after the session has ended.
        try:
            extra = [
                t
                for source in sources
                for t in await opened.enter_async_context(source.open_tools())
            ]
            if extra:
                session._add_tools(extra)
        except BaseException as exc:  # the session ends, journalled as failed, and says why
            session._fail(exc)
            await session.aclose()
            raise
        async with anyio.create_task_group() as tg:
            await tg.start(session._run)
            try:
                yield session
            finally:
                await session.aclose()
                tg.cancel_scope.cancel()


@asynccontextmanager
async def open_session(
    provider: Provider,
    *,
    instructions: str = "",
    tools: Iterable[Tool | Callable[..., Any]] = (),
    journal: Journal | None = None,
    session_id: str | None = None,
    options: dict[str, Any] | None = None,
    clock: Clock | None = None,
    reconnect: Intensity | None = None,
    backoff: Backoff | None = None,
    seed: int = 0,
    capture: CaptureMode | None = None,
) -> AsyncIterator[Session]:
    """Open a voice session with ``provider``; an async context manager.

    Args:
        provider: A configured provider, e.g. ``antiphon.providers.OpenAIRealtime(...)``.
        instructions: System instructions.
        tools: Plain sync/async callables (schema from hints and docstring) or :class:`Tool`;
            a ``Tool`` without a callable is run by the app (:meth:`Session.submit_tool_result`).
            Tool sources (``antiphon.mcp.Server(...)``) are opened before the session
            connects and closed after it ends; their tools join the others.
        journal: Where the session is journalled (default: a new temporary directory).
        session_id: Default: a random id.
        options: Provider-neutral options recorded with the session.
        clock: Time source (tests inject a manual clock).
        reconnect: Reconnect budget: at most N connection failures within T seconds.
        backoff: Delay between reconnect attempts.
        seed: Seed of the backoff jitter.
        capture: What the journal keeps of the provider's wire frames for this session:
            ``"off"``, ``"metadata"`` or ``"full"`` (default: the journal's ``capture``).

    Raises:
        antiphon.errors.InvalidArgumentType: an argument has the wrong type (e.g. a provider
            that is not one, a ``str`` as ``tools``).
        antiphon.errors.InvalidArgument: an argument's value is unusable: the provider's audio
            format, instructions with a lone surrogate, options the provider cannot encode,
            an empty session id, a negative reconnect budget, ...
        antiphon.errors.ToolError: a tool is unusable, its name is one a provider refuses,
            or two tools share a name.
        antiphon.errors.ProviderError: the first connection failed fatally.
    """
    # Every argument is checked before anything is created or journalled.
    provider = check_provider(provider)
    instructions = check_text(instructions, "instructions")
    sources, plain_tools = split_tool_sources(tools)
    built = check_tools(plain_tools)
    journal = None if journal is None else check_journal(journal)
    session_id = None if session_id is None else check_session_id(session_id)
    options = check_options(
        {} if options is None else options,
        provider,
        SessionState(instructions=instructions, tools=tuple(t.spec for t in built)),
    )
    clock = check_clock(clock)
    reconnect = check_reconnect(reconnect)
    backoff = check_backoff(backoff)
    seed = check_seed(seed)
    capture = check_capture(capture)
    journal = journal or FileJournal(tempfile.mkdtemp(prefix="antiphon-"))
    sid = session_id or _new_session_id()
    session = Session(
        provider=provider,
        session_id=sid,
        state=SessionState(),
        journal=journal,
        tools=built,
        clock=clock or SystemClock(),
        reconnect=reconnect or Intensity(max_restarts=5, within_s=60.0),
        backoff=backoff or Backoff(),
        seed=seed,
        capture=capture,
    )
    session._recorder.record(
        [
            SessionStarted(
                session_id=sid,
                provider=provider.name,
                model=provider.model,
                instructions=instructions,
                tools=tuple(t.spec for t in built),
                options=dict(options or {}),
            )
        ]
    )
    async with _running(session, sources) as running:
        yield running


@asynccontextmanager
async def resume_session(
    journal: Journal,
    session_id: str,
    provider: Provider,
    *,
    tools: Iterable[Tool | Callable[..., Any]] = (),
    clock: Clock | None = None,
    reconnect: Intensity | None = None,
    backoff: Backoff | None = None,
    seed: int = 0,
    capture: CaptureMode | None = None,
) -> AsyncIterator[Session]:
    """Resume a session from its journal after a process crash, and reconnect.

    The state is rebuilt by replaying the journal (from its newest snapshot). A generation
    that was open is closed as interrupted. Tool calls that never started run again; calls
    that had started run again only if their tool is idempotent, otherwise the model gets an
    ``unknown`` outcome. Calls of app-executed tools still waiting for their result are
    announced again as ``ToolCallRequested`` events, for the app to answer. Recorded but
    undelivered results are delivered on the new connection, each exactly once. User audio
    journalled after the last safe point (``UserAudioSettled``) — what the provider may not
    have taken when the process died — is sent again first; audio still unjournalled at the
    crash (under 200 ms) is lost. The app sees ``Reconnected(cause="resume", ...)``.

    Args:
        tools: The same tools as the original session (callables are not journalled).
        capture: Wire capture from now on (default: the journal's; see :func:`open_session`).

    Raises:
        antiphon.errors.InvalidArgumentType: an argument has the wrong type.
        antiphon.errors.InvalidArgument: an argument's value is unusable (see
            :func:`open_session`).
        antiphon.errors.ToolError: a tool is unusable, or two tools share a name.
        antiphon.errors.JournalError: the journal has no such session or is corrupt.
    """
    # Every argument is checked before the journal is read or written.
    journal = check_journal(journal)
    session_id = check_session_id(session_id)
    provider = check_provider(provider)
    sources, plain_tools = split_tool_sources(tools)
    built = check_tools(plain_tools)
    clock = check_clock(clock)
    reconnect = check_reconnect(reconnect)
    backoff = check_backoff(backoff)
    seed = check_seed(seed)
    capture = check_capture(capture)
    state = journal.replay(session_id)
    if not state.session_id:
        raise SessionClosedError(f"journal has no session {session_id!r}")
    session = Session(
        provider=provider,
        session_id=session_id,
        state=state,
        journal=journal,
        tools=built,
        clock=clock or SystemClock(),
        reconnect=reconnect or Intensity(max_restarts=5, within_s=60.0),
        backoff=backoff or Backoff(),
        seed=seed,
        capture=capture,
    )
    restored = state.generation is None
    session._recorder.record(
        [
            *cut_generation(state, "process restart"),
            ConnectionLost(epoch=state.epoch, cause="process_restart", recoverable=True),
        ],
        epoch=state.epoch,
    )
    rerun, unknown = recover_calls(session._recorder.state.pending_tools, session._tools)
    if unknown:
        session._recorder.record(unknown)
        restored = False
    for waiting in session._recorder.state.pending_tools:
        if waiting.approval is ToolApproval.PENDING and waiting.status is ToolCallStatus.REQUESTED:
            # This process's app has not seen the request: ask again (the call waits again).
            session._recorder.emit(
                ToolApprovalRequested(
                    call_id=waiting.call_id, name=waiting.name, arguments=waiting.arguments
                )
            )
        tool = session._tools.get(waiting.name)
        if tool is not None and tool.app_executed and waiting.status is not ToolCallStatus.FINISHED:
            # This process's app has not seen the call: announce it again.
            session._recorder.emit(
                ToolCallRequested(
                    call_id=waiting.call_id, name=waiting.name, arguments=waiting.arguments
                )
            )
    session._audio_in.resume(
        settled=state.audio_settled,
        frames=_unsettled_audio(journal, session_id, state, session._audio_in),
        next_index=state.user_frames,
    )
    session._connection.resume(restored=restored)
    async with _running(session, sources) as running:
        for call in rerun:
            running._dispatch_call(call, rerun=True)
        yield running


def _unsettled_audio(
    journal: Journal, session_id: str, state: SessionState, audio_in: AudioIn
) -> list[bytes]:
    """The journalled user audio frames from ``state.audio_settled`` on, in order: what the
    provider may not have taken when the process died. None when they were journalled at
    another rate or frame size than this session's (resumed with another provider preset),
    or a span cannot be read: then nothing is sent again."""
    frames: list[bytes] = []
    size = audio_in.frame_bytes
    next_frame = state.audio_settled
    for event in journal.events(session_id):
        if not isinstance(event, UserAudio) or event.first_frame + event.frames <= next_frame:
            continue
        if event.sample_rate != audio_in.out_rate or event.first_frame > next_frame:
            return []
        try:
            pcm = (
                journal.read_audio(session_id, event.span)
                if event.span is not None
                else event.audio
            )
        except JournalError:
            return []
        if len(pcm) != event.frames * size:
            return []
        skip = next_frame - event.first_frame
        frames.extend(pcm[i : i + size] for i in range(skip * size, len(pcm), size))
        next_frame = event.first_frame + event.frames
    return frames


__all__ = [
    "Session",
    "SessionStatistics",
    "open_session",
    "resume_session",
]
