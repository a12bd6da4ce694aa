"""Time as an injectable dependency, so tests of backoff, timeouts and rotation never sleep."""

from __future__ import annotations

import time
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
    """The event loop's clock (``anyio.current_time``), wall time from ``time.time_ns``."""

    def now(self) -> float:
        return anyio.current_time()

    def wall_ns(self) -> int:
        return time.time_ns()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


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
