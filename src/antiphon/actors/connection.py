"""The connection manager: one provider connection per epoch, replaced when it fails or ages.

How this works: the manager is the session supervisor's ``transport`` child. Each start opens
a connection for a new epoch — a :class:`~._link.Link`: the connector dials, the translator's
handshake primes it from :class:`SessionState` (instructions, tools, history within the
provider's limits, or a resumption handle), and transport-recv runs until the translator
reports the provider ready. Then the link is *activated*: the epoch is journalled, undelivered
tool results are queued (each exactly once, :mod:`._delivery`), and transport-send starts at
the audio log's resend point, so user audio since the last safe point goes out again and
nothing is lost. What the app is told about the switch is collected in a
:class:`~._reconnect.ReconnectReport`.

When a link fails, the manager records ``ConnectionLost`` (which cuts an open generation in
the state), classifies the error with the translator, and raises: the supervisor backs off
(at least as long as the provider asked, :meth:`ConnectionManager.retry_after`) and starts the
manager again, which opens the next epoch. A fatal error ends the session.

Rotations — limits known in advance, handled before they bite — are planned by the pure
:class:`~._rotation.RotationPlanner`; the manager carries them out. Providers that allow two
connections rotate make-before-break (open and prime the next, switch audio, then close the
old one cleanly); the others close first, then reopen.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from msgspec.structs import replace

from ..adapters import (
    Capabilities,
    Connection,
    Connector,
    ConnectRequest,
    Disposition,
    ErrorClass,
    Frame,
    Handshake,
    Limits,
    Provider,
    Translator,
)
from ..errors import ConnectionLostError, ProviderError, ProviderTimeout, cause_code
from ..failover import (
    BreakerState,
    CircuitBreakers,
    Failover,
    FailoverPolicy,
    members,
    provider_key,
)
from ..protocol import (
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
    ProviderSwitched,
    ResumptionHandleUpdated,
    SendText,
    SessionState,
    ToolCallFinished,
    ToolCallRequested,
    UserAudioCommitted,
    UserSpeechStopped,
    fold,
)
from ._clock import Clock, SystemClock
from ._delivery import ToolResultDelivery
from ._link import Link
from ._outbox import Outbox
from ._reconnect import ReconnectReport
from ._rotation import REQUESTED_ROTATION_DEADLINE_S, RotationDue, RotationPlanner, Urgency
from .audio_in import AudioIn, ResampledLog
from .recorder import Recorder
from .transport_recv import MALFORMED_FRAME, TransportRecv
from .transport_send import TransportSend

# Events that can make a rotation due (or its check time change): wake the manager for them.
_ROTATION_RELEVANT = (
    ResumptionHandleUpdated,
    GenerationEnded,
    ToolCallFinished,
    GoAwayReceived,
    ProviderSessionInfo,
)

# The cause of a return to the first provider of a failover (a rotation across providers).
RETURN_TO_FIRST = "failover:return"
# The condition of a connection attempt given up because its provider's breaker opened.
CIRCUIT_OPEN = "circuit_open"
# While another session probes the first provider, look again this much later.
RETURN_RECHECK_S = 1.0


@dataclass(kw_only=True)
class ConnectionStats:
    """What ``Session.statistics().connection`` reports."""

    epoch: int = 0
    connects: int = 0
    reconnects: int = 0
    rotations: int = 0
    failures: int = 0
    gaps_ms: list[float] = field(default_factory=list)
    frames_sent: int = 0
    frames_resent: int = 0
    frames_skipped: int = 0
    frames_sent_at_once: int = 0  # of frames_sent: from the appending task (send_at_once)
    malformed_frames: int = 0
    last_cause: str = ""
    provider: str = ""
    provider_switches: int = 0


class ConnectionManager:
    """The transport child of a session. See the module docstring.

    Args:
        provider: The configured provider (a :class:`~antiphon.providers.Failover`: the
            providers it may move between).
        recorder: The session's recorder (state, journal, app events).
        audio_in: The audio-in actor, whose log holds the user audio to send.
        outbox: Commands waiting for the provider.
        clock: Time source.
        fail_session: Ends the session with a fatal error.
    """

    def __init__(
        self,
        *,
        provider: Provider,
        recorder: Recorder,
        audio_in: AudioIn,
        outbox: Outbox,
        clock: Clock,
        fail_session: Callable[[BaseException], None],
    ) -> None:
        self._members = members(provider)
        self._policy: FailoverPolicy | None = None
        self._breakers: CircuitBreakers | None = None
        self._voices: dict[str, str] = {}
        if isinstance(provider, Failover):
            self._policy, self._breakers = provider.policy, provider.breakers
            self._voices = dict(provider.voices)
        self._recorder = recorder
        self._audio_in = audio_in
        self._outbox = outbox
        self._clock = clock
        self._fail_session = fail_session
        # The provider the session is on: the one its state names (a resumed failover
        # continues where it was), else the first.
        state = recorder.state
        self._member = next(
            (
                i
                for i, p in enumerate(self._members)
                if (p.name, p.model) == (state.provider, state.model)
            ),
            0,
        )
        self._connectors: dict[int, Connector] = {}
        self._dialled = self._member  # the provider of the last connection attempt
        self._target: int | None = None  # the provider to move to at the next attempt
        # Providers this session left after failures since it last settled on one (a healthy
        # connection): not tried again until then, so a burst of failures ends.
        self._left: set[int] = set()
        self._attempts: dict[int, int] = {}  # failures since each one's last good connection
        self._return_at: float | None = None  # when to try the first provider again
        self._switch_cause = ""  # why the session moves to ``_target``
        self._probe: int | None = None  # the attempt is its provider's half-open probe
        self._delivery = ToolResultDelivery(recorder=recorder, outbox=outbox)
        self._limits = self._provider.limits
        self._capabilities = self._provider.new_translator().capabilities
        self._planner = self._new_planner()
        self.epoch = recorder.state.epoch
        self.active: Link | None = None
        self._stats = ConnectionStats(epoch=self.epoch)
        self._high_water = 0  # frames below this index were sent on some connection
        self._report = ReconnectReport(first=self.epoch == 0)
        self._tg: TaskGroup | None = None
        self._poke = anyio.Event()
        self._awaiting_since: float | None = None  # a reply is due since then
        self._bad_handle = ""
        self._retry_after_s: float | None = None
        self._failed_after_healthy = False
        self._skipped_options: dict[int, set[str]] = {}
        self._closing = False
        self._stats.provider = self._provider.name
        recorder.subscribe(self._on_events)

    @property
    def _provider(self) -> Provider:
        """The provider the session is on."""
        return self._members[self._member]

    @property
    def limits(self) -> Limits:
        """The limits of the provider the session is on (a failover's current one)."""
        return self._limits

    @property
    def capabilities(self) -> Capabilities:
        """What the provider the session is on can do (a failover's current one)."""
        return self._capabilities

    def _new_planner(self) -> RotationPlanner:
        return RotationPlanner(self._limits, server_resume=self._capabilities.server_resume)

    def _connector(self, member: int) -> Connector:
        connector = self._connectors.get(member)
        if connector is None:
            connector = self._connectors[member] = self._members[member].new_connector()
        return connector

    # -- supervised run ----------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        error: Exception | None = None
        self._retry_after_s = None
        self._failed_after_healthy = False
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                link = await self._open()
            except Exception as exc:
                error = exc
                self._stats.failures += 1
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
            due = await self._wait(link)
            if due is None:
                return self._on_failure(link)
            link = await self._rotate(link, due)

    async def _wait(self, link: Link) -> RotationDue | None:
        """Wait until the link fails (None) or a rotation is due."""
        while True:
            if link.done.is_set():
                if self._closing:
                    await anyio.sleep_forever()
                return None
            now = self._clock.now()
            due = self._planner.due(now, busy=self._busy()) or self._return_due(now)
            if due is not None:
                return due
            deadline = self._planner.next_deadline(now)
            if self._return_at is not None:
                deadline = self._return_at if deadline is None else min(deadline, self._return_at)
            within = None if deadline is None else max(0.0, deadline - now)
            # A link that ends pokes the manager (``_wake``): one event says it all.
            await wait_any(self._poke, clock=self._clock, within_s=within)
            if self._poke.is_set():
                self._poke = anyio.Event()

    def _wake(self) -> None:
        """Make the manager look again: a link ended, or a rotation may be due."""
        self._poke.set()

    def _return_due(self, now: float) -> RotationDue | None:
        """Time to go back to the first provider: the policy's delay passed, the turn is
        over, and the first provider's breaker lets a connection through."""
        if self._return_at is None or now < self._return_at:
            return None
        if not self._planner.at_turn_boundary(busy=self._busy()):
            return None  # a recorded event ending the turn wakes the manager again
        if self._breakers is not None and not self._breakers.get(self._members[0]).allows(now):
            reopens = self._breakers.get(self._members[0]).reopens_at()
            self._return_at = max(now + RETURN_RECHECK_S, reopens or now)
            return None
        return RotationDue(reason=RETURN_TO_FIRST, urgency=Urgency.SOFT)

    def _busy(self) -> bool:
        """Something a rotation now would cut or lose track of: a reply open or due, tool calls
        or results outstanding, commands queued for the provider."""
        state = self._recorder.state
        return (
            state.generation is not None
            or self._awaiting_since is not None
            or bool(state.pending_tools)
            or len(self._outbox) > 0
        )

    # -- opening and activating ----------------------------------------------------------------

    async def _open(self, member: int | None = None) -> Link:
        """Open, set up and prime the next connection, to ``member`` (default: the provider
        the session is on, or the one a failover moves it to)."""
        assert self._tg is not None
        if member is None:
            member = self._choose_member()
        provider = self._members[member]
        limits = provider.limits
        self._dialled = member
        self.epoch += 1
        epoch = self.epoch
        state = self._recorder.state
        if member != self._member:
            # Primed as the other provider will see it: nothing of this one's server state.
            state = fold([self._switch_event(member, cause="")], state)
        elif self._report.fresh_start or not self._handle_usable(state):
            state = replace(state, resumption_handle="")
        # The handshake sees the epoch it primes, so translators can name things per epoch.
        state = replace(state, epoch=epoch)
        translator, handshake, state = self._prime(state, member)
        request = translator.connect_request(state)
        timeout = limits.connect_timeout_s
        # A failover gives the attempt up when another session opens this provider's breaker.
        abandon: anyio.Event | None = None
        unsubscribe: Callable[[], None] | None = None
        if self._breakers is not None:
            key, gone = provider_key(provider), anyio.Event()
            unsubscribe = self._breakers.subscribe(
                lambda opened: gone.set() if opened == key else None
            )
            abandon = gone
        try:
            connection = await self._connect(member, request, handshake.frames, abandon)
            if member != self._member:
                # Journalled before the new connection says anything, so what it says (its
                # session id, its handles) lands on a state already cleared of the old one's.
                self._switch_to(member, cause=self._switch_cause or self._report.cause)
            capture = self._recorder.capture
            if capture is not None:
                for frame in handshake.frames:  # the connector sent them while connecting
                    capture.sent(epoch, frame)
            receiver = TransportRecv(
                epoch=epoch,
                connection=connection,
                translator=translator,
                deliver=self._recorder.record,
                now=self._clock.now,
                capture=capture,
            )
            link = Link(
                epoch=epoch,
                translator=translator,
                connection=connection,
                receiver=receiver,
                close_timeout_s=limits.close_timeout_s,
                opened_at=self._clock.now(),
                opened_wall_s=self._clock.wall_ns() / 1e9,
                state=lambda: self._recorder.state,
                on_done=self._wake,  # so the manager waits on one event, not on each link's
            )
            link.history_truncated = handshake.history_truncated
            link.resumed = handshake.resumed  # the handshake really asked the provider to resume
            await self._tg.start(link.run)
            ends = (
                (receiver.ready, link.done)
                if abandon is None
                else (receiver.ready, link.done, abandon)
            )
            await wait_any(*ends, clock=self._clock, within_s=timeout)
            if not receiver.ready.is_set():
                failure = link.failure
                await link.close(graceful=False)
                if failure is not None:
                    raise failure
                if abandon is not None and abandon.is_set():
                    raise self._abandoned(provider)
                raise ProviderTimeout(
                    f"{provider.name} did not acknowledge the session setup within {timeout} s",
                    provider=provider.name,
                    condition="handshake_timeout",
                    recoverable=True,
                )
        except BaseException as exc:
            if not isinstance(exc, Exception) and self._probe == member:
                # Cancelled (the session is closing) in the middle of its breaker's probe:
                # no verdict, so another attempt may probe.
                assert self._breakers is not None
                self._breakers.get(provider).released()
                self._probe = None
            raise
        finally:
            if unsubscribe is not None:
                unsubscribe()
        self._stats.connects += 1
        return link

    async def _connect(
        self,
        member: int,
        request: ConnectRequest,
        frames: Sequence[Frame],
        abandon: anyio.Event | None,
    ) -> Connection:
        """Dial ``member`` within its connect deadline; give up when ``abandon`` is set."""
        assert self._tg is not None
        provider = self._members[member]
        limits = provider.limits
        dialling = anyio.CancelScope()
        watching = anyio.CancelScope()

        async def give_up(abandon: anyio.Event) -> None:
            with watching:
                await abandon.wait()
                dialling.cancel()

        if abandon is not None:
            # In the manager's task group, not one of its own here: errors of the dial then
            # reach the caller as they are, not wrapped in an exception group.
            self._tg.start_soon(give_up, abandon)
        connection: Connection | None = None
        try:
            with dialling, anyio.fail_after(limits.connect_timeout_s + limits.close_timeout_s):
                connection = await self._connector(member).connect(request, frames)
        except TimeoutError as exc:
            raise ProviderTimeout(
                f"connecting to {provider.name} took longer than {limits.connect_timeout_s} s",
                provider=provider.name,
                condition="connect_timeout",
                recoverable=True,
            ) from exc
        finally:
            watching.cancel()
        if connection is None:
            raise self._abandoned(provider)
        return connection

    @staticmethod
    def _abandoned(provider: Provider) -> ProviderError:
        return ProviderError(
            f"gave up connecting to {provider.name}: its circuit breaker opened",
            provider=provider.name,
            condition=CIRCUIT_OPEN,
            recoverable=True,
        )

    def _choose_member(self) -> int:
        """The provider of the next connection attempt: the one a failover decided to move
        to, else the current one — unless its breaker is open (other sessions found it down)
        and another provider's is not."""
        member = self._target if self._target is not None else self._dialled
        self._target = None
        self._probe = None
        if self._breakers is None:
            return member
        now = self._clock.now()
        for candidate in [member, *self._candidates(after=member)]:
            breaker = self._breakers.get(self._members[candidate])
            half_open = breaker.state(now) is BreakerState.HALF_OPEN
            if breaker.acquire(now):
                if half_open:
                    self._probe = candidate  # its failure re-opens the breaker at once
                if candidate != member:
                    self._switch_cause = CIRCUIT_OPEN
                return candidate
        return member  # every breaker is open: the call is at stake, try anyway

    def _candidates(self, *, after: int) -> list[int]:
        """Providers to move to from ``after``, in order of preference after it (wrapping
        round), leaving out the ones this session already left after failures."""
        n = len(self._members)
        order = [(after + k) % n for k in range(1, n)]
        return [m for m in order if m not in self._left]

    def _switch_event(self, member: int, *, cause: str) -> ProviderSwitched:
        provider = self._members[member]
        return ProviderSwitched(
            provider=provider.name,
            model=provider.model,
            previous_provider=self._provider.name,
            cause=cause,
        )

    def _prime(
        self, state: SessionState, member: int
    ) -> tuple[Translator, Handshake, SessionState]:
        """A translator of provider ``member`` for the next connection, and its handshake for
        ``state``.

        An option the provider cannot take (recorded by an older version, or edited into a
        journal) must not make every connection fail: when the handshake raises, options are
        left out one at a time until it succeeds; what was left out is reported once and
        skipped from then on. Without any option it failing is the translator's own error.
        """
        provider = self._members[member]
        skipped = self._skipped_options.setdefault(member, set())
        options = {
            k: v for k, v in self._options_for(member, state.options).items() if k not in skipped
        }
        state = replace(state, options=options)
        translator = provider.new_translator()
        try:
            return translator, translator.handshake(state), state
        except Exception as exc:
            error = exc
        for left_out in [[key] for key in options] + [list(options)]:
            if not left_out:
                continue
            trial = replace(state, options={k: v for k, v in options.items() if k not in left_out})
            translator = provider.new_translator()
            try:
                handshake = translator.handshake(trial)
            except Exception:
                continue
            skipped.update(left_out)
            self._recorder.record(
                [
                    ProviderErrorEvent(
                        code="option_skipped",
                        message=(
                            f"{provider.name} cannot take option(s) "
                            f"{', '.join(sorted(left_out))}: {error}"
                        )[:500],
                        recoverable=True,
                    )
                ]
            )
            return translator, handshake, trial
        raise error

    def _options_for(self, member: int, options: dict[str, Any]) -> dict[str, Any]:
        """The session's options as provider ``member`` gets them: a failover's voice map
        names its voice; a session-level voice is the first provider's only (voice names are
        per provider), the others keep their preset's."""
        name = self._members[member].name
        if name in self._voices:
            return {**options, "voice": self._voices[name]}
        if member != 0 and "voice" in options:
            return {k: v for k, v in options.items() if k != "voice"}
        return options

    def _handle_usable(self, state: SessionState) -> bool:
        """A resumption handle is used unless the provider rejected it or it is older than
        the preset's ``handle_max_age_s``."""
        handle = state.resumption_handle
        if not handle or handle == self._bad_handle:
            return False
        max_age = self._provider.handle_max_age_s
        if max_age is None or not state.resumption_handle_at_s:
            return True
        return self._clock.wall_ns() / 1e9 - state.resumption_handle_at_s <= max_age

    def _activate(self, link: Link, *, rotated_from: int | None) -> None:
        report = self._report
        now = self._clock.now()
        self.active = link
        link.activated = True
        self._recorder.epoch = link.epoch
        self._connected_to(self._member)
        policy = self._policy
        if report.previous_provider and policy is not None:
            # Another provider: its own rotation plan; and go back to the first provider
            # later, if the policy says so.
            self._planner = self._new_planner()
            self._return_at = (
                now + policy.return_after_s
                if policy.return_after_s is not None and self._member != 0
                else None
            )
        state = self._recorder.state
        events: list[Event] = []
        if rotated_from is not None:
            events.append(
                ConnectionRotated(epoch=link.epoch, previous_epoch=rotated_from, cause=report.cause)
            )
        events.append(
            ConnectionOpened(
                epoch=link.epoch,
                provider_session_id=state.provider_session_id,
                expires_at_s=state.expires_at_s,
                # The handshake asked to resume; a provider that answers in its first frames
                # (xAI, ``ProviderResumed``) may have started afresh instead.
                resumed=link.resumed and state.provider_resumed is not False,
            )
        )
        self._recorder.record(events, epoch=link.epoch)
        responding = self._delivery.queue_undelivered(epoch=link.epoch)
        if report.reply_due and not responding:
            self._outbox.put(GenerateReply())
        log = self._audio_in.log
        rate = self._limits.input_sample_rate
        sender = TransportSend(
            epoch=link.epoch,
            connection=link.connection,
            translator=link.translator,
            log=(
                log
                if rate == self._audio_in.out_rate
                else ResampledLog(log, in_rate=self._audio_in.out_rate, out_rate=rate)
            ),
            outbox=self._outbox,
            start_index=log.resend_start(),
            frame_ms=self._audio_in.frame_ms,
            high_water=self._high_water,
            state=lambda: self._recorder.state,
            on_sent=self._on_sent,
            on_unencodable=self._on_unencodable,
            capture=self._recorder.capture,
        )
        link.start_sending(sender)
        link.start_watchdog(lambda: self._check_stall(link), self._clock)
        if not self._planner.connection_opened(
            link.opened_at, wall_s=link.opened_wall_s, expires_at_s=state.expires_at_s
        ):
            self._report_ignored_expiry(link, state.expires_at_s)
        self._awaiting_since = None
        self._stats.epoch = link.epoch
        if link.history_truncated:
            report.restored = False  # the provider's limits left part of the history out
        reconnected = report.reconnected(epoch=link.epoch, now=now, provider=self._provider.name)
        if reconnected is not None:
            if rotated_from is None:
                self._stats.reconnects += 1
            self._stats.gaps_ms.append(reconnected.gap_ms)
            self._recorder.emit(reconnected)
        self._report = ReconnectReport(first=False)

    def _switch_to(self, member: int, *, cause: str) -> None:
        """The session moves to provider ``member``: journal the switch (the state drops the
        old provider's server state) and take the new one's limits. (Its rotation plan is
        made when its connection is activated: until then the old one may still be carrying
        the call, and its turn facts decide when to switch.)"""
        self._report.previous_provider = self._provider.name
        self._recorder.record([self._switch_event(member, cause=cause)])
        self._switch_cause = ""
        self._member = self._dialled = member
        self._limits = self._provider.limits
        self._capabilities = self._provider.new_translator().capabilities
        self._stats.provider = self._provider.name
        self._stats.provider_switches += 1

    def _connected_to(self, member: int) -> None:
        """A connection to ``member`` works: its breaker closes, its failures are forgiven."""
        self._left.discard(member)
        if self._breakers is not None:
            self._breakers.get(self._members[member]).succeeded()

    # -- failures ------------------------------------------------------------------------------

    def _classify(self, translator: Translator, exc: BaseException) -> ErrorClass:
        try:
            return translator.classify(exc)
        except Exception as inner:  # a translator bug must not hide the original failure
            return ErrorClass(disposition=Disposition.RECOVERABLE, reason=f"unclassified: {inner}")

    def _on_failure(self, link: Link) -> Exception:
        exc = link.failure or ConnectionLostError(
            "connection ended", provider=self._provider.name, condition="eof", recoverable=True
        )
        self._stats.failures += 1
        self._absorb(link)
        self._dialled = self._member  # the next attempt retries the provider the link was to
        self._failed_after_healthy = link.activated and (
            link.carried_turn or self._clock.now() - link.opened_at >= self._limits.healthy_after_s
        )
        verdict = self._classify(link.translator, exc)
        cause = link.last_error_code or cause_code(exc)
        state = self._recorder.state
        self._record_loss(
            link.epoch, cause, verdict, exc, cut=cut_generation(state, "connection lost")
        )
        self._stats.last_cause = cause
        self._report = ReconnectReport(
            cause=cause,
            since=self._clock.now(),
            restored=state.generation is None,
            first=False,
            reply_due=self._awaiting_since is not None,
        )
        self._apply_verdict(verdict, exc, member=self._member, cause=cause)
        return exc

    def _note_connect_failure(self, exc: Exception) -> None:
        """A connect (or its handshake) failed: journalled with its kind; the supervisor
        retries with backoff, unless the failure is fatal (or a failover moves on)."""
        self._report.lost(self._clock.now())
        member = self._dialled
        verdict = self._classify(self._members[member].new_translator(), exc)
        cause = cause_code(exc)
        # Journalled under the epoch that never opened, so `journal show` and the viewer say
        # why an attempt failed (and why a call that ends on it ended).
        self._record_loss(self.epoch, cause, verdict, exc)
        self._apply_verdict(verdict, exc, member=member, cause=cause)

    def _record_loss(
        self,
        epoch: int,
        cause: str,
        verdict: ErrorClass,
        exc: Exception,
        *,
        cut: Sequence[Event] = (),
    ) -> None:
        """Journal the loss of ``epoch`` (after ``cut``, the reply it ended), classified."""
        detail = f"{verdict.reason}: {exc}" if verdict.reason else str(exc)
        lost = ConnectionLost(
            epoch=epoch,
            cause=cause,
            recoverable=verdict.disposition is not Disposition.FATAL,
            detail=detail[:500],
            kind=verdict.kind.value,
        )
        self._recorder.record([*cut, lost], epoch=epoch)

    def _apply_verdict(
        self, verdict: ErrorClass, exc: Exception, *, member: int, cause: str
    ) -> None:
        """A rejected resumption handle is not used again; a provider's "come back later" is
        honoured by the backoff; a failover moves on when the failure says the provider is no
        use for now; a fatal failure ends the session."""
        if verdict.fresh_start:
            self._bad_handle = self._recorder.state.resumption_handle
            self._report.fresh_start = True
        self._retry_after_s = verdict.retry_after_s
        if self._move_on(verdict, exc, member=member, cause=cause):
            return
        if verdict.disposition is Disposition.FATAL:
            self._fail_session(exc)

    def _move_on(self, verdict: ErrorClass, exc: Exception, *, member: int, cause: str) -> bool:
        """Whether a failover leaves provider ``member`` after this failure; if so, the next
        attempt goes to the next provider, at once.

        It leaves on a failure of a kind in the policy's ``move_on``; after ``attempts``
        failed attempts in a row since its last healthy connection; when its attempt was the
        breaker's half-open probe; and when another session's failures opened the provider's
        breaker while this one was dialling it.
        """
        policy, breakers = self._policy, self._breakers
        if policy is None or breakers is None:
            return False
        # A connection that had worked and then failed starts the count over; each failed
        # attempt after it counts.
        attempts = self._attempts[member] = (
            0 if self._failed_after_healthy else self._attempts.get(member, 0) + 1
        )
        now = self._clock.now()
        provider = self._members[member]
        abandoned = isinstance(exc, ProviderError) and exc.condition == CIRCUIT_OPEN
        # A connection let through a half-open breaker as its probe, and failed: the provider
        # is still down.
        probe = self._probe == member and not self._failed_after_healthy
        leave = verdict.kind in policy.move_on or attempts >= policy.attempts
        if not (abandoned or probe or leave):
            return False
        if not abandoned:
            breakers.failed(provider, now)
        if self._failed_after_healthy:
            # The call had settled here: the providers it left before may be back.
            self._left.clear()
        self._left.add(member)
        candidates = self._candidates(after=member)
        if not candidates:
            return False  # nowhere to go: the provider's own disposition decides
        self._attempts[member] = 0
        self._target = next(
            (m for m in candidates if breakers.get(self._members[m]).allows(now)), candidates[0]
        )
        self._switch_cause = self._report.cause = cause
        # The next provider is tried at once: its delay is not the one this one asked for,
        # and leaving a provider does not count against the session's reconnect budget.
        self._retry_after_s = None
        self._failed_after_healthy = True
        return True

    def retry_after(self) -> float:
        """The least delay before the next attempt that the provider asked for (0: none)."""
        return self._retry_after_s or 0.0

    def failed_after_healthy(self) -> bool:
        """The last failure ended a connection that had worked: it carried a turn or stayed
        up ``limits.healthy_after_s``. (A failure to connect never has.)"""
        return self._failed_after_healthy

    def _absorb(self, link: Link) -> None:
        """Fold a finished link's counters into the session totals (once)."""
        receiver = link.receiver
        self._stats.malformed_frames += receiver.malformed
        receiver.malformed = 0
        sender = link.sender
        if sender is None:
            return
        self._high_water = max(self._high_water, sender.cursor)
        self._stats.frames_sent += sender.frames_sent
        self._stats.frames_resent += sender.frames_resent
        self._stats.frames_skipped += sender.frames_skipped
        self._stats.frames_sent_at_once += sender.frames_sent_at_once
        sender.frames_sent = sender.frames_resent = sender.frames_skipped = 0
        sender.frames_sent_at_once = 0

    # -- rotation ----------------------------------------------------------------------------

    def request_rotation(
        self, reason: str, *, hard_after_s: float = REQUESTED_ROTATION_DEADLINE_S
    ) -> None:
        """Rotate at the next turn boundary, and at the latest ``hard_after_s`` from now."""
        self._planner.request(reason, self._clock.now(), hard_after_s=hard_after_s)
        self._poke.set()

    async def _rotate(self, old: Link, due: RotationDue) -> Link:
        reason = due.reason
        self._report = ReconnectReport(cause=reason, since=self._clock.now(), first=False)
        returning = reason == RETURN_TO_FIRST
        before = self._member
        if returning:
            self._return_at = None
        # Two connections to two providers can always be open at once.
        if returning or old.translator.capabilities.make_before_break:
            try:
                new = await self._open(0 if returning else self._member)
            except Exception as exc:
                # Keep the working connection and try again a little later.
                self._stats.failures += 1
                self._stats.last_cause = f"rotation failed: {cause_code(exc)}"
                now = self._clock.now()
                if returning:
                    self._returned_failed(before, now)
                else:
                    self._planner.attempt_failed(now)
                return old
            now = self._clock.now()
            if not self._planner.at_turn_boundary(busy=self._busy()) and (
                returning or not self._planner.hard_deadline_passed(now)
            ):
                # A turn began on the old connection while the next one was opening: switching
                # now would cut it. Drop the new connection and wait for the next boundary.
                await new.close(graceful=True)
                if returning:
                    self._switch_to(before, cause=f"{RETURN_TO_FIRST}:turn_began")
                    self._return_at = now  # at the next turn boundary
                return old
            await old.stop_sending()
            self._absorb(old)
            self._cut_for_rotation(reason)
            self._activate(new, rotated_from=old.epoch)
            self._stats.rotations += 1
            assert self._tg is not None
            self._tg.start_soon(functools.partial(old.close, graceful=True))
            return new
        await old.stop_sending()
        self._absorb(old)
        self._cut_for_rotation(reason)
        await old.close(graceful=True)
        try:
            new = await self._open()
        except Exception as exc:
            # The old connection is gone: this is now a plain failure, retried by the supervisor.
            raise ConnectionLostError(
                f"rotation could not reconnect: {exc}",
                provider=self._provider.name,
                condition="rotation_failed",
                recoverable=True,
            ) from exc
        self._activate(new, rotated_from=old.epoch)
        self._stats.rotations += 1
        return new

    def _returned_failed(self, before: int, now: float) -> None:
        """The first provider could not be reached again: the session stays on ``before``
        (journalled, if the switch was), the first provider's breaker counts the failure,
        and the next try is after the policy's delay (or its breaker's cool-down)."""
        assert self._policy is not None
        assert self._breakers is not None
        if self._member != before:
            self._switch_to(before, cause=f"{RETURN_TO_FIRST}:failed")
        self._dialled = before
        first = self._members[0]
        self._breakers.failed(first, now)
        delay = self._policy.return_after_s or 0.0
        self._return_at = max(now + delay, self._breakers.get(first).reopens_at() or now)

    def _cut_for_rotation(self, reason: str) -> None:
        """A rotation forced by its deadline may cut a reply: end it as interrupted, and say
        the switch did not restore everything."""
        cut = cut_generation(self._recorder.state, f"rotated ({reason})")
        if cut:
            self._report.restored = False
            self._recorder.record(cut)

    # -- reacting to recorded events ---------------------------------------------------------

    def _on_events(self, events: Sequence[Event], epoch: int) -> None:
        link = self.active
        now = self._clock.now()
        active = link is not None and epoch == link.epoch
        for expires_at_s in self._planner.on_events(events, now, active=active):
            assert link is not None
            self._report_ignored_expiry(link, expires_at_s)
        for event in events:
            if isinstance(event, _ROTATION_RELEVANT):
                self._poke.set()
            match event:
                case UserSpeechStopped():
                    self._reply_due(now)
                case UserAudioCommitted():
                    self._reply_due(now)  # the provider answers a committed turn
                    if active and link is not None and link.sender is not None:
                        self._audio_in.log.mark_safe(link.sender.safe_index(event.audio_end_ms))
                        link.carried_turn = True
                case GenerationStarted() | GenerationTextDelta() | GenerationAudioDelta():
                    self._awaiting_since = None
                case ToolCallRequested() | GenerationEnded():
                    self._awaiting_since = None
                    if active and link is not None:
                        link.carried_turn = True
                case ToolCallFinished():
                    self._delivery.result_recorded(event, epoch=self.epoch)
                case ProviderErrorEvent(code=code) if code != MALFORMED_FRAME:
                    # The provider's own word on what went wrong names the next loss's cause
                    # (a frame we could not decode is ours to report, not a cause).
                    if active and link is not None and event.recoverable:
                        link.last_error_code = code
                case _:
                    pass

    def _on_unencodable(self, command: Command, error: Exception) -> None:
        """The translator could not encode ``command``: it is dropped and the app told."""
        self._recorder.record(
            [
                ProviderErrorEvent(
                    code="command_not_sent",
                    message=f"{type(command).__name__} could not be sent: {error}"[:500],
                    recoverable=True,
                )
            ]
        )

    def _report_ignored_expiry(self, link: Link, expires_at_s: float | None) -> None:
        """The provider announced an implausible lifetime for ``link``: tell the app (as a
        provider notice, recorded without an epoch so it is nobody's reconnect cause)."""
        lifetime = (expires_at_s or 0.0) - link.opened_wall_s
        self._recorder.record(
            [
                ProviderErrorEvent(
                    code="expiry_ignored",
                    message=(
                        f"{self._provider.name} announced that connection {link.epoch} expires "
                        f"{lifetime:.1f} s after it opened, under the "
                        f"{self._limits.min_connection_lifetime_s} s minimum: ignored"
                    ),
                    recoverable=True,
                )
            ]
        )

    def _on_sent(self, command: Command, epoch: int, frames: int) -> None:
        """After a command went out (``frames`` frames; 0 when the provider needs none or
        cannot do it, e.g. Nova has no reply request)."""
        asks_reply = False
        if isinstance(command, DeliverToolResult):
            self._delivery.sent(command, epoch=epoch)
            asks_reply = command.respond
        elif isinstance(command, GenerateReply | CommitAudio):
            asks_reply = True
        elif isinstance(command, SendText):
            asks_reply = command.generate_reply
        if asks_reply and frames:
            self._reply_due(self._clock.now())

    def _reply_due(self, now: float) -> None:
        """A reply is awaited from ``now`` on: the stall watchdog starts watching."""
        self._awaiting_since = now
        if self.active is not None:
            self.active.wake_watchdog()

    def _check_stall(self, link: Link) -> float | None:
        """The watchdog: a connection that sends nothing while a reply is due has stalled.
        Nothing due (no reply awaited): None, the watchdog sleeps until woken."""
        timeout = self._limits.stall_timeout_s
        since = self._awaiting_since
        if since is None or link is not self.active:
            return None
        quiet_since = max(since, link.receiver.last_frame_at)
        if self._clock.now() - quiet_since >= timeout:
            raise ProviderTimeout(
                f"{self._provider.name} sent nothing for {timeout} s while a reply was due",
                provider=self._provider.name,
                condition="stalled",
                recoverable=True,
            )
        return timeout / 4

    # -- resuming and closing ------------------------------------------------------------------

    def resume(self, *, restored: bool) -> None:
        """The session continues a journal after a process restart: the first connection is
        reported as ``Reconnected(cause="resume")``, ``state_restored=restored``; the audio
        the log holds again was sent before (it counts as re-sent)."""
        self._high_water = self._audio_in.log.end
        self._report = ReconnectReport(
            cause="resume", since=self._clock.now(), restored=restored, first=False
        )

    async def aclose(self) -> None:
        """Close the active connection cleanly: first send what the app already gave (audio in
        the log, queued commands) — waiting, within a bounded grace, for a reconnect under
        way —, then the provider's close sequence; then release what the connector holds.
        Audio that could not be sent in time is reported (``audio_not_sent``)."""
        grace = self._limits.connect_timeout_s + self._limits.close_timeout_s
        with anyio.move_on_after(grace):
            # A bounded poll, once per session: an "idle" event could be stale the moment a
            # flush appends frames, or a reconnect replaces the link, so the condition itself
            # is checked.
            while not self._all_sent():  # noqa: ASYNC110
                await anyio.sleep(0.005)
        self._closing = True
        link = self.active
        unsent = self._audio_in.log.end - self.sent_end()
        if link is not None:
            await link.stop_sending()
            self._absorb(link)
            if not link.done.is_set():
                await link.close(graceful=True)
        if unsent > 0:
            ms = unsent * self._audio_in.frame_ms
            self._recorder.record(
                [
                    ProviderErrorEvent(
                        code="audio_not_sent",
                        message=f"{unsent} frames ({ms} ms) of user audio were not sent before "
                        f"the session closed",
                        recoverable=False,
                    )
                ]
            )
        await self.release()

    def sent_end(self) -> int:
        """Frames below this index were sent on some connection."""
        link = self.active
        cursor = link.sender.cursor if link is not None and link.sender is not None else 0
        return max(self._high_water, cursor)

    def _all_sent(self) -> bool:
        """Everything the app gave went out on a live connection (or there is none to wait
        for: the session never connected)."""
        link = self.active
        if link is None:
            return True
        if link.done.is_set() or link.sender is None:
            return False  # a reconnect is under way: its link will send the rest
        return self.sent_end() >= self._audio_in.log.end and not len(self._outbox)

    async def release(self) -> None:
        """Release what the connectors hold (SDK tasks, filters); bounded, idempotent."""
        for member, connector in list(self._connectors.items()):
            limits = self._members[member].limits
            with anyio.move_on_after(limits.close_timeout_s, shield=True):
                await connector.aclose()

    def statistics(self) -> ConnectionStats:
        stats = ConnectionStats(**{**self._stats.__dict__, "gaps_ms": list(self._stats.gaps_ms)})
        link = self.active
        if link is not None:
            stats.malformed_frames += link.receiver.malformed
            if link.sender is not None:
                stats.frames_sent += link.sender.frames_sent
                stats.frames_resent += link.sender.frames_resent
                stats.frames_skipped += link.sender.frames_skipped
                stats.frames_sent_at_once += link.sender.frames_sent_at_once
        return stats


async def wait_any(*events: anyio.Event, clock: Clock, within_s: float | None) -> None:
    """Return when any of ``events`` is set, or after ``within_s`` seconds on ``clock``."""
    if any(e.is_set() for e in events):
        return
    if len(events) == 1 and (within_s is None or type(clock) is SystemClock):
        # One event, with no deadline or one on the event loop's own clock (which is what
        # SystemClock sleeps on), needs no task: a waiting connection manager holds a cancel
        # scope, not a task group with a task per event.
        with anyio.move_on_after(math.inf if within_s is None else within_s):
            await events[0].wait()
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
