"""What the runtime tests share: user audio frames for the scripted provider, an event
collector, and waiting for a condition (never for time)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import numpy as np

from antiphon.actors import Backoff, Session
from antiphon.events import ReplyEnded, SessionEvent
from antiphon.testing import ScriptedProvider

FRAME_BYTES = 640  # 20 ms at 16 kHz, the scripted provider's input format
FAST = Backoff(base_s=0.01, max_s=0.05)


def user_frames(n: int, seed: int = 1) -> list[bytes]:
    """n distinct 20 ms frames of deterministic noise (distinct, so duplicates are visible)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(-3000, 3000, FRAME_BYTES // 2, dtype=np.int16).tobytes() for _ in range(n)]


class Events:
    """Every event the app sees, in order."""

    def __init__(self) -> None:
        self.events: list[SessionEvent] = []

    async def run(self, session: Session) -> None:
        async for event in session.events():
            self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def replied(self, prefix: str) -> bool:
        return any(e.text.startswith(prefix) for e in self.of(ReplyEnded))


async def until(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    """Wait for ``predicate``; the deadline only guards against a hang."""
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.005)


async def send_all(session: Session, frames: list[bytes], rate: int = 16_000) -> None:
    for frame in frames:
        await session.send_audio(frame, sample_rate=rate)
        await anyio.lowlevel.checkpoint()


def all_outputs(provider: ScriptedProvider) -> list[tuple[str, str]]:
    """Every tool output the provider received, over all its connections."""
    return [o for r in provider.records for o in r.tool_outputs]
