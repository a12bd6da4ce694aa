"""A link: one epoch's provider connection, its translator, transport-send and -recv, and a
watchdog, run as one task group.

The connection manager opens a link per epoch. The receiver runs from the start (so the
handshake's answer is seen); the sender starts only when the manager activates the link, and
can be stopped on its own so its cursor is final before the next link takes over. A failure
of any part is kept in :attr:`Link.failure` and ends the link; closing it (gracefully: with the
provider's close sequence first) never hangs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import suppress

import anyio
from anyio.abc import TaskGroup, TaskStatus

from ..adapters import Connection, Translator
from ..protocol import CloseSession, SessionState
from ._clock import Clock
from .transport_recv import TransportRecv
from .transport_send import TransportSend


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
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self.epoch = epoch
        self.translator = translator
        self.connection = connection
        self.receiver = receiver
        self.sender: TransportSend | None = None
        self.opened_at = opened_at
        self.opened_wall_s = opened_wall_s
        self.resumed = False  # the provider restored its own state (a resumption handle)
        self.history_truncated = False  # the handshake left part of the history out
        self.activated = False  # it carried the session (audio and commands) at some point
        self.carried_turn = False  # a turn completed on it (the provider took or answered one)
        self._state = state
        self.failure: Exception | None = None
        self.done = anyio.Event()
        self._on_done = on_done
        self.closing = False
        self.last_error_code = ""
        self._close_timeout = close_timeout_s
        self._tg: TaskGroup | None = None
        self._sender_scope: anyio.CancelScope | None = None
        self._sender_ended = False
        self._sender_done: anyio.Event | None = None  # made when someone waits for the end
        self._watchdog: Callable[[], Awaitable[None]] | None = None
        self._watching = False  # the watchdog's task is running
        self._closed = False

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                task_status.started()
                # The receiver runs in this task, the group's host: a task fewer per
                # connection, with the same fate (its failure cancels the group).
                await self._guard(self.receiver.run)
        finally:
            self.done.set()
            if self._on_done is not None:
                self._on_done()
            with anyio.CancelScope(shield=True):
                if self.failure is not None:
                    # A stream ended by a provider error may still take input: end the
                    # session properly so the provider frees it (Nova asks for this).
                    await self._send_close_sequence()
                await self._close_connection()

    async def _send_close_sequence(self) -> None:
        capture = self.receiver.capture
        with anyio.move_on_after(self._close_timeout), suppress(Exception):
            for frame in self.translator.encode(CloseSession(), self._state()):
                await self.connection.send(frame)
                if capture is not None:
                    capture.sent(self.epoch, frame)

    async def _guard(self, run: Callable[[], object]) -> None:
        try:
            await run()  # type: ignore[misc]
        except Exception as exc:
            if self.failure is None and not self.closing:
                self.failure = exc
            if self.sender is not None:
                self.sender.stop_sending_at_once()
            assert self._tg is not None
            self._tg.cancel_scope.cancel()

    def start_sending(self, sender: TransportSend) -> None:
        assert self._tg is not None
        self.sender = sender
        # The scope exists before the task runs: a stop that comes before the task has
        # started cancels it all the same (it then ends at once), instead of waiting for a
        # sender nobody will stop.
        self._sender_scope = anyio.CancelScope()
        self._tg.start_soon(self._run_sender, sender, self._sender_scope)

    async def _run_sender(self, sender: TransportSend, scope: anyio.CancelScope) -> None:
        try:
            with scope:
                await self._guard(sender.run)
        finally:
            self._sender_ended = True
            if self._sender_done is not None:
                self._sender_done.set()

    def start_watchdog(self, check: Callable[[], float | None], clock: Clock) -> None:
        """Run ``check`` (in a task of the link), and again when it asks to be run again, or
        raises: that fails the link.

        ``check`` returns the seconds until it should run next, or None when nothing is due
        (no reply awaited): the watchdog's task then ends, and :meth:`wake_watchdog` starts
        it again, so an idle connection costs neither wake-ups nor a task.
        """

        async def watchdog() -> None:
            try:
                while (delay := check()) is not None:
                    await clock.sleep(delay)
            finally:
                self._watching = False

        self._watchdog = watchdog
        self.wake_watchdog()

    def wake_watchdog(self) -> None:
        """Something became due (a reply is now awaited): run the watchdog's check again."""
        if self._watchdog is None or self._watching or self.done.is_set():
            return  # not started, still running (it checks again after its sleep), or over
        assert self._tg is not None
        self._watching = True
        self._tg.start_soon(self._guard, self._watchdog)

    async def stop_sending(self) -> None:
        """Stop transport-send and wait for it, so its cursor is final."""
        if self.sender is None:
            return
        self.sender.stop_sending_at_once()
        if self._sender_scope is not None:
            self._sender_scope.cancel()
        if not self._sender_ended:
            if self._sender_done is None:
                self._sender_done = anyio.Event()
            await self._sender_done.wait()

    async def close(self, *, graceful: bool) -> None:
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
        if self.sender is not None:
            self.sender.stop_sending_at_once()
        # A close that fails has still closed: there is nothing to recover.
        with anyio.move_on_after(self._close_timeout, shield=True), suppress(Exception):
            await self.connection.aclose()
