"""The recorder: every state change of a session, folded, journalled, then acted on.

How this works: :meth:`Recorder.record` is synchronous (it never awaits), so a batch is
recorded atomically with respect to the other tasks of the event loop. For each batch:

1. what needs the time of receipt is stamped (a resumption handle);
2. the events are folded into :class:`SessionState` with the pure reducer;
3. they are appended to the journal — *before* anything acts on them (write-ahead: a tool
   runs only after its ``ToolCallRequested`` is recorded, a result is delivered only after its
   ``ToolCallFinished`` is). The journal writer moves inline audio to its audio store;
4. the app events for them are emitted, in journal order;
5. only then are listeners (the session's tool dispatch, the connection manager) told.

A listener may record again (a tool call refused because the executor is full records its
output at once). Such a nested ``record`` is queued and drained by the outermost call after
the current batch is done, so app events and listeners always see batches in journal order.

Events of a connection older than the current one (``epoch``) are dropped and counted: a
stale task of a dead connection can never change the session.

A journal that cannot take a batch (a full disk, a writer that was fenced off) is not a
provider failure: nothing of the batch is acted on, the recorder refuses every later batch
with the same error, and ``on_journal_failure`` ends the session once.

The journal's batch durability is met without fsyncing on the event loop: the writer defers
its fsyncs. A journal that then meets its policy on its own (``flushes_itself``: the file
journal fsyncs all its sessions together from one thread, the memory journal has nothing to
sync) needs nothing more; for any other (Redis renews its lease by ``flush``),
:meth:`Recorder.run_flusher` (a supervised task, see :attr:`Recorder.needs_flusher`) runs
``flush`` in a worker thread when due, sleeping until something is appended.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence

import anyio
import msgspec
from anyio.abc import TaskStatus
from msgspec.structs import replace

from ..errors import JournalError
from ..events import AppEventMapper, SessionEvent
from ..journal import CaptureMode, JournalWriter, WireCapture
from ..protocol import Event, ResumptionHandleUpdated, SessionState, fold
from ._clock import Clock

# App events buffered for ``Session.events()``: ~80 s of audio deltas. An app that does not
# read events must not stall the session, so overflow drops the newest and counts it.
APP_EVENTS_SIZE = 4096

Listener = Callable[[Sequence[Event], int], None]


class RecorderStats(msgspec.Struct, kw_only=True):
    """What the recorder reports in ``Session.statistics()``."""

    name: str = "recorder"
    epoch: int = 0
    batches: int = 0
    events: int = 0
    dropped_stale: int = 0
    app_events_dropped: int = 0


class Recorder:
    """Folds, journals and dispatches every event of a session. See the module docstring.

    Args:
        state: The state to continue from (empty for a new session, replayed for a resume).
        writer: The session's journal writer.
        clock: Time source for the records' timestamps.
        on_journal_failure: Called once with the error when the journal fails.
        capture: The session's wire capture mode (None: the journal's ``capture``).
    """

    name = "recorder"

    def __init__(
        self,
        *,
        state: SessionState,
        writer: JournalWriter,
        clock: Clock,
        on_journal_failure: Callable[[JournalError], None] | None = None,
        capture: CaptureMode | None = None,
    ) -> None:
        self.state = state
        self.epoch = state.epoch  # the current connection's epoch
        self._writer = writer
        self._clock = clock
        self._expected_seq = writer.next_seq
        self._listeners: list[Listener] = []
        self._mapper = AppEventMapper()
        self._app_send, self.app_events = anyio.create_memory_object_stream[SessionEvent](
            APP_EVENTS_SIZE
        )
        self._queue: collections.deque[tuple[Sequence[Event], int]] = collections.deque()
        self._recording = False
        self._appended = anyio.Event()
        self._on_journal_failure = on_journal_failure
        self.journal_error: JournalError | None = None
        # Whether the session must run run_flusher: not when the journal syncs on its own.
        self.needs_flusher = not writer.flushes_itself
        if not self.needs_flusher:
            writer.deferred_sync = True  # fsync never runs on the event loop
        self.stats = RecorderStats()
        # The wire capture the links call once per frame; None when the journal's mode is
        # "off", so a session without capture does no work per frame.
        self.capture: WireCapture | None = None
        mode = writer.capture if capture is None else capture
        if mode != "off":
            self.capture = WireCapture(
                writer,
                mode,
                mono_ns=lambda: int(clock.now() * 1e9),
                wall_ns=clock.wall_ns,
                next_seq=lambda: self._expected_seq,
            )

    @property
    def next_seq(self) -> int:
        """The sequence number the next recorded event gets."""
        return self._expected_seq

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(events, epoch)`` after each batch is recorded."""
        self._listeners.append(listener)

    def record(self, events: Sequence[Event], epoch: int = 0) -> None:
        """Fold, journal, then act on ``events``. See the module docstring.

        Args:
            events: One batch, recorded as one journal append.
            epoch: The connection the events came from (0: not from a connection).

        Raises:
            antiphon.errors.JournalError: the journal could not take the batch (nothing of it
                was acted on; batches queued by listeners are discarded with it).
        """
        if self.journal_error is not None:
            raise JournalError(f"the journal failed earlier: {self.journal_error}")
        if not events:
            return
        self._queue.append((events, epoch))
        if self._recording:
            return  # a listener recorded: the outermost call records it next, in order
        self._recording = True
        try:
            while self._queue:
                batch, batch_epoch = self._queue.popleft()
                self._record_batch(batch, batch_epoch)
        finally:
            self._recording = False
            self._queue.clear()

    def _record_batch(self, events: Sequence[Event], epoch: int) -> None:
        if epoch and epoch < self.epoch:
            self.stats.dropped_stale += len(events)
            return
        stamped = [self._stamp(e) for e in events]
        new_state = fold(stamped, self.state)
        try:
            appended = self._writer.append(
                stamped,
                expected_seq=self._expected_seq,
                epoch=epoch or self.state.epoch,
                mono_ns=int(self._clock.now() * 1e9),
                wall_ns=self._clock.wall_ns(),
                state=new_state,
            )
        except JournalError as exc:
            self._journal_failed(exc)
            raise
        self._expected_seq = appended.next_seq
        self._appended.set()
        self.state = new_state
        self.stats.batches += 1
        self.stats.events += len(events)
        for event in stamped:  # inline audio still: the app gets the PCM, the journal a span
            for app_event in self._mapper.app_events(event):
                self.emit(app_event)
        for listener in self._listeners:
            listener(stamped, epoch)

    def _stamp(self, event: Event) -> Event:
        """Stamp what needs the time of receipt (a resumption handle's arrival)."""
        if isinstance(event, ResumptionHandleUpdated) and not event.received_at_s:
            return replace(event, received_at_s=self._clock.wall_ns() / 1e9)
        return event

    def _journal_failed(self, error: JournalError) -> None:
        if self.journal_error is None:
            self.journal_error = error
            if self._on_journal_failure is not None:
                self._on_journal_failure(error)

    def emit(self, event: SessionEvent) -> None:
        """Hand an app event to ``Session.events()``; dropped and counted when nobody reads."""
        try:
            self._app_send.send_nowait(event)
        except anyio.WouldBlock:
            self.stats.app_events_dropped += 1
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # nobody will read events any more

    def close_app_events(self) -> None:
        """No more app events: ``Session.events()`` ends after what is buffered."""
        self._app_send.close()

    async def run_flusher(
        self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Meet the journal's batch durability off the event loop (a supervised task)."""
        writer = self._writer
        writer.deferred_sync = True
        task_status.started()
        while True:
            deadline = writer.flush_deadline
            if deadline is None:
                # Nothing waits for an fsync: sleep until the next append.
                self._appended = anyio.Event()
                await self._appended.wait()
                continue
            delay = deadline - time.monotonic()
            if delay > 0:
                await anyio.sleep(delay)
                continue
            try:
                await anyio.to_thread.run_sync(writer.flush)
            except JournalError as exc:
                # Not a reason to restart anything: the session ends once, with the error.
                self._journal_failed(exc)
                await anyio.sleep_forever()  # nothing more to flush; the session is ending

    def statistics(self) -> RecorderStats:
        return replace(self.stats, epoch=self.epoch)
