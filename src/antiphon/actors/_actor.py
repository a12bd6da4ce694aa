"""Actor base: a bounded mailbox, the connection epoch, and statistics.

An actor is a task that owns some state and handles messages from its mailbox one at a time.
Every message carries the connection epoch it was produced under; an actor drops (and counts)
a message from an epoch older than its own, so a stale task of a dead connection can never
act on the new one.
"""

from __future__ import annotations

import abc
from typing import Generic, TypeVar

import anyio
import anyio.lowlevel
import msgspec
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

M = TypeVar("M")


class Envelope(msgspec.Struct, Generic[M], frozen=True):
    """A message and the epoch it belongs to (0: not tied to a connection)."""

    epoch: int
    body: M


class ActorStats(msgspec.Struct, kw_only=True):
    """What ``statistics()`` reports for one actor."""

    name: str
    epoch: int = 0
    queue_depth: int = 0
    queue_size: int = 0
    handled: int = 0
    dropped_stale: int = 0
    dropped_overrun: int = 0
    restarts: int = 0


class Actor(abc.ABC, Generic[M]):
    """Base class: subclasses implement :meth:`handle` (and optionally :meth:`on_start`).

    Args:
        name: Name shown in statistics and errors.
        mailbox_size: Bound of the mailbox; each subclass states why its size is what it is.
    """

    def __init__(self, name: str, *, mailbox_size: int) -> None:
        self.name = name
        self.epoch = 0
        self._send: MemoryObjectSendStream[Envelope[M]]
        self._recv: MemoryObjectReceiveStream[Envelope[M]]
        self._send, self._recv = anyio.create_memory_object_stream[Envelope[M]](mailbox_size)
        # Set by a send while run() waits for mail (see run()); made only for that wait.
        self._mail: anyio.Event | None = None
        self._queued = 0  # messages in the mailbox (its statistics() builds an object per call)
        self.stats = ActorStats(name=name, queue_size=mailbox_size)
        self.running = False  # True while run() is handling the mailbox

    # -- sending ----------------------------------------------------------------------------

    async def send(self, body: M, *, epoch: int = 0) -> None:
        """Put a message in the mailbox, waiting while it is full (back-pressure)."""
        await self._send.send(Envelope(epoch, body))
        self._queued += 1
        self._notify()

    def send_nowait(self, body: M, *, epoch: int = 0) -> bool:
        """Put a message in the mailbox if there is room; False (and counted) when full."""
        try:
            self._send.send_nowait(Envelope(epoch, body))
        except anyio.WouldBlock:
            self.stats.dropped_overrun += 1
            return False
        self._queued += 1
        self._notify()
        return True

    def _notify(self) -> None:
        if self._mail is not None:
            self._mail.set()

    # -- running ----------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Handle messages until cancelled. Survives restarts: the mailbox outlives the task.

        An empty mailbox is waited on with an event the senders set, not with the stream's
        ``receive()``: a receiver parked in ``receive()`` holds several times the memory,
        and an actor is parked most of its life.
        """
        await self.on_start()
        self.running = True
        task_status.started()
        try:
            while True:
                try:
                    envelope = await self._receive()
                except anyio.EndOfStream:
                    return
                if envelope.epoch and envelope.epoch < self.epoch:
                    self.stats.dropped_stale += 1
                    continue
                await self.handle(envelope.body, envelope.epoch)
                self.stats.handled += 1
        finally:
            self.running = False

    async def _receive(self) -> Envelope[M]:
        """The next message, after a checkpoint (one message per turn, as ``receive()``)."""
        await anyio.lowlevel.checkpoint()
        while True:
            try:
                envelope = self._recv.receive_nowait()
            except anyio.WouldBlock:
                # Empty: the count is exact again (a send cancelled just as its message was
                # taken counts one short until here; below zero, submit takes the mailbox).
                # The wait is not in here: the exception and its traceback would live on.
                self._queued = 0
            else:
                self._queued -= 1
                return envelope
            self._mail = anyio.Event()
            try:
                await self._mail.wait()
            finally:
                self._mail = None

    def queued(self) -> int:
        """Messages waiting in the mailbox."""
        return self._queued

    async def on_start(self) -> None:
        """Called at every (re)start before ``started()`` is signalled."""

    @abc.abstractmethod
    async def handle(self, message: M, epoch: int) -> None:
        """Handle one message of the current (or no) epoch."""

    def statistics(self) -> ActorStats:
        self.stats.epoch = self.epoch
        self.stats.queue_depth = self.queued()
        return msgspec.structs.replace(self.stats)

    def close(self) -> None:
        self._send.close()
        self._notify()
