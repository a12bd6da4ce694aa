"""A link's stall watchdog runs its check when the check asks for it, and not at all while
nothing is due: it then sleeps until woken."""

from __future__ import annotations

from typing import Any, cast

import anyio
import anyio.lowlevel
import pytest

from antiphon.actors import ManualClock
from antiphon.actors._link import Link
from antiphon.adapters import Capabilities, Frame, Limits
from antiphon.protocol import SessionState
from antiphon.testing._translator import ScriptedTranslator

pytestmark = pytest.mark.anyio


class _Quiet:
    """A connection that never receives, and a receiver that reads nothing from it."""

    capture = None

    async def run(self) -> None:
        await anyio.sleep_forever()

    async def send(self, frame: Frame) -> None:
        pass

    async def receive(self) -> Frame:
        await anyio.sleep_forever()
        raise AssertionError

    async def aclose(self) -> None:
        pass


def _quiet_link() -> Link:
    """A link over a connection that never says anything (it is its own receiver)."""
    quiet = _Quiet()
    return Link(
        epoch=1,
        translator=ScriptedTranslator(capabilities=Capabilities(), limits=Limits()),
        connection=quiet,
        receiver=cast("Any", quiet),
        close_timeout_s=1.0,
        opened_at=0.0,
        opened_wall_s=0.0,
        state=SessionState,
    )


async def _until(condition: Any) -> None:
    with anyio.fail_after(10):
        while not condition():
            await anyio.lowlevel.checkpoint()


async def test_the_watchdog_sleeps_until_woken_while_nothing_is_due() -> None:
    link = _quiet_link()
    clock = ManualClock()
    due: list[float | None] = [None]
    checks: list[float] = []

    answers: list[float | None] = []

    def check() -> float | None:
        checks.append(clock.now())
        answers.append(due[0])
        return due[0]

    async with anyio.create_task_group() as tg:
        await tg.start(link.run)
        link.start_watchdog(check, clock)
        await _until(lambda: len(checks) == 1)
        for _ in range(20):  # give a wrongly polling watchdog every chance to run again
            await anyio.lowlevel.checkpoint()
        assert len(checks) == 1  # no reply due: no wake-ups at all
        assert clock.sleeps == []
        due[0] = 5.0  # a reply is now awaited: check again in 5 s
        link.wake_watchdog()
        await _until(lambda: len(checks) >= 3)
        assert clock.sleeps[:2] == [5.0, 5.0]
        due[0] = None
        await _until(lambda: answers[-1] is None)  # it has seen that nothing is due
        count = len(checks)
        for _ in range(20):
            await anyio.lowlevel.checkpoint()
        assert len(checks) == count  # asleep again until the next wake
        tg.cancel_scope.cancel()


class _ForeverSender:
    """A sender that sends until it is stopped."""

    async def run(self) -> None:
        await anyio.sleep_forever()

    def stop_sending_at_once(self) -> None:
        pass


async def test_stopping_a_sender_that_has_not_started_yet_stops_it() -> None:
    """A link closed right after it was activated (a session closed as soon as it connected)
    stops its sender even when the sender's task has not run yet; waiting for it then
    returned never (the session's shielded close hung)."""
    link = _quiet_link()
    async with anyio.create_task_group() as tg:
        await tg.start(link.run)
        link.start_sending(cast("Any", _ForeverSender()))
        with anyio.fail_after(10):  # the sender's task has not had a turn yet
            await link.stop_sending()
        tg.cancel_scope.cancel()
