"""The public Session: ``open_session`` / ``resume_session`` and the calls an app makes.

How this works: a session is a supervisor (rest-for-one) over, in start order, the
generation-tracker, the tool-executor, audio-in and the connection manager (which runs the
transport-send/recv pair of each epoch). A provider failure restarts only the connection
manager — never audio-in or the tool executor — so audio, tool calls and the conversation
survive. Every state change goes through the tracker, which journals it before anything acts
on it; ``resume_session`` folds the journal back into the state and carries on.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import msgspec
from anyio.abc import TaskStatus

from ..adapters import Provider
from ..codecs import check_pcm16
from ..errors import SessionClosedError
from ..journal import FileJournal, Journal
from ..protocol import (
    CommitAudio,
    ConnectionLost,
    Event,
    GenerateReply,
    InstructionsUpdated,
    Interrupt,
    OptionsUpdated,
    SendAudio,
    SendText,
    SessionClosed,
    SessionStarted,
    SessionState,
    ToolCallCancelRequested,
    ToolCallFinished,
    ToolCallRequested,
    ToolCallStatus,
    ToolsUpdated,
    UpdateInstructions,
    UpdateOptions,
    UpdateTools,
    UserTextSent,
)
from ._clock import Clock, SystemClock
from ._outbox import Outbox
from ._session_events import SessionEnded, SessionEvent
from ._supervisor import Backoff, ChildSpec, Intensity, StatusProxy, Strategy, Supervisor
from ._tools import Tool, as_tool, error_output
from .audio_in import AudioIn, check_format
from .connection import ConnectionManager, cut_generation
from .generation_tracker import GenerationTracker
from .tool_executor import ToolExecutor, recover_calls


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
    """A live voice session. Create it with :func:`open_session` or :func:`resume_session`."""

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
    ) -> None:
        self.provider = provider
        self.session_id = session_id
        self.journal = journal
        self.clock = clock
        self._tools = {t.name: t for t in tools}
        self._writer = journal.writer(session_id)
        limits = provider.limits
        self.tracker = GenerationTracker(state=state, writer=self._writer, clock=clock)
        self.audio_in = AudioIn(
            out_rate=limits.input_sample_rate,
            frame_ms=limits.frame_ms,
            resend_window_s=limits.resend_window_s,
            record=lambda event: self.tracker.record([event]),
        )
        self.executor = ToolExecutor(tools=self._tools, record=self.tracker.record)
        self.outbox = Outbox(self.audio_in.log.wake)
        self.connection = ConnectionManager(
            provider=provider,
            tracker=self.tracker,
            audio_in=self.audio_in,
            outbox=self.outbox,
            clock=clock,
            fail_session=self._fail,
        )
        self.tracker.subscribe(self._on_events)
        self._supervisor = Supervisor(
            f"session {session_id}",
            [
                ChildSpec(name="generation-tracker", run=self.tracker.run),
                ChildSpec(name="tool-executor", run=self.executor.run),
                ChildSpec(name="audio-in", run=self.audio_in.run),
                ChildSpec(name="transport", run=self.connection.run),
            ],
            strategy=Strategy.REST_FOR_ONE,
            intensity=reconnect,
            backoff=backoff,
            clock=clock,
            seed=seed,
        )
        self._scope: anyio.CancelScope | None = None
        self._closed = False
        self._ended = anyio.Event()
        self.error: BaseException | None = None
        self._text_ids = 0

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
            self.audio_in.flush_record()
            self.tracker.record([SessionClosed(reason=reason)])
            self._writer.flush()
        finally:
            self.tracker.emit(SessionEnded(reason=reason, error=error))
            self.tracker.close_app_events()
            self._ended.set()

    async def aclose(self) -> None:
        """End the session: flush audio, close the provider connection cleanly, close the
        journal stream. Idempotent."""
        if not self._closed:
            with anyio.CancelScope(shield=True):
                # Chunks still queued in audio-in's mailbox go into the log first.
                with anyio.move_on_after(self.provider.limits.close_timeout_s):
                    while self.audio_in.queued() and self.audio_in.running:  # noqa: ASYNC110 - bounded, once per session
                        await anyio.sleep(0.005)
                self.audio_in.flush()
                await self.connection.aclose()
            self._finish("closed")
        if self._scope is not None:
            self._scope.cancel()
        self._writer.close()

    @property
    def state(self) -> SessionState:
        """The session's current state (immutable snapshot)."""
        return self.tracker.state

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise SessionClosedError(f"session {self.session_id} has ended")

    # -- app commands -------------------------------------------------------------------------

    async def send_audio(self, pcm: bytes, *, sample_rate: int, channels: int = 1) -> None:
        """Send user audio: PCM16 little-endian at any supported rate and channel count.

        Raises:
            CodecError: the audio is not PCM16 in the stated format (nothing is sent).
            SessionClosedError: the session has ended.
        """
        self._check_open()
        check_format(sample_rate, channels)
        check_pcm16(pcm, channels)
        await self.audio_in.submit(SendAudio(pcm=pcm, sample_rate=sample_rate, channels=channels))

    async def send_text(self, text: str, *, generate_reply: bool = True) -> None:
        """Add a user text message to the conversation (and ask for a reply by default)."""
        self._check_open()
        self._text_ids += 1
        item_id = f"text-{self.tracker.writer.next_seq}-{self._text_ids}"
        self.tracker.record([UserTextSent(item_id=item_id, text=text)])
        self.outbox.put(SendText(text=text, item_id=item_id, generate_reply=generate_reply))

    async def generate_reply(self, *, instructions: str = "") -> None:
        """Ask the model to respond now."""
        self._check_open()
        self.outbox.put(GenerateReply(instructions=instructions))

    async def commit_audio(self) -> None:
        """End the user's turn (manual turn-taking)."""
        self._check_open()
        self.audio_in.flush()
        self.outbox.put(CommitAudio())

    async def interrupt(self, *, played_ms: int | None = None) -> None:
        """Stop the current reply; ``played_ms`` is how much of it the user heard."""
        self._check_open()
        self.outbox.put(Interrupt(played_ms=played_ms))

    async def update_instructions(self, instructions: str) -> None:
        self._check_open()
        self.tracker.record([InstructionsUpdated(instructions=instructions)])
        self.outbox.put(UpdateInstructions(instructions=instructions))

    async def update_tools(self, tools: Iterable[Tool | Callable[..., Any]]) -> None:
        self._check_open()
        built = [as_tool(t) for t in tools]
        self._tools = {t.name: t for t in built}
        self.executor.update_tools(self._tools)
        specs = tuple(t.spec for t in built)
        self.tracker.record([ToolsUpdated(tools=specs)])
        self.outbox.put(UpdateTools(tools=specs))

    async def update_options(self, **options: Any) -> None:
        self._check_open()
        self.tracker.record([OptionsUpdated(options=options)])
        self.outbox.put(UpdateOptions(options=options))

    def rotate(self, *, cause: str = "requested") -> None:
        """Move to a fresh provider connection at the next turn boundary."""
        self._check_open()
        self.connection.request_rotation(f"rotation:{cause}", hard_after_s=10.0)

    async def events(self) -> AsyncIterator[SessionEvent]:
        """The session's events, in order, ending after ``SessionEnded``."""
        async for event in self.tracker.app_events:
            yield event

    async def wait_closed(self) -> None:
        await self._ended.wait()

    def statistics(self) -> SessionStatistics:
        conn = self.connection.statistics()
        actors = {
            a.name: msgspec.structs.asdict(a.statistics())
            for a in (self.tracker, self.executor, self.audio_in)
        }
        restarts = self._supervisor.restarts()
        for name, info in actors.items():
            info["restarts"] = restarts.get(name, 0)
        log = self.audio_in.log
        return SessionStatistics(
            session_id=self.session_id,
            epoch=self.connection.epoch,
            actors=actors,
            connection={**conn.__dict__, "restarts": restarts.get("transport", 0)},
            audio={
                "frames_in": self.audio_in.frames_in,
                "frames_sent": conn.frames_sent,
                "frames_resent": conn.frames_resent,
                "frames_evicted": log.evicted,
                "frames_skipped": conn.frames_skipped,
                "safe_index": log.safe,
            },
            tools_completed=self.executor.completed,
            app_events_dropped=self.tracker.app_events_dropped,
            supervisor_seed=self._supervisor.seed,
            restarts=restarts,
        )

    # -- wiring ----------------------------------------------------------------------------------

    def _on_events(self, events: Sequence[Event], epoch: int) -> None:
        for event in events:
            if isinstance(event, ToolCallRequested):
                self._dispatch_call(event)
            elif isinstance(event, ToolCallCancelRequested):
                self.executor.cancel(event.call_ids, event.reason or "cancelled by the provider")

    def _dispatch_call(self, call: ToolCallRequested, *, rerun: bool = False) -> None:
        """Hand a journalled call to the executor. ``rerun``: a call recovered after a crash
        (it may have started before)."""
        pending = self.tracker.state.pending_tool(call.call_id)
        if pending is None or pending.status is ToolCallStatus.FINISHED:
            return  # a repeated request for a call that already has its output
        if pending.status is not ToolCallStatus.REQUESTED and not rerun:
            return
        if not self.executor.send_nowait(call):
            self.tracker.record(
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
async def _running(session: Session) -> AsyncIterator[Session]:
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
) -> AsyncIterator[Session]:
    """Open a voice session with ``provider``; an async context manager.

    Args:
        provider: A configured provider, e.g. ``antiphon.providers.OpenAIRealtime(...)``.
        instructions: System instructions.
        tools: Plain sync/async callables (schema from hints and docstring) or :class:`Tool`.
        journal: Where the session is journalled (default: a new temporary directory).
        session_id: Default: a random id.
        options: Provider-neutral options recorded with the session.
        clock: Time source (tests inject a manual clock).
        reconnect: Reconnect budget: at most N connection failures within T seconds.
        backoff: Delay between reconnect attempts.
        seed: Seed of the backoff jitter.

    Raises:
        antiphon.errors.ProviderError: the first connection failed fatally.
    """
    built = [as_tool(t) for t in tools]
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
    )
    session.tracker.record(
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
    async with _running(session) as running:
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
) -> AsyncIterator[Session]:
    """Resume a session from its journal after a process crash, and reconnect.

    The state is rebuilt by replaying the journal (from its newest snapshot). A generation
    that was open is closed as interrupted. Tool calls that never started run again; calls
    that had started run again only if their tool is idempotent, otherwise the model gets an
    ``unknown`` outcome. Recorded but undelivered results are delivered on the new
    connection, each exactly once. The app sees ``Reconnected(cause="resume", ...)``.

    Args:
        tools: The same tools as the original session (callables are not journalled).

    Raises:
        antiphon.errors.JournalError: the journal has no such session or is corrupt.
    """
    state = journal.replay(session_id)
    if not state.session_id:
        raise SessionClosedError(f"journal has no session {session_id!r}")
    built = [as_tool(t) for t in tools]
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
    )
    restored = state.generation is None
    session.tracker.record(
        [
            *cut_generation(state, "process restart"),
            ConnectionLost(epoch=state.epoch, cause="process_restart", recoverable=True),
        ],
        epoch=state.epoch,
    )
    rerun, unknown = recover_calls(session.tracker.state.pending_tools, session._tools)
    if unknown:
        session.tracker.record(unknown)
        restored = False
    pending = session.connection._pending
    pending.cause, pending.restored, pending.first = "resume", restored, False
    pending.since = session.clock.now()
    async with _running(session) as running:
        for call in rerun:
            running._dispatch_call(call, rerun=True)
        yield running


__all__ = [
    "Session",
    "SessionStatistics",
    "open_session",
    "resume_session",
]
