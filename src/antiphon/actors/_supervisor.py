"""A supervisor for the session's actors, in the Erlang/OTP mould, on anyio task groups.

How this works: the supervisor starts its children in order, each in its own cancel scope
inside one task group, with ``task_group.start`` so a child that fails while starting fails
the start. When a child ends, the supervisor decides from the child's restart type whether it
comes back, and from the strategy which siblings restart with it:

* ``ONE_FOR_ONE`` — only the child that ended;
* ``REST_FOR_ONE`` — that child and every child started after it (the session uses this:
  a transport failure restarts the transport, never audio-in or the tool executor);
* ``ONE_FOR_ALL`` — all children.

Restart types: ``PERMANENT`` children always come back, ``TRANSIENT`` ones only after an
error, ``TEMPORARY`` ones never. More than ``intensity.max_restarts`` restarts within
``intensity.within_s`` seconds escalates: the supervisor raises :class:`SupervisorEscalation`
with the original error as its cause. Between restarts it backs off exponentially, with
jitter from a seeded generator, sleeping on an injectable :class:`Clock`.

Cancellation is never swallowed: only ``Exception`` subclasses count as child failures.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup, TaskStatus

from ..errors import SupervisorEscalation
from ._clock import Clock, SystemClock


class Strategy(enum.StrEnum):
    ONE_FOR_ONE = "one_for_one"
    REST_FOR_ONE = "rest_for_one"
    ONE_FOR_ALL = "one_for_all"


class RestartType(enum.StrEnum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


ChildRun = Callable[..., Awaitable[None]]
"""``async def run(*, task_status) -> None``; calls ``task_status.started()`` once ready."""


@dataclass(frozen=True, kw_only=True)
class ChildSpec:
    """A supervised child.

    Attributes:
        name: For errors and statistics.
        run: The child's task.
        restart: When it comes back.
        min_backoff: Called when this child failed: the least delay before its restart that
            the child knows of (a provider's "retry after"); the backoff waits at least this.
        healthy: Called when this child failed: True when it had been working before it
            failed (a connection that carried a turn, then dropped). Such a failure is not
            counted toward the restart intensity and starts the backoff over: the intensity
            bounds children that cannot get going, not ones that work and are cut now and then.
    """

    name: str
    run: ChildRun
    restart: RestartType = RestartType.PERMANENT
    min_backoff: Callable[[], float] | None = None
    healthy: Callable[[], bool] | None = None


@dataclass(frozen=True, kw_only=True)
class Intensity:
    """At most ``max_restarts`` restarts within ``within_s`` seconds."""

    max_restarts: int = 5
    within_s: float = 60.0


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """Delay before the n-th consecutive restart: ``base_s * factor**(n-1)``, capped at
    ``max_s``, then scaled by a random factor in ``[1 - jitter, 1 + jitter]``."""

    base_s: float = 0.1
    factor: float = 2.0
    max_s: float = 5.0
    jitter: float = 0.2

    def delay(self, attempt: int, rng: random.Random) -> float:
        if attempt <= 0:
            return 0.0
        raw = min(self.max_s, self.base_s * self.factor ** (attempt - 1))
        return raw * (1.0 + self.jitter * (2.0 * rng.random() - 1.0))


@dataclass(kw_only=True, slots=True)
class _Child:
    spec: ChildSpec
    scope: anyio.CancelScope | None = None
    ended: bool = False  # its task of the current start has ended
    done: anyio.Event | None = None  # made only when someone must wait for that end
    running: bool = False
    restarts: int = 0


RestartHook = Callable[[str, BaseException | None], None]


class Supervisor:
    """Runs children under a restart strategy. See the module docstring.

    Args:
        name: For errors and statistics.
        children: Specs, in start order.
        strategy: Which siblings restart with a child that ended.
        intensity: Restart budget before escalating.
        backoff: Delay between restarts.
        clock: Time source for the budget window and the backoff sleeps.
        seed: Seed of the jitter generator (printed in statistics for reproduction).
        on_restart: Called with (child name, error or None) before each restart.
    """

    def __init__(
        self,
        name: str,
        children: Sequence[ChildSpec],
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: Intensity | None = None,
        backoff: Backoff | None = None,
        clock: Clock | None = None,
        seed: int = 0,
        on_restart: RestartHook | None = None,
    ) -> None:
        self.name = name
        self.strategy = strategy
        self.intensity = intensity or Intensity()
        self.backoff = backoff or Backoff()
        self.clock: Clock = clock or SystemClock()
        self.seed = seed
        # Made at the first restart: most supervisors never restart anything, and a
        # generator's state is 2.5 KB.
        self._rng: random.Random | None = None
        self._on_restart = on_restart
        self._children = [_Child(spec=spec) for spec in children]
        self._restart_times: list[float] = []
        self._consecutive = 0
        # Exit reports, oldest first. At most one per child: a child reports its exit once
        # per run, and the supervisor takes (or, for a sibling it stops, drops) the report
        # before starting that child again. A list and an event made only while the
        # supervisor waits cost less than a memory object stream and its waiting receiver.
        self._exits: list[tuple[_Child, Exception | None]] = []
        self._exited: anyio.Event | None = None

    def restarts(self) -> dict[str, int]:
        return {c.spec.name: c.restarts for c in self._children}

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start all children, then supervise them until every child is gone for good.

        Raises:
            SupervisorEscalation: a child exceeded the restart intensity.
        """
        escalation: SupervisorEscalation | None = None
        async with anyio.create_task_group() as tg:
            for child in self._children:
                await self._start(tg, child)
            task_status.started()
            try:
                while any(c.running for c in self._children):
                    child, error = await self._next_exit()
                    child.running = False
                    await self._on_exit(tg, child, error)
            except SupervisorEscalation as exc:
                # Raised outside the task group, so callers get it as is, not in a group.
                escalation = exc
            tg.cancel_scope.cancel()
        if escalation is not None:
            raise escalation

    async def _next_exit(self) -> tuple[_Child, Exception | None]:
        """The oldest exit report, waiting for one."""
        await anyio.lowlevel.checkpoint()
        while not self._exits:
            self._exited = anyio.Event()
            try:
                await self._exited.wait()
            finally:
                self._exited = None
        return self._exits.pop(0)

    def _report_exit(self, child: _Child, error: Exception | None) -> None:
        self._exits.append((child, error))
        if self._exited is not None:
            self._exited.set()

    async def _on_exit(self, tg: TaskGroup, child: _Child, error: Exception | None) -> None:
        restart = child.spec.restart
        if restart is RestartType.TEMPORARY or (restart is RestartType.TRANSIENT and error is None):
            return
        now = self.clock.now()
        window = self.intensity.within_s
        self._restart_times = [t for t in self._restart_times if now - t < window]
        if error is not None and child.spec.healthy is not None and child.spec.healthy():
            self._restart_times.clear()  # it worked, then failed: start over
        else:
            self._restart_times.append(now)
        if len(self._restart_times) > self.intensity.max_restarts:
            cause = error or RuntimeError(f"{child.spec.name} exited")
            raise SupervisorEscalation(child.spec.name, len(self._restart_times), cause) from cause
        self._consecutive = len(self._restart_times)
        group = self._restart_group(child)
        for sibling in group:
            if sibling is not child and sibling.running:
                await self._stop(sibling)
        if self._on_restart is not None:
            self._on_restart(child.spec.name, error)
        if self._rng is None:
            self._rng = random.Random(self.seed)
        delay = self.backoff.delay(self._consecutive, self._rng)
        if error is not None and child.spec.min_backoff is not None:
            delay = max(delay, child.spec.min_backoff())
        await self.clock.sleep(delay)
        for sibling in group:
            sibling.restarts += 1
            await self._start(tg, sibling)

    def _restart_group(self, child: _Child) -> list[_Child]:
        if self.strategy is Strategy.ONE_FOR_ONE:
            return [child]
        if self.strategy is Strategy.ONE_FOR_ALL:
            return [c for c in self._children if c.running or c is child]
        index = self._children.index(child)
        return [c for c in self._children[index:] if c.running or c is child]

    async def _stop(self, child: _Child) -> None:
        if child.scope is not None:
            child.scope.cancel()
        if not child.ended:
            if child.done is None:
                child.done = anyio.Event()
            await child.done.wait()
        child.running = False
        # An exit report it made before the cancellation reached it is still queued: drop it.
        self._exits = [item for item in self._exits if item[0] is not child]

    async def _start(self, tg: TaskGroup, child: _Child) -> None:
        child.ended, child.done = False, None
        child.running = True
        try:
            await tg.start(self._supervise_child, child)
        except Exception as exc:
            # Failed before it was ready: report it like any other exit.
            child.running = True
            self._report_exit(child, exc)

    async def _supervise_child(self, child: _Child, *, task_status: TaskStatus[None]) -> None:
        error: Exception | None = None
        started = False

        def mark_started(value: None = None) -> None:
            nonlocal started
            started = True
            task_status.started()

        proxy = StatusProxy(mark_started)
        try:
            with anyio.CancelScope() as scope:
                child.scope = scope
                await child.spec.run(task_status=proxy)
        except Exception as exc:
            if not started:
                raise
            error = exc
        finally:
            child.ended = True
            if child.done is not None:
                child.done.set()
        if not started:
            task_status.started()
        if child.scope is not None and child.scope.cancel_called:
            return  # stopped by us as part of a group restart: not an exit to act on
        self._report_exit(child, error)


class StatusProxy:
    """Passes ``started()`` through while letting the supervisor know it happened."""

    def __init__(self, mark: Callable[[None], None]) -> None:
        self._mark = mark

    def started(self, value: None = None) -> None:
        self._mark(value)
