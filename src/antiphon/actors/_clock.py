"""Time as an injectable dependency, so tests of backoff, timeouts and rotation never sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

import anyio


class Clock(Protocol):
    """Monotonic time plus sleeping on it."""

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def wall_ns(self) -> int:
        """Wall-clock time in nanoseconds since the epoch (journal records carry it)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The event loop's clock (``anyio.current_time``), wall time from ``time.time_ns``.

    The runtime asks for the time several times per frame, so on asyncio the loop's clock is
    looked up once, at the first call (``anyio.current_time`` looks the backend up on every
    call): a clock serves the event loop of the session that made it.
    """

    def __init__(self) -> None:
        self._current_time: Callable[[], float] | None = None

    def now(self) -> float:
        current_time = self._current_time
        if current_time is None:
            current_time = self._current_time = _event_loop_time()
        return current_time()

    def wall_ns(self) -> int:
        return time.time_ns()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


def _event_loop_time() -> Callable[[], float]:
    """The running asyncio loop's own clock (what ``anyio.current_time`` reads there), else
    ``anyio.current_time`` itself."""
    try:
        return asyncio.get_running_loop().time
    except RuntimeError:  # not asyncio (trio)
        return anyio.current_time


class ManualClock:
    """A clock that only moves when told, or when something sleeps on it.

    ``sleep`` advances the clock by the requested time and yields once, so code that backs off
    for seconds runs instantly in tests while still seeing time pass. Every sleep is recorded
    in ``sleeps``.
    """

    def __init__(self, start: float = 0.0, wall_start_ns: int = 1_700_000_000_000_000_000) -> None:
        self._now = start
        self._wall0 = wall_start_ns
        self._start = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    def wall_ns(self) -> int:
        return self._wall0 + int((self._now - self._start) * 1e9)

    def advance(self, seconds: float) -> None:
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._now += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()
