"""Commands waiting for the provider connection, kept across reconnects."""

from __future__ import annotations

import collections
from collections.abc import Callable

from ..errors import SessionClosedError
from ..protocol import Command, DeliverToolResult

# 1024 commands: commands are rare (text, tool results, interrupts, updates) — a handful per
# turn. A full outbox means the provider has been unreachable for a long time; put() then
# fails loudly instead of growing without bound.
OUTBOX_SIZE = 1024


class Outbox:
    """FIFO of commands for transport-send. A command leaves the outbox only after it was
    sent, so one caught in a failed send goes out on the next connection."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._queue: collections.deque[Command] = collections.deque()
        self._wake = wake

    def put(self, command: Command) -> None:
        """Queue a command.

        Raises:
            SessionClosedError: the outbox is full (the provider is unreachable).
        """
        if len(self._queue) >= OUTBOX_SIZE:
            raise SessionClosedError("too many commands waiting for the provider connection")
        self._queue.append(command)
        self._wake()

    def peek(self) -> Command | None:
        return self._queue[0] if self._queue else None

    def pop(self) -> None:
        self._queue.popleft()

    def drop_tool_results(self) -> None:
        """Forget queued tool deliveries; a new connection re-queues them from the state."""
        self._queue = collections.deque(
            c for c in self._queue if not isinstance(c, DeliverToolResult)
        )

    def __len__(self) -> int:
        return len(self._queue)
