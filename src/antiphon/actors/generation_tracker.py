"""generation-tracker: reducer + journal (write-ahead) + app-facing events.

How this works: every state change of the session passes through :meth:`record`, a
synchronous call (so it is atomic with respect to the other actors on the event loop):

1. inline audio is moved to the journal's audio store, leaving a span in the event (and a
   resumption handle is stamped with the time it arrived);
2. the events are folded into :class:`SessionState` with the pure reducer;
3. they are appended to the journal — *before* anything acts on them (write-ahead: a tool
   runs only after its ``ToolCallRequested`` is recorded, a result is delivered only after
   its ``ToolCallFinished`` is);
4. only then are listeners (tool executor, connection manager) told, and app events emitted.

With a batch durability policy the fsyncs are deferred and run by this actor in a worker
thread when due (``_flush_journal``), so they never stall the event loop.

Provider events arrive through the mailbox from transport-recv, tagged with the connection
epoch; the tracker drops events of an epoch older than the current connection's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import anyio
from anyio.abc import TaskStatus
from msgspec.structs import replace

from ..journal import JournalWriter
from ..protocol import (
    Event,
    GenerationAudioDelta,
    GenerationEnded,
    GenerationStarted,
    GenerationTextDelta,
    InputTranscriptDelta,
    InputTranscriptFinal,
    ProviderErrorEvent,
    ResumptionHandleUpdated,
    SessionState,
    ToolCallFinished,
    ToolCallRequested,
    UserAudio,
    fold,
)
from ..protocol import UserSpeechStarted as _SpeechStarted
from ..protocol import UserSpeechStopped as _SpeechStopped
from ._actor import Actor
from ._clock import Clock
from ._session_events import (
    AssistantAudio,
    AssistantText,
    ProviderNotice,
    ReplyEnded,
    ReplyStarted,
    SessionEvent,
    ToolCallEnded,
    ToolCallStarted,
    UserSpeechStarted,
    UserSpeechStopped,
    UserTranscript,
)

# 256 decoded frames: ~5 s of 20 ms assistant audio deltas. When full, transport-recv waits,
# which back-pressures the provider's socket instead of dropping anything.
MAILBOX_SIZE = 256
# App events buffered for ``Session.events()``: ~80 s of audio deltas. An app that does not
# read events must not stall the session, so overflow drops the newest and counts it.
APP_EVENTS_SIZE = 4096

# How often to look for records waiting for an fsync when there were none last time.
JOURNAL_IDLE_CHECK_S = 0.05

Listener = Callable[[Sequence[Event], int], None]


class GenerationTracker(Actor[Sequence[Event]]):
    """The generation-tracker actor. See the module docstring."""

    def __init__(self, *, state: SessionState, writer: JournalWriter, clock: Clock) -> None:
        super().__init__("generation-tracker", mailbox_size=MAILBOX_SIZE)
        self.state = state
        self.writer = writer
        self.clock = clock
        self._listeners: list[Listener] = []
        self._app_send, self.app_events = anyio.create_memory_object_stream[SessionEvent](
            APP_EVENTS_SIZE
        )
        self.app_events_dropped = 0
        self._reply_text: dict[str, list[str]] = {}

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._flush_journal)
            await super().run(task_status=task_status)

    async def _flush_journal(self) -> None:
        """Meet the journal's batch durability without ever fsyncing on the event loop: the
        writer defers its fsyncs, and this task runs them in a worker thread when due."""
        writer = self.writer
        writer.deferred_sync = True
        while True:
            deadline = writer.flush_deadline
            if deadline is None:
                await anyio.sleep(JOURNAL_IDLE_CHECK_S)
                continue
            delay = deadline - time.monotonic()
            if delay > 0:
                await anyio.sleep(delay)
                continue
            await anyio.to_thread.run_sync(writer.flush)

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(events, epoch)`` after each batch is recorded."""
        self._listeners.append(listener)

    async def handle(self, message: Sequence[Event], epoch: int) -> None:
        self.record(message, epoch=epoch)

    def record(self, events: Sequence[Event], *, epoch: int = 0) -> None:
        """Fold, journal, then act on ``events``. See the module docstring.

        ``epoch``: the connection the events came from (0: not from a connection). Events of
        an epoch older than the current one are dropped and counted.
        """
        if not events:
            return
        if epoch and epoch < self.epoch:
            self.stats.dropped_stale += 1
            return
        stored = [self._stamp(e) for e in events]
        new_state = fold(stored, self.state)
        self.writer.append(
            stored,
            expected_seq=self.writer.next_seq,
            epoch=epoch or self.state.epoch,
            mono_ns=int(self.clock.now() * 1e9),
            wall_ns=self.clock.wall_ns(),
            state=new_state,
        )
        self.state = new_state
        self.stats.handled += 1
        for listener in self._listeners:
            listener(events, epoch)
        for event in events:
            self._emit_for(event)

    def _stamp(self, event: Event) -> Event:
        """Move inline audio to the audio store; stamp what needs the time of receipt."""
        if isinstance(event, ResumptionHandleUpdated) and not event.received_at_s:
            return replace(event, received_at_s=self.clock.wall_ns() / 1e9)
        return self._store_audio(event)

    def _store_audio(self, event: Event) -> Event:
        if isinstance(event, UserAudio) and event.audio:
            span = self.writer.write_audio("user", event.audio, event.sample_rate)
            return replace(event, audio=b"", span=span)
        if isinstance(event, GenerationAudioDelta) and event.audio:
            span = self.writer.write_audio("assistant", event.audio, event.sample_rate)
            return replace(event, audio=b"", span=span)
        return event

    def emit(self, event: SessionEvent) -> None:
        try:
            self._app_send.send_nowait(event)
        except anyio.WouldBlock:
            self.app_events_dropped += 1
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # nobody will read events any more

    def _emit_for(self, event: Event) -> None:
        match event:
            case GenerationAudioDelta():
                self.emit(
                    AssistantAudio(
                        generation_id=event.generation_id,
                        pcm=event.audio,
                        sample_rate=event.sample_rate,
                    )
                )
            case GenerationTextDelta():
                self._reply_text.setdefault(event.generation_id, []).append(event.text)
                self.emit(AssistantText(generation_id=event.generation_id, text=event.text))
            case GenerationStarted():
                self.emit(ReplyStarted(generation_id=event.generation_id))
            case GenerationEnded():
                text = "".join(self._reply_text.pop(event.generation_id, ()))
                self.emit(
                    ReplyEnded(generation_id=event.generation_id, reason=event.reason, text=text)
                )
            case _SpeechStarted():
                self.emit(UserSpeechStarted())
            case _SpeechStopped():
                self.emit(UserSpeechStopped())
            case InputTranscriptDelta():
                self.emit(UserTranscript(item_id=event.item_id, text=event.text, final=False))
            case InputTranscriptFinal():
                self.emit(UserTranscript(item_id=event.item_id, text=event.text, final=True))
            case ToolCallRequested():
                self.emit(
                    ToolCallStarted(
                        call_id=event.call_id, name=event.name, arguments=event.arguments
                    )
                )
            case ToolCallFinished():
                self.emit(
                    ToolCallEnded(
                        call_id=event.call_id,
                        name=event.name,
                        outcome=event.outcome,
                        output=event.output,
                    )
                )
            case ProviderErrorEvent():
                self.emit(
                    ProviderNotice(
                        code=event.code, message=event.message, recoverable=event.recoverable
                    )
                )
            case _:
                pass

    def close_app_events(self) -> None:
        self._app_send.close()
