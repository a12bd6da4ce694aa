"""The connection manager: one provider connection per epoch, replaced when it fails or ages.

How this works: the manager is the session supervisor's ``transport`` child. Each start opens
a connection for a new epoch — a *link*: the connector dials, the translator's handshake
primes it from :class:`SessionState` (instructions, tools, history within the provider's
limits, or a resumption handle), and transport-recv runs until the translator reports the
provider ready. Then the link is *activated*: the epoch is journalled, undelivered tool
results are queued (each exactly once), and transport-send starts at the audio log's resend
point, so user audio since the last safe point goes out again and nothing is lost.

When a link fails, the manager records ``ConnectionLost`` (which cuts an open generation in
the state), classifies the error with the translator, and raises: the supervisor backs off
and starts the manager again, which opens the next epoch. A fatal error ends the session.

Limits known in advance are handled before they bite. A rotation is wanted when the
connection reaches ``limits.rotate_after_s``, nears a provider-announced expiry, gets a
``goAway``, or the app asks; it happens at the next turn boundary (no generation open, no
tool call outstanding, the user not mid-utterance), or at once at the hard deadline.
Providers that allow two connections rotate make-before-break (open and prime the next,
switch audio, then close the old one cleanly); the others close first, then reopen.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup, TaskStatus
from msgspec.structs import replace

from ..adapters import Connection, Disposition, ErrorClass, Provider, Translator
from ..errors import ConnectionLostError, ProviderError, ProviderTimeout
from ..protocol import (
    CloseSession,
    Command,
    CommitAudio,
    ConnectionLost,
    ConnectionOpened,
    ConnectionRotated,
    DeliverToolResult,
    Event,
    GenerateReply,
    GenerationAudioDelta,
    GenerationEnded,
    GenerationEndReason,
    GenerationStarted,
    GenerationTextDelta,
    GoAwayReceived,
    ProviderErrorEvent,
    ProviderSessionInfo,
    ResumptionHandleUpdated,
    SendText,
    SessionState,
    ToolCallFinished,
    ToolCallRequested,
    ToolCallStatus,
    ToolResultDelivered,
    UserAudioCommitted,
    UserSpeechStarted,
    UserSpeechStopped,
)
from ._clock import Clock
from ._outbox import Outbox
from ._session_events import Reconnected
from .audio_in import AudioIn
from .generation_tracker import GenerationTracker
from .transport_recv import TransportRecv
from .transport_send import TransportSend

# A goAway's time left is a budget, not a promise: rotate with this share of it to spare.
GO_AWAY_MARGIN = 0.2
# An app-requested rotation waits this long for a turn boundary before forcing it.
REQUESTED_ROTATION_DEADLINE_S = 10.0
# After a failed attempt to open the next connection of a make-before-break rotation, keep
# the old one and try again this much later.
ROTATION_RETRY_S = 5.0


@dataclass(kw_only=True)
class ConnectionStats:
    epoch: int = 0
    connects: int = 0
    reconnects: int = 0
    rotations: int = 0
    failures: int = 0
    gaps_ms: list[float] = field(default_factory=list)
    frames_sent: int = 0
    frames_resent: int = 0
    frames_skipped: int = 0
    malformed_frames: int = 0
    last_cause: str = ""


class Link:
    """One epoch: a connection, its translator, and its transport-send/recv pair."""

    def __init__(
        self,
        *,
        epoch: int,
        translator: Translator,
        connection: Connection,
        receiver: TransportRecv,
        close_timeout_s: float,
        opened_at: float,
        opened_wall_s: float,
        state: Callable[[], SessionState],
    ) -> None:
        self.epoch = epoch
        self.translator = translator
        self.connection = connection
        self.receiver = receiver
        self.sender: TransportSend | None = None
        self.opened_at = opened_at
        self.opened_wall_s = opened_wall_s
        self.resumed = False  # the provider restored its own state (a resumption handle)
        self._state = state
        self.failure: Exception | None = None
        self.done = anyio.Event()
        self.closing = False
        self.last_error_code = ""
        self._close_timeout = close_timeout_s
        self._tg: TaskGroup | None = None
        self._sender_scope: anyio.CancelScope | None = None
        self._sender_done = anyio.Event()
        self._closed = False

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._guard, self.receiver.run)
                task_status.started()
        finally:
            self.done.set()
            with anyio.CancelScope(shield=True):
                if self.failure is not None:
                    # A stream ended by a provider error may still take input: end the
                    # session properly so the provider frees it (Nova asks for this).
                    await self._send_close_sequence()
                await self._close_connection()

    async def _send_close_sequence(self) -> None:
        with anyio.move_on_after(self._close_timeout), suppress(Exception):
            for frame in self.translator.encode(CloseSession(), self._state()):
                await self.connection.send(frame)

    async def _guard(self, run: Callable[[], object]) -> None:
        try:
            await run()  # type: ignore[misc]
        except Exception as exc:
            if self.failure is None and not self.closing:
                self.failure = exc
            assert self._tg is not None
            self._tg.cancel_scope.cancel()

    def start_sending(self, sender: TransportSend) -> None:
        assert self._tg is not None
        self.sender = sender
        self._tg.start_soon(self._run_sender, sender)

    async def _run_sender(self, sender: TransportSend) -> None:
        try:
            with anyio.CancelScope() as scope:
                self._sender_scope = scope
                await self._guard(sender.run)
        finally:
            self._sender_done.set()

    def start_watchdog(self, check: Callable[[], float | None], clock: Clock) -> None:
        """Run ``check`` periodically; it returns seconds until the next check, or raises."""
        assert self._tg is not None

        async def watchdog() -> None:
            while True:
                delay = check()
                await clock.sleep(delay if delay is not None else 1.0)

        self._tg.start_soon(self._guard, watchdog)

    async def stop_sending(self) -> None:
        """Stop transport-send and wait for it, so its cursor is final."""
        if self.sender is None:
            return
        if self._sender_scope is not None:
            self._sender_scope.cancel()
        await self._sender_done.wait()

    async def close(self, state: SessionState, *, graceful: bool) -> None:
        """Close this link; ``graceful`` first sends the provider's close sequence."""
        self.closing = True
        await self.stop_sending()
        if graceful and not self.done.is_set():
            await self._send_close_sequence()
        await self._close_connection()
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
        await self.done.wait()

    async def _close_connection(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.closing = True
        # A close that fails has still closed: there is nothing to recover.
        with anyio.move_on_after(self._close_timeout, shield=True), suppress(Exception):
            await self.connection.aclose()


@dataclass(kw_only=True)
class _Pending:
    """What the next activation reports: why we reconnect, since when, and honesty."""

    cause: str = "start"
    since: float | None = None
    restored: bool = True
    fresh_start: bool = False
    first: bool = True
    reply_due: bool = False  # a reply was requested and had not started: ask again


class ConnectionManager:
    """The transport child of a session. See the module docstring."""

    def __init__(
        self,
        *,
        provider: Provider,
        tracker: GenerationTracker,
        audio_in: AudioIn,
        outbox: Outbox,
        clock: Clock,
        fail_session: Callable[[BaseException], None],
    ) -> None:
        self.provider = provider
        self.limits = provider.limits
        self.tracker = tracker
        self.audio_in = audio_in
        self.outbox = outbox
        self.clock = clock
        self._fail_session = fail_session
        self._connector = provider.new_connector()
        self.epoch = tracker.state.epoch
        self.active: Link | None = None
        self.stats = ConnectionStats(epoch=self.epoch)
        self.high_water = 0  # frames below this index were sent on some connection
        self._pending = _Pending(first=self.epoch == 0)
        self._tg: TaskGroup | None = None
        self._poke = anyio.Event()
        self._rotate_reason = ""
        self._rotate_soft_at = math.inf  # rotate at the first turn boundary after this
        self._rotate_hard_at = math.inf  # rotate at this time whatever the turn state
        self._retry_rotation_at = 0.0
        self._user_speaking = False
        self.awaiting_since: float | None = None
        self._bad_handle = ""
        self._handle_current = True  # no activity since the newest resumable handle
        self._closing = False
        tracker.subscribe(self._on_events)

    # -- supervised run ----------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        error: Exception | None = None
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                link = await self._open()
            except Exception as exc:
                error = exc
                self.stats.failures += 1
                self._note_connect_failure(exc)
            else:
                self._activate(link, rotated_from=None)
                task_status.started()
                error = await self._serve(link)
            tg.cancel_scope.cancel()
        if error is not None:
            raise error

    async def _serve(self, link: Link) -> Exception | None:
        while True:
            outcome = await self._wait(link)
            if outcome is None:
                return self._on_failure(link)
            link = await self._rotate(link, outcome)

    async def _wait(self, link: Link) -> str | None:
        """Wait until the link fails (None) or a rotation is due (its reason)."""
        while True:
            if link.done.is_set():
                if self._closing:
                    await anyio.sleep_forever()
                return None
            reason = self._rotation_due(link)
            if reason:
                return reason
            await wait_any(
                link.done, self._poke, clock=self.clock, within_s=self._next_rotation_check(link)
            )
            if self._poke.is_set():
                self._poke = anyio.Event()

    # -- opening and activating ----------------------------------------------------------------

    async def _open(self) -> Link:
        assert self._tg is not None
        self.epoch += 1
        epoch = self.epoch
        translator = self.provider.new_translator()
        state = self.tracker.state
        if self._pending.fresh_start or not self._handle_usable(state):
            state = replace(state, resumption_handle="")
        # The handshake sees the epoch it primes, so translators can name things per epoch.
        state = replace(state, epoch=epoch)
        request = translator.connect_request(state)
        handshake = translator.handshake(state)
        timeout = self.limits.connect_timeout_s
        try:
            with anyio.fail_after(timeout + self.limits.close_timeout_s):
                connection = await self._connector.connect(request, handshake)
        except TimeoutError as exc:
            raise ProviderTimeout(
                f"connecting to {self.provider.name} took longer than {timeout} s",
                provider=self.provider.name,
                code="connect_timeout",
                recoverable=True,
            ) from exc
        receiver = TransportRecv(
            epoch=epoch,
            connection=connection,
            translator=translator,
            deliver=self._deliver,
            now=self.clock.now,
        )
        link = Link(
            epoch=epoch,
            translator=translator,
            connection=connection,
            receiver=receiver,
            close_timeout_s=self.limits.close_timeout_s,
            opened_at=self.clock.now(),
            opened_wall_s=self.clock.wall_ns() / 1e9,
            state=lambda: self.tracker.state,
        )
        # Resumed server-side only if the handshake really carried a handle.
        link.resumed = bool(state.resumption_handle) and translator.capabilities.server_resume
        await self._tg.start(link.run)
        await wait_any(receiver.ready, link.done, clock=self.clock, within_s=timeout)
        if not receiver.ready.is_set():
            failure = link.failure
            await link.close(self.tracker.state, graceful=False)
            if failure is not None:
                raise failure
            raise ProviderTimeout(
                f"{self.provider.name} did not acknowledge the session setup within {timeout} s",
                provider=self.provider.name,
                code="handshake_timeout",
                recoverable=True,
            )
        self.stats.connects += 1
        return link

    def _handle_usable(self, state: SessionState) -> bool:
        """A resumption handle is used unless the provider rejected it or it is too old
        (``handle_max_age_s`` of the provider preset, when it has one)."""
        handle = state.resumption_handle
        if not handle or handle == self._bad_handle:
            return False
        max_age: float | None = getattr(self.provider, "handle_max_age_s", None)
        if max_age is None or not state.resumption_handle_at_s:
            return True
        return self.clock.wall_ns() / 1e9 - state.resumption_handle_at_s <= max_age

    def _deliver(self, events: Sequence[Event], epoch: int) -> None:
        self.tracker.record(events, epoch=epoch)

    def _activate(self, link: Link, *, rotated_from: int | None) -> None:
        pending = self._pending
        now = self.clock.now()
        self.active = link
        self.tracker.epoch = link.epoch
        state = self.tracker.state
        events: list[Event] = []
        if rotated_from is not None:
            events.append(
                ConnectionRotated(
                    epoch=link.epoch, previous_epoch=rotated_from, cause=pending.cause
                )
            )
        events.append(
            ConnectionOpened(
                epoch=link.epoch,
                provider_session_id=state.provider_session_id,
                expires_at_s=state.expires_at_s,
                resumed=link.resumed,
            )
        )
        self.tracker.record(events, epoch=link.epoch)
        responding = self._queue_tool_results()
        if pending.reply_due and not responding:
            self.outbox.put(GenerateReply())
        log = self.audio_in.log
        sender = TransportSend(
            epoch=link.epoch,
            connection=link.connection,
            translator=link.translator,
            log=log,
            outbox=self.outbox,
            start_index=log.resend_start(),
            high_water=self.high_water,
            state=lambda: self.tracker.state,
            on_sent=self._on_sent,
        )
        link.start_sending(sender)
        link.start_watchdog(lambda: self._check_stall(link), self.clock)
        self._rotate_reason = ""
        self._rotate_soft_at = (
            link.opened_at + self.limits.rotate_after_s
            if self.limits.rotate_after_s is not None
            else math.inf
        )
        self._rotate_hard_at = (
            link.opened_at + self.limits.rotate_deadline_s
            if self.limits.rotate_deadline_s is not None
            else math.inf
        )
        self._schedule_expiry(link, state.expires_at_s)
        self.awaiting_since = None
        self.stats.epoch = link.epoch
        if getattr(link.translator, "history_truncated", False):
            pending.restored = False  # the provider's limits left part of the history out
        if not pending.first:
            gap_ms = (now - pending.since) * 1000.0 if pending.since is not None else 0.0
            if rotated_from is None:
                self.stats.reconnects += 1
            self.stats.gaps_ms.append(gap_ms)
            self.tracker.emit(
                Reconnected(
                    epoch=link.epoch,
                    cause=pending.cause,
                    state_restored=pending.restored,
                    gap_ms=gap_ms,
                )
            )
        self._pending = _Pending(first=False)

    def _queue_tool_results(self) -> bool:
        """Queue every recorded, undelivered tool result once, for the active connection.

        Returns:
            True when one of them asks the model to respond.
        """
        self.outbox.drop_tool_results()
        results = []
        for call in self.tracker.state.undelivered_results():
            if call.withdrawn:
                self._settle_withdrawn(call.call_id)
            else:
                results.append(call)
        outstanding = self.tracker.state.tools_outstanding()
        for i, call in enumerate(results):
            last = i == len(results) - 1
            self.outbox.put(
                DeliverToolResult(
                    call_id=call.call_id,
                    name=call.name,
                    output=call.output,
                    outcome=call.outcome,
                    respond=last and not outstanding,
                )
            )
        return bool(results) and not outstanding

    def _settle_withdrawn(self, call_id: str) -> None:
        """The provider cancelled this call: it expects no output, so none is sent; the call
        is settled as if delivered."""
        self.tracker.record([ToolResultDelivered(call_id=call_id, epoch=self.epoch)])

    # -- failures ------------------------------------------------------------------------------

    def _classify(self, translator: Translator, exc: BaseException) -> ErrorClass:
        try:
            return translator.classify(exc)
        except Exception as inner:  # a translator bug must not hide the original failure
            return ErrorClass(disposition=Disposition.RECOVERABLE, reason=f"unclassified: {inner}")

    def _on_failure(self, link: Link) -> Exception:
        exc = link.failure or ConnectionLostError(
            "connection ended", provider=self.provider.name, code="eof", recoverable=True
        )
        self.stats.failures += 1
        self._absorb(link)
        verdict = self._classify(link.translator, exc)
        cause = link.last_error_code or _cause_of(exc)
        restored = self.tracker.state.generation is None
        self.tracker.record(
            [
                *cut_generation(self.tracker.state, "connection lost"),
                ConnectionLost(
                    epoch=link.epoch,
                    cause=cause,
                    recoverable=verdict.disposition is not Disposition.FATAL,
                    detail=f"{verdict.reason}: {exc}"[:500] if verdict.reason else str(exc)[:500],
                ),
            ],
            epoch=link.epoch,
        )
        self.stats.last_cause = cause
        if verdict.fresh_start:
            self._bad_handle = self.tracker.state.resumption_handle
        self._pending = _Pending(
            cause=cause,
            since=self.clock.now(),
            restored=restored,
            fresh_start=verdict.fresh_start,
            first=False,
            reply_due=self.awaiting_since is not None,
        )
        if verdict.disposition is Disposition.FATAL:
            self._fail_session(exc)
        return exc

    def _note_connect_failure(self, exc: Exception) -> None:
        """A connect (or its handshake) failed: the supervisor retries with backoff, unless
        the failure is fatal. A rejected resumption handle is not used again."""
        if self._pending.since is None:
            self._pending.since = self.clock.now()
        verdict = self._classify(self.provider.new_translator(), exc)
        if verdict.fresh_start:
            self._bad_handle = self.tracker.state.resumption_handle
            self._pending.fresh_start = True
        if verdict.disposition is Disposition.FATAL:
            self._fail_session(exc)

    def _absorb(self, link: Link) -> None:
        """Fold a finished link's counters into the session totals (once)."""
        receiver = link.receiver
        self.stats.malformed_frames += receiver.malformed
        receiver.malformed = 0
        sender = link.sender
        if sender is None:
            return
        self.high_water = max(self.high_water, sender.cursor)
        self.stats.frames_sent += sender.frames_sent
        self.stats.frames_resent += sender.frames_resent
        self.stats.frames_skipped += sender.frames_skipped
        sender.frames_sent = sender.frames_resent = sender.frames_skipped = 0

    # -- rotation ----------------------------------------------------------------------------

    def request_rotation(self, reason: str, *, hard_after_s: float) -> None:
        now = self.clock.now()
        if not self._rotate_reason:
            self._rotate_reason = reason
        self._rotate_soft_at = min(self._rotate_soft_at, now)
        self._rotate_hard_at = min(self._rotate_hard_at, now + hard_after_s)
        self._poke.set()

    def _schedule_expiry(self, link: Link, expires_at_s: float | None) -> None:
        """Plan the rotation ahead of a provider-announced expiry of ``link``.

        The margin is ``limits.rotate_before_expiry_s``, but never more than half the
        connection's lifetime: a provider whose sessions are shorter than the margin must not
        make every new connection rotate at once (a rotation storm).
        """
        if expires_at_s is None:
            return
        lifetime = max(0.0, expires_at_s - link.opened_wall_s)
        margin = min(self.limits.rotate_before_expiry_s, lifetime / 2)
        soft = link.opened_at + lifetime - margin
        if soft < self._rotate_soft_at:
            self._rotate_soft_at = soft
            self._rotate_reason = self._rotate_reason or "rotation:expiry"
        # Whatever the turn state, be gone before the provider cuts us off.
        hard = link.opened_at + lifetime - min(60.0, margin / 2)
        self._rotate_hard_at = min(self._rotate_hard_at, hard)

    def _at_turn_boundary(self) -> bool:
        """Nothing would be cut by a rotation now: no reply open or due, no tool call or
        result outstanding, the user not mid-utterance — and, where the provider resumes
        server-side, a resumable handle newer than the last activity (PROVIDERS 5.5)."""
        state = self.tracker.state
        if state.generation is not None or self._user_speaking or self.awaiting_since is not None:
            return False
        if state.pending_tools or len(self.outbox):
            return False
        link = self.active
        if link is not None and link.translator.capabilities.server_resume:
            return self._handle_current
        return True

    def _rotation_due(self, link: Link) -> str:
        now = self.clock.now()
        if now < self._retry_rotation_at:
            return ""
        if now >= self._rotate_hard_at:
            return self._rotate_reason or "rotation:deadline"
        if now >= self._rotate_soft_at and self._at_turn_boundary():
            return self._rotate_reason or "rotation:age"
        return ""

    def _next_rotation_check(self, link: Link) -> float | None:
        now = self.clock.now()
        times = [
            t
            for t in (self._rotate_soft_at, self._rotate_hard_at, self._retry_rotation_at)
            if t > now and t != math.inf
        ]
        if not times:
            return None
        return max(0.0, min(times) - now)

    async def _rotate(self, old: Link, reason: str) -> Link:
        started = self.clock.now()
        self._pending = _Pending(cause=reason, since=started, first=False)
        if old.translator.capabilities.make_before_break:
            try:
                new = await self._open()
            except Exception as exc:
                # Keep the working connection and try again a little later.
                self.stats.failures += 1
                self._retry_rotation_at = self.clock.now() + ROTATION_RETRY_S
                self.stats.last_cause = f"rotation failed: {_cause_of(exc)}"
                return old
            if not self._at_turn_boundary() and self.clock.now() < self._rotate_hard_at:
                # A turn began on the old connection while the next one was opening: switching
                # now would cut it. Drop the new connection and wait for the next boundary.
                await new.close(self.tracker.state, graceful=True)
                return old
            await old.stop_sending()
            self._absorb(old)
            self._cut_for_rotation(reason)
            self._activate(new, rotated_from=old.epoch)
            self.stats.rotations += 1
            assert self._tg is not None
            self._tg.start_soon(functools.partial(old.close, self.tracker.state, graceful=True))
            return new
        await old.stop_sending()
        self._absorb(old)
        self._cut_for_rotation(reason)
        await old.close(self.tracker.state, graceful=True)
        try:
            new = await self._open()
        except Exception as exc:
            # The old connection is gone: this is now a plain failure, retried by the supervisor.
            raise ConnectionLostError(
                f"rotation could not reconnect: {exc}",
                provider=self.provider.name,
                code="rotation_failed",
                recoverable=True,
            ) from exc
        self._activate(new, rotated_from=old.epoch)
        self.stats.rotations += 1
        return new

    def _cut_for_rotation(self, reason: str) -> None:
        """A rotation forced by its deadline may cut a reply: end it as interrupted, and say
        the switch did not restore everything."""
        cut = cut_generation(self.tracker.state, f"rotated ({reason})")
        if cut:
            self._pending.restored = False
            self.tracker.record(cut)

    # -- reacting to recorded events ---------------------------------------------------------

    def _on_events(self, events: Sequence[Event], epoch: int) -> None:
        link = self.active
        now = self.clock.now()
        for event in events:
            if isinstance(event, _ACTIVITY):
                self._handle_current = False
            match event:
                case ResumptionHandleUpdated():
                    if event.resumable and event.handle:
                        self._handle_current = True
                        self._poke.set()
                case UserSpeechStarted():
                    self._user_speaking = True
                case UserSpeechStopped():
                    self._user_speaking = False
                    self.awaiting_since = now
                case UserAudioCommitted():
                    self._user_speaking = False
                    self.awaiting_since = now  # the provider answers a committed turn
                    if link is not None and epoch == link.epoch and link.sender is not None:
                        sender = link.sender
                        index = self.audio_in.safe_index_for(
                            sender.start_index, event.audio_end_ms, sender.cursor
                        )
                        self.audio_in.log.mark_safe(index)
                case GenerationStarted() | GenerationTextDelta() | GenerationAudioDelta():
                    self.awaiting_since = None
                case ToolCallRequested():
                    self.awaiting_since = None
                case GenerationEnded():
                    self.awaiting_since = None
                    self._poke.set()
                case ToolCallFinished():
                    self._queue_result(event)
                    self._poke.set()
                case GoAwayReceived():
                    budget = event.time_left_ms / 1000.0
                    self.request_rotation("go_away", hard_after_s=budget * (1 - GO_AWAY_MARGIN))
                case ProviderSessionInfo():
                    if event.expires_at_s is not None and link is not None and epoch == link.epoch:
                        self._schedule_expiry(link, event.expires_at_s)
                        self._poke.set()
                case ProviderErrorEvent():
                    if link is not None and epoch == link.epoch and event.recoverable:
                        link.last_error_code = event.code
                case _:
                    pass

    def _queue_result(self, event: ToolCallFinished) -> None:
        state = self.tracker.state
        call = state.pending_tool(event.call_id)
        if call is None or call.status is not ToolCallStatus.FINISHED:
            return
        if call.withdrawn:
            self._settle_withdrawn(call.call_id)
            return
        # Several calls of one turn: only the last result asks the model to go on.
        self.outbox.put(
            DeliverToolResult(
                call_id=event.call_id,
                name=event.name,
                output=event.output,
                outcome=event.outcome,
                respond=not state.tools_outstanding(),
            )
        )

    def _on_sent(self, command: Command, epoch: int, frames: int) -> None:
        """After a command went out (``frames`` frames; 0 when the provider needs none or
        cannot do it, e.g. Nova has no reply request)."""
        asks_reply = False
        if isinstance(command, DeliverToolResult):
            self.tracker.record([ToolResultDelivered(call_id=command.call_id, epoch=epoch)])
            asks_reply = command.respond
        elif isinstance(command, GenerateReply | CommitAudio):
            asks_reply = True
        elif isinstance(command, SendText):
            asks_reply = command.generate_reply
        if asks_reply and frames:
            self.awaiting_since = self.clock.now()

    def _check_stall(self, link: Link) -> float:
        timeout = self.limits.stall_timeout_s
        since = self.awaiting_since
        if since is None or link is not self.active:
            return timeout / 4
        quiet_since = max(since, link.receiver.last_frame_at)
        if self.clock.now() - quiet_since >= timeout:
            raise ProviderTimeout(
                f"{self.provider.name} sent nothing for {timeout} s while a reply was due",
                provider=self.provider.name,
                code="stalled",
                recoverable=True,
            )
        return timeout / 4

    # -- closing -------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the active connection cleanly (the provider's close sequence, then close)."""
        self._closing = True
        link = self.active
        if link is not None:
            # Send what the app already gave us (audio in the log, queued commands) first.
            # A bounded poll, once per session: an "idle" event could be stale the moment a
            # flush appends frames, so the condition itself is checked.
            with anyio.move_on_after(self.limits.close_timeout_s):
                while (  # noqa: ASYNC110
                    link.sender is not None
                    and not link.done.is_set()
                    and (link.sender.cursor < self.audio_in.log.end or len(self.outbox))
                ):
                    await anyio.sleep(0.005)
            await link.stop_sending()
            self._absorb(link)
            await link.close(self.tracker.state, graceful=True)

    def statistics(self) -> ConnectionStats:
        stats = replace_stats(self.stats)
        link = self.active
        if link is not None:
            stats.malformed_frames += link.receiver.malformed
            if link.sender is not None:
                stats.frames_sent += link.sender.frames_sent
                stats.frames_resent += link.sender.frames_resent
                stats.frames_skipped += link.sender.frames_skipped
        return stats


async def wait_any(*events: anyio.Event, clock: Clock, within_s: float | None) -> None:
    """Return when any of ``events`` is set, or after ``within_s`` seconds on ``clock``."""
    if any(e.is_set() for e in events):
        return
    async with anyio.create_task_group() as tg:

        async def wake_on(event: anyio.Event) -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        for event in events:
            tg.start_soon(wake_on, event)
        if within_s is not None:
            await clock.sleep(within_s)
            tg.cancel_scope.cancel()


_ACTIVITY = (
    UserSpeechStarted,
    UserAudioCommitted,
    GenerationStarted,
    ToolCallRequested,
    ToolResultDelivered,
)
"""Events after which a provider's older resumption handle no longer covers the session."""


def cut_generation(state: SessionState, why: str) -> list[Event]:
    """The event that ends an open generation as interrupted (none if nothing is open)."""
    gen = state.generation
    if gen is None:
        return []
    return [
        GenerationEnded(
            generation_id=gen.generation_id, reason=GenerationEndReason.INTERRUPTED, detail=why
        )
    ]


def replace_stats(stats: ConnectionStats) -> ConnectionStats:
    return ConnectionStats(**{**stats.__dict__, "gaps_ms": list(stats.gaps_ms)})


def _cause_of(exc: BaseException) -> str:
    """A short cause code: ``closed:<close code>``, ``timeout:<code>``, or the provider's
    error code (e.g. ``ModelTimeoutException``)."""
    if isinstance(exc, ProviderError) and exc.code:
        if isinstance(exc, ConnectionLostError):
            return f"closed:{exc.code}"
        if isinstance(exc, ProviderTimeout):
            return f"timeout:{exc.code}"
        return exc.code
    return type(exc).__name__
