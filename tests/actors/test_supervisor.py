"""Supervisor: strategies, restart types, intensity, backoff — on a manual clock."""

from __future__ import annotations

import random
from typing import Any

import anyio
import pytest
from anyio.abc import TaskStatus

from antiphon.actors import (
    Backoff,
    ChildSpec,
    Intensity,
    ManualClock,
    RestartType,
    Strategy,
    Supervisor,
)
from antiphon.errors import SupervisorEscalation

pytestmark = pytest.mark.anyio


class Child:
    """A child that records its starts and can be made to fail or stop from the test."""

    def __init__(self, name: str, log: list[str], *, fail_on_start: int = 0) -> None:
        self.name = name
        self.log = log
        self.starts = 0
        self.fail_on_start = fail_on_start
        self.crash = anyio.Event()
        self.stop = anyio.Event()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self.starts += 1
        self.log.append(f"start {self.name}")
        if self.starts <= self.fail_on_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.crash = anyio.Event()
        self.stop = anyio.Event()
        task_status.started()
        async with anyio.create_task_group() as tg:

            async def wait(ev: anyio.Event) -> None:
                await ev.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(wait, self.crash)
            tg.start_soon(wait, self.stop)
        if self.crash.is_set():
            raise ValueError(f"{self.name} crashed")


def make(
    strategy: Strategy,
    restart: dict[str, RestartType] | None = None,
    **kw: Any,
) -> tuple[Supervisor, dict[str, Child], list[str], ManualClock]:
    log: list[str] = []
    clock = ManualClock()
    children = {n: Child(n, log) for n in "abc"}
    specs = [
        ChildSpec(name=n, run=c.run, restart=(restart or {}).get(n, RestartType.PERMANENT))
        for n, c in children.items()
    ]
    sup = Supervisor("test", specs, strategy=strategy, clock=clock, **kw)
    return sup, children, log, clock


async def settle() -> None:
    for _ in range(20):
        await anyio.lowlevel.checkpoint()


@pytest.mark.parametrize(
    ("strategy", "restarted"),
    [
        (Strategy.ONE_FOR_ONE, ["b"]),
        (Strategy.REST_FOR_ONE, ["b", "c"]),
        (Strategy.ONE_FOR_ALL, ["a", "b", "c"]),
    ],
)
async def test_strategy_decides_who_restarts(strategy: Strategy, restarted: list[str]) -> None:
    sup, children, log, _ = make(strategy)
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        log.clear()
        children["b"].crash.set()
        await settle()
        assert sorted(line.split()[1] for line in log) == restarted
        assert sup.restarts() == {n: int(n in restarted) for n in "abc"}
        tg.cancel_scope.cancel()


async def test_restart_types() -> None:
    sup, children, log, _ = make(
        Strategy.ONE_FOR_ONE,
        {"a": RestartType.TEMPORARY, "b": RestartType.TRANSIENT, "c": RestartType.PERMANENT},
    )
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        log.clear()
        children["a"].crash.set()  # temporary: never back
        children["b"].stop.set()  # transient, normal exit: not back
        await settle()
        assert log == []
        children["c"].stop.set()  # permanent: back even after a normal exit
        await settle()
        assert log == ["start c"]
        tg.cancel_scope.cancel()


async def test_transient_child_returns_after_error() -> None:
    sup, children, log, _ = make(Strategy.ONE_FOR_ONE, {"b": RestartType.TRANSIENT})
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        log.clear()
        children["b"].crash.set()
        await settle()
        assert log == ["start b"]
        tg.cancel_scope.cancel()


async def test_intensity_escalates_with_the_original_error_boxed() -> None:
    sup, children, _, _ = make(
        Strategy.ONE_FOR_ONE, intensity=Intensity(max_restarts=2, within_s=10)
    )

    async def crash_three_times() -> None:
        for _ in range(3):
            await settle()
            children["a"].crash.set()

    # sup.run() raises the escalation itself; the test's own task group wraps it in a group.
    with pytest.RaisesGroup(SupervisorEscalation) as info:
        async with anyio.create_task_group() as tg:
            tg.start_soon(crash_three_times)
            await sup.run()
    err = info.value.exceptions[0]
    assert isinstance(err, SupervisorEscalation)
    assert err.child == "a"
    assert err.restarts == 3
    assert isinstance(err.__cause__, ValueError)
    assert "a crashed" in str(err.__cause__)


async def test_restarts_outside_the_window_do_not_count() -> None:
    sup, children, _, clock = make(
        Strategy.ONE_FOR_ONE, intensity=Intensity(max_restarts=1, within_s=10)
    )
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        for _ in range(4):
            clock.advance(11)
            children["a"].crash.set()
            await settle()
        assert sup.restarts()["a"] == 4
        tg.cancel_scope.cancel()


async def test_backoff_grows_exponentially_with_seeded_jitter() -> None:
    backoff = Backoff(base_s=0.5, factor=2.0, max_s=3.0, jitter=0.1)
    sup, children, _, clock = make(
        Strategy.ONE_FOR_ONE,
        backoff=backoff,
        intensity=Intensity(max_restarts=10, within_s=100),
        seed=7,
    )
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        for _ in range(4):
            children["a"].crash.set()
            await settle()
        tg.cancel_scope.cancel()
    rng = random.Random(7)
    expected = [backoff.delay(n, rng) for n in range(1, 5)]
    assert clock.sleeps == pytest.approx(expected)
    # 0.5, 1, 2, then capped at 3 — each within the 10 % jitter.
    for slept, raw in zip(clock.sleeps, [0.5, 1.0, 2.0, 3.0], strict=True):
        assert raw * 0.9 <= slept <= raw * 1.1


async def test_a_child_failing_to_start_is_restarted() -> None:
    log: list[str] = []
    clock = ManualClock()
    flaky = Child("flaky", log, fail_on_start=2)
    sup = Supervisor("s", [ChildSpec(name="flaky", run=flaky.run)], clock=clock)
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        await settle()
        assert flaky.starts == 3
        assert len(clock.sleeps) == 2
        tg.cancel_scope.cancel()


async def test_cancellation_is_not_a_failure() -> None:
    sup, _, _, clock = make(Strategy.ONE_FOR_ONE)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            scope.cancel()
    assert sup.restarts() == {"a": 0, "b": 0, "c": 0}
    assert clock.sleeps == []


def make_with_hooks(
    *, healthy: list[bool] | None = None, min_backoff: float | None = None, **kw: Any
) -> tuple[Supervisor, Child, ManualClock]:
    log: list[str] = []
    clock = ManualClock()
    child = Child("t", log)
    answers = iter(healthy or [])
    spec = ChildSpec(
        name="t",
        run=child.run,
        healthy=(lambda: next(answers)) if healthy is not None else None,
        min_backoff=(lambda: min_backoff) if min_backoff is not None else None,
    )
    return Supervisor("test", [spec], clock=clock, **kw), child, clock


async def test_a_failure_after_healthy_work_does_not_count_and_restarts_the_backoff() -> None:
    backoff = Backoff(base_s=0.5, factor=2.0, max_s=8.0, jitter=0.0)
    # Four failures to get going, then one after healthy work, then two more failures: with
    # a budget of 5, counting every failure would escalate; the healthy one starts over.
    answers = [False, False, False, False, True, False, False]
    sup, child, clock = make_with_hooks(
        healthy=answers, backoff=backoff, intensity=Intensity(max_restarts=5, within_s=100)
    )
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        for _ in answers:
            child.crash.set()
            await settle()
        assert sup.restarts()["t"] == len(answers)
        tg.cancel_scope.cancel()
    # 0.5, 1, 2, 4 while failing; immediately after the healthy run; then 0.5, 1 again.
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 0.0, 0.5, 1.0]


async def test_failures_to_get_going_still_escalate() -> None:
    sup, child, _ = make_with_hooks(
        healthy=[False] * 3, intensity=Intensity(max_restarts=2, within_s=100)
    )
    with pytest.RaisesGroup(SupervisorEscalation):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            for _ in range(3):
                child.crash.set()
                await settle()


async def test_the_backoff_waits_at_least_what_the_child_asks() -> None:
    backoff = Backoff(base_s=0.1, factor=2.0, max_s=5.0, jitter=0.0)
    sup, child, clock = make_with_hooks(
        min_backoff=1.0, backoff=backoff, intensity=Intensity(max_restarts=10, within_s=100)
    )
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        for _ in range(5):
            child.crash.set()
            await settle()
        tg.cancel_scope.cancel()
    assert clock.sleeps == [1.0, 1.0, 1.0, 1.0, 1.6]
