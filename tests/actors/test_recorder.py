"""The recorder: fold, journal, app events — in journal order, also when recording nests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest

from antiphon.actors import ManualClock
from antiphon.actors.recorder import Recorder
from antiphon.errors import JournalError
from antiphon.events import ReplyEnded, ReplyStarted, SessionEvent
from antiphon.journal import FileJournal, MemoryJournal
from antiphon.protocol import (
    Event,
    GenerationEnded,
    GenerationEndReason,
    GenerationStarted,
    GenerationTextDelta,
    SessionStarted,
    SessionState,
    ToolCallFinished,
    ToolCallRequested,
)

pytestmark = pytest.mark.anyio


def new_recorder() -> tuple[Recorder, MemoryJournal]:
    journal = MemoryJournal()
    recorder = Recorder(state=SessionState(), writer=journal.writer("s"), clock=ManualClock())
    recorder.record([SessionStarted(session_id="s", provider="scripted")])
    return recorder, journal


def drain(recorder: Recorder) -> list[SessionEvent]:
    out: list[SessionEvent] = []
    while True:
        try:
            out.append(recorder.app_events.receive_nowait())
        except anyio.WouldBlock:
            return out


async def test_nested_record_keeps_journal_order_for_app_events() -> None:
    """A listener that records at once (the executor's mailbox is full, so the call's error
    output is recorded inside the dispatch of its request) must not make the app see the
    output before the request."""
    recorder, journal = new_recorder()

    def refuse_calls(events: Sequence[Event], epoch: int) -> None:
        for event in events:
            if isinstance(event, ToolCallRequested):
                recorder.record(
                    [ToolCallFinished(call_id=event.call_id, name=event.name, output="busy")]
                )

    recorder.subscribe(refuse_calls)
    recorder.record([ToolCallRequested(call_id="c1", name="lookup")])

    app = [type(e).__name__ for e in drain(recorder)]
    assert app == ["ToolCallRequested", "ToolCallFinished"]
    journalled = [type(e).__name__ for e in journal.events("s")]
    assert journalled == ["SessionStarted", "ToolCallRequested", "ToolCallFinished"]
    assert recorder.state.pending_tool("c1") is not None


async def test_listeners_see_batches_in_journal_order() -> None:
    recorder, _ = new_recorder()
    seen: list[list[str]] = []

    def first(events: Sequence[Event], epoch: int) -> None:
        seen.append([type(e).__name__ for e in events])
        if isinstance(events[0], GenerationStarted):
            recorder.record([GenerationTextDelta(generation_id="g", text="hi")])

    def second(events: Sequence[Event], epoch: int) -> None:
        # The nested batch is recorded only after every listener saw the current one.
        seen.append(["second:" + type(e).__name__ for e in events])

    recorder.subscribe(first)
    recorder.subscribe(second)
    recorder.record([GenerationStarted(generation_id="g")])
    assert seen == [
        ["GenerationStarted"],
        ["second:GenerationStarted"],
        ["GenerationTextDelta"],
        ["second:GenerationTextDelta"],
    ]


async def test_reply_ended_carries_the_whole_transcript() -> None:
    recorder, _ = new_recorder()
    recorder.record(
        [
            GenerationStarted(generation_id="g"),
            GenerationTextDelta(generation_id="g", text="Hello, "),
            GenerationTextDelta(generation_id="g", text="there."),
            GenerationEnded(generation_id="g", reason=GenerationEndReason.COMPLETED),
        ]
    )
    events = drain(recorder)
    assert isinstance(events[0], ReplyStarted)
    ended = events[-1]
    assert isinstance(ended, ReplyEnded)
    assert ended.text == "Hello, there."


async def test_events_of_an_older_connection_are_dropped() -> None:
    recorder, journal = new_recorder()
    recorder.epoch = 3
    recorder.record([GenerationStarted(generation_id="stale")], 2)
    assert recorder.state.generation is None
    assert recorder.statistics().dropped_stale == 1
    assert [type(e).__name__ for e in journal.events("s")] == ["SessionStarted"]


async def test_a_failed_append_acts_on_nothing() -> None:
    journal = MemoryJournal()
    writer = journal.writer("s")
    recorder = Recorder(state=SessionState(), writer=writer, clock=ManualClock())
    acted: list[Sequence[Event]] = []
    recorder.subscribe(lambda events, epoch: acted.append(events))
    writer.close()
    with pytest.raises(JournalError, match="closed"):
        recorder.record([GenerationStarted(generation_id="g")])
    assert acted == []
    assert recorder.state.generation is None
    assert drain(recorder) == []


class _OwnerFlushedJournal(MemoryJournal):
    """A journal whose owner must call ``flush`` by its deadline (as Redis renews its lease)."""

    flushes_itself = False


async def test_only_a_journal_that_needs_an_owner_gets_a_flusher_task(tmp_path: Path) -> None:
    file_writer = FileJournal(tmp_path).writer("s")
    for writer in (file_writer, MemoryJournal().writer("s")):
        recorder = Recorder(state=SessionState(), writer=writer, clock=ManualClock())
        assert not recorder.needs_flusher  # the journal syncs on its own
        assert writer.deferred_sync  # and never on the event loop
    file_writer.close()
    owned = _OwnerFlushedJournal().writer("s")
    assert Recorder(state=SessionState(), writer=owned, clock=ManualClock()).needs_flusher
