"""The journal conformance suite: one set of tests that every journal backend passes.

A backend, in this repository or outside it, runs the suite by subclassing
:class:`JournalConformance` in a pytest test module and saying how to make a fresh, empty
journal::

    from antiphon.testing import JournalConformance

    class TestRedisJournal(JournalConformance):
        def make_journal(self, tmp_path, *, snapshot_every=1000):
            return RedisJournal(REDIS_URL, prefix=tmp_path.name, snapshot_every=snapshot_every)

        def reopen(self, journal, tmp_path):
            return RedisJournal(REDIS_URL, prefix=tmp_path.name)

The suite checks the contract documented on :class:`~antiphon.journal.JournalBackend`:
records round-trip with their header, appends are conditional on the expected sequence (a
writer that was overtaken is refused, nothing interleaves), one writer per stream and taking a
stream over, audio spans and the writer's spilling of inline audio, snapshots and replay.

This module needs pytest and hypothesis (``pip install 'antiphon[testing]'``); importing
:mod:`antiphon.testing` itself does not.
"""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from antiphon.errors import JournalConflict, JournalError
from antiphon.journal import JournalBackend, Record, WireCapture, frame_payload, read_capture
from antiphon.protocol import (
    SCHEMA_VERSION,
    AudioSpan,
    ConnectionOpened,
    Event,
    GenerationAudioDelta,
    GenerationEnded,
    GenerationEndReason,
    GenerationStarted,
    GenerationTextDelta,
    InputTranscriptFinal,
    OptionsUpdated,
    SessionStarted,
    SessionState,
    ToolCallFinished,
    ToolCallRequested,
    UserAudio,
    event_tag,
    fold,
)

__all__ = ["JournalConformance", "conversation"]


def conversation() -> list[Event]:
    """Eleven events of a short conversation with a tool call (no audio)."""
    return [
        SessionStarted(session_id="s1", provider="openai", instructions="be brief"),
        ConnectionOpened(epoch=1),
        InputTranscriptFinal(item_id="u1", text="what is the weather?"),
        GenerationStarted(generation_id="g1"),
        GenerationTextDelta(generation_id="g1", item_id="a1", text="Let me check. "),
        ToolCallRequested(call_id="c1", name="get_weather", arguments='{"city":"Lisbon"}'),
        ToolCallFinished(call_id="c1", name="get_weather", output='{"temp_c":21}'),
        GenerationEnded(generation_id="g1", reason=GenerationEndReason.TOOL_CALL),
        GenerationStarted(generation_id="g2"),
        GenerationTextDelta(generation_id="g2", item_id="a2", text="It is 21 degrees."),
        GenerationEnded(generation_id="g2", reason=GenerationEndReason.COMPLETED),
    ]


def _append_all(journal: JournalBackend, session_id: str, events: list[Event]) -> int:
    writer = journal.writer(session_id)
    try:
        seq = writer.next_seq
        for i in range(0, len(events), 3):
            seq = writer.append(
                events[i : i + 3],
                expected_seq=seq,
                epoch=1,
                mono_ns=1_000 + i,
                wall_ns=2_000_000_000 + i * 1_000_000,
            ).next_seq
        return seq
    finally:
        writer.close()


class JournalConformance:
    """The journal contract as tests. Subclass it (named ``Test...``) and implement
    :meth:`make_journal`; override :meth:`reopen` for a backend that outlives its object.

    The ``journal`` fixture is a fresh journal from :meth:`make_journal`; tests that need
    other options or several journals call :meth:`make_journal` themselves.

    Attributes:
        fences_on_take_over: True for a backend with fencing (the Redis journal): granting a
            stream to a new writer refuses every later write of the earlier one at once, even
            before the new writer appends (a stricter form of "whichever appends second").
    """

    fences_on_take_over = False

    def make_journal(self, tmp_path: Path, *, snapshot_every: int = 1000) -> JournalBackend:
        """A new, empty journal.

        Args:
            tmp_path: A fresh directory for this journal alone (a backend that keeps no files
                may use its name to keep journals apart).
            snapshot_every: Pass on to the backend.
        """
        raise NotImplementedError("subclasses return a journal")

    def reopen(self, journal: JournalBackend, tmp_path: Path) -> JournalBackend:
        """The same store seen by a new journal object, as a new process would see it, after
        ``journal`` was closed. The default returns ``journal`` (a store that lives in it)."""
        return journal

    @pytest.fixture
    def journal(self, tmp_path: Path) -> JournalBackend:
        return self.make_journal(tmp_path)

    # --- records --------------------------------------------------------------------------

    def test_empty_journal_has_no_sessions(self, journal: JournalBackend) -> None:
        assert journal.sessions() == []
        with pytest.raises(JournalError, match="no session"):
            list(journal.records("missing"))
        with pytest.raises(JournalError):
            journal.replay("missing")

    def test_records_round_trip_with_header(self, journal: JournalBackend) -> None:
        events = conversation()
        writer = journal.writer("s1")
        assert writer.next_seq == 0
        first = writer.append(events[:4], expected_seq=0, epoch=1, mono_ns=5, wall_ns=7)
        assert (first.first_seq, first.next_seq, first.events) == (0, 4, tuple(events[:4]))
        assert (
            writer.append(events[4:], expected_seq=4, epoch=2, mono_ns=6, wall_ns=8).next_seq == 11
        )
        assert writer.next_seq == 11
        writer.close()
        records = list(journal.records("s1"))
        assert [r.event for r in records] == events
        assert [r.seq for r in records] == list(range(11))
        assert records[0] == Record(
            session_id="s1",
            seq=0,
            mono_ns=5,
            wall_ns=7,
            epoch=1,
            tag="session.started",
            schema=SCHEMA_VERSION,
            event=events[0],
        )
        assert [r.epoch for r in records] == [1] * 4 + [2] * 7
        assert all(r.tag == event_tag(r.event) for r in records)
        assert list(journal.events("s1")) == events
        assert journal.sessions() == ["s1"]

    def test_records_are_readable_once_appended(self, journal: JournalBackend) -> None:
        writer = journal.writer("s1")
        writer.append(conversation()[:2], expected_seq=0, epoch=1, mono_ns=0, wall_ns=0)
        assert list(journal.events("s1")) == conversation()[:2]
        writer.close()

    def test_start_seq(self, journal: JournalBackend) -> None:
        _append_all(journal, "s1", conversation())
        assert [r.seq for r in journal.records("s1", start_seq=7)] == [7, 8, 9, 10]
        assert list(journal.records("s1", start_seq=11)) == []

    def test_unencodable_event_leaves_stream_unchanged(self, journal: JournalBackend) -> None:
        writer = journal.writer("s1")
        writer.append(conversation()[:1], expected_seq=0, epoch=1, mono_ns=0, wall_ns=0)
        bad = [conversation()[1], OptionsUpdated(options={"x": object()})]
        with pytest.raises(JournalError, match=r"options\.updated"):
            writer.append(bad, expected_seq=1, epoch=1, mono_ns=0, wall_ns=0)
        assert writer.next_seq == 1
        writer.append(conversation()[1:2], expected_seq=1, epoch=1, mono_ns=0, wall_ns=0)
        writer.close()
        assert list(journal.events("s1")) == conversation()[:2]

    # --- the expected sequence --------------------------------------------------------------

    def test_conflict_on_wrong_expected_seq(self, journal: JournalBackend) -> None:
        writer = journal.writer("s1")
        writer.append(conversation()[:2], expected_seq=0, epoch=1, mono_ns=0, wall_ns=0)
        for wrong in (0, 1, 3):
            with pytest.raises(JournalConflict) as info:
                writer.append(
                    conversation()[2:3], expected_seq=wrong, epoch=1, mono_ns=0, wall_ns=0
                )
            assert (info.value.expected_seq, info.value.actual_seq) == (wrong, 2)
        assert writer.next_seq == 2
        writer.close()
        assert len(list(journal.records("s1"))) == 2

    def test_empty_append_is_a_no_op(self, journal: JournalBackend) -> None:
        writer = journal.writer("s1")
        assert writer.append([], expected_seq=0, epoch=1, mono_ns=0, wall_ns=0).next_seq == 0
        with pytest.raises(JournalConflict):
            writer.append([], expected_seq=3, epoch=1, mono_ns=0, wall_ns=0)
        writer.close()
        assert list(journal.records("s1")) == []

    def test_a_writer_that_was_overtaken_is_refused(self, journal: JournalBackend) -> None:
        events = conversation()
        old = journal.writer("s1")
        old_seq = old.append(events[:2], expected_seq=0, epoch=1, mono_ns=0, wall_ns=0).next_seq
        # The old writer's process looks dead, so another takes the stream over...
        new = journal.writer("s1", take_over=True)
        assert new.next_seq == 2
        new_seq = new.append(events[2:5], expected_seq=2, epoch=2, mono_ns=0, wall_ns=0).next_seq
        # ...but it was alive, and appends with the sequence it believes in.
        with pytest.raises(JournalConflict) as info:
            old.append(events[5:6], expected_seq=old_seq, epoch=1, mono_ns=0, wall_ns=0)
        assert (info.value.expected_seq, info.value.actual_seq) == (2, 5)
        new.append(events[5:], expected_seq=new_seq, epoch=2, mono_ns=0, wall_ns=0)
        old.close()  # releases nothing of the new holder's
        with pytest.raises(JournalError, match="already open"):
            journal.writer("s1")
        new.close()
        assert list(journal.events("s1")) == events  # nothing interleaved
        assert [r.epoch for r in journal.records("s1")] == [1] * 2 + [2] * 9

    def test_the_second_of_two_writers_to_append_is_refused(self, journal: JournalBackend) -> None:
        events = conversation()
        old = journal.writer("s1")
        old.append(events[:2], expected_seq=0, epoch=1, mono_ns=0, wall_ns=0)
        new = journal.writer("s1", take_over=True)
        if self.fences_on_take_over:
            with pytest.raises(JournalConflict):
                old.append(events[2:4], expected_seq=2, epoch=1, mono_ns=0, wall_ns=0)
            new.append(events[2:4], expected_seq=new.next_seq, epoch=2, mono_ns=0, wall_ns=0)
            old.close()  # releases nothing of the new holder's
            new.close()
            assert [r.epoch for r in journal.records("s1")] == [1, 1, 2, 2]
            return
        old.append(events[2:4], expected_seq=2, epoch=1, mono_ns=0, wall_ns=0)
        with pytest.raises(JournalConflict) as info:
            new.append(events[2:3], expected_seq=new.next_seq, epoch=2, mono_ns=0, wall_ns=0)
        assert (info.value.expected_seq, info.value.actual_seq) == (2, 4)
        old.close()
        new.close()
        assert list(journal.events("s1")) == events[:4]
        fresh = journal.writer("s1")  # a writer opened now starts at the real end
        assert fresh.next_seq == 4
        fresh.close()

    # --- writers ------------------------------------------------------------------------------

    def test_one_writer_per_stream(self, journal: JournalBackend) -> None:
        first = journal.writer("s1")
        with pytest.raises(JournalError, match="already open"):
            journal.writer("s1")
        other = journal.writer("s2")  # other streams are independent
        other.close()
        first.append(conversation()[:3], expected_seq=0, epoch=1, mono_ns=0, wall_ns=0)
        first.close()
        again = journal.writer("s1")
        assert again.next_seq == 3
        again.close()

    def test_writer_continues_after_reopen(self, journal: JournalBackend, tmp_path: Path) -> None:
        events = conversation()
        _append_all(journal, "s1", events[:5])
        journal.close()
        journal = self.reopen(journal, tmp_path)
        writer = journal.writer("s1")
        assert writer.next_seq == 5
        writer.append(events[5:], expected_seq=5, epoch=1, mono_ns=0, wall_ns=0)
        writer.close()
        assert list(journal.events("s1")) == events

    def test_closed_writer_refuses(self, journal: JournalBackend) -> None:
        writer = journal.writer("s1")
        writer.close()
        with pytest.raises(JournalError, match="closed"):
            writer.append(conversation()[:1], expected_seq=0, epoch=1, mono_ns=0, wall_ns=0)
        with pytest.raises(JournalError, match="closed"):
            writer.write_audio("user", b"\0\0", 16_000)

    def test_closing_the_journal_closes_its_writers(self, journal: JournalBackend) -> None:
        writer = journal.writer("s1")
        journal.close()
        assert writer.closed
        journal.writer("s1").close()

    # --- audio --------------------------------------------------------------------------------

    def test_audio_spans(self, journal: JournalBackend) -> None:
        writer = journal.writer("s1")
        a = writer.write_audio("user", b"\x01\x00" * 160, 16_000)
        b = writer.write_audio("user", b"\x02\x00" * 80, 16_000)
        c = writer.write_audio("assistant", b"\x03\x00" * 240, 24_000)
        assert a == AudioSpan(stream="user", offset=0, length=320, sample_rate=16_000)
        assert (b.offset, b.length, c.offset) == (320, 160, 0)
        events: list[Event] = [
            UserAudio(epoch=1, frames=1, span=a),
            GenerationAudioDelta(generation_id="g1", span=c),
        ]
        writer.append(events, expected_seq=0, epoch=1, mono_ns=0, wall_ns=0)
        writer.close()
        assert journal.read_audio("s1", a) == b"\x01\x00" * 160
        assert journal.read_audio("s1", b) == b"\x02\x00" * 80
        assert journal.read_audio("s1", c) == b"\x03\x00" * 240
        assert journal.audio("s1", "user") == (b"\x01\x00" * 160 + b"\x02\x00" * 80, 16_000)
        assert journal.audio("s1", "assistant") == (b"\x03\x00" * 240, 24_000)
        outside = AudioSpan(stream="user", offset=400, length=200, sample_rate=16_000)
        with pytest.raises(JournalError, match="outside"):
            journal.read_audio("s1", outside)

    def test_write_audio_validates(self, journal: JournalBackend) -> None:
        writer = journal.writer("s1")
        with pytest.raises(JournalError, match="stream"):
            writer.write_audio("music", b"\0\0", 16_000)
        with pytest.raises(JournalError, match="even"):
            writer.write_audio("user", b"\0\0\0", 16_000)
        writer.write_audio("user", b"\0\0", 16_000)
        with pytest.raises(JournalError, match="16000 Hz"):
            writer.write_audio("user", b"\0\0", 24_000)
        writer.close()
        writer = journal.writer("s1")  # the stream's rate outlives its writer
        with pytest.raises(JournalError, match="16000 Hz"):
            writer.write_audio("user", b"\0\0", 24_000)
        writer.close()

    def test_inline_audio_is_moved_to_the_audio_store(self, journal: JournalBackend) -> None:
        writer = journal.writer("s1")
        writer.write_audio("user", b"\x05\x00" * 4, 16_000)
        pcm_out = bytes(range(200))
        pcm_in = bytes(range(100, 164))
        events: list[Event] = [
            GenerationAudioDelta(generation_id="g1", sample_rate=24_000, audio=pcm_out),
            GenerationTextDelta(generation_id="g1", text="hi"),
            UserAudio(epoch=1, frames=2, sample_rate=16_000, audio=pcm_in),
        ]
        appended = writer.append(events, expected_seq=0, epoch=1, mono_ns=0, wall_ns=0)
        writer.close()
        stored = list(journal.events("s1"))
        assert list(appended.events) == stored  # the caller gets what was journalled
        assert isinstance(stored[0], GenerationAudioDelta)
        assert isinstance(stored[2], UserAudio)
        assert stored[0].audio == b""
        assert stored[2].audio == b""
        assert stored[1] == events[1]
        assert stored[0].span == AudioSpan(
            stream="assistant", offset=0, length=200, sample_rate=24_000
        )
        assert stored[2].span == AudioSpan(stream="user", offset=8, length=64, sample_rate=16_000)
        assert journal.read_audio("s1", stored[0].span) == pcm_out
        assert journal.read_audio("s1", stored[2].span) == pcm_in
        # The reducer counts the same audio bytes either way.
        assert journal.replay("s1") == fold(events)
        assert fold(appended.events) == fold(events)

    def test_inline_audio_is_stored_at_its_own_rate(self, journal: JournalBackend) -> None:
        writer = journal.writer("s1")
        events: list[Event] = [
            UserAudio(epoch=1, frames=1, sample_rate=24_000, audio=b"\x01\x00" * 48),
            GenerationAudioDelta(generation_id="g1", sample_rate=16_000, audio=b"\x02\x00" * 32),
        ]
        appended = writer.append(events, expected_seq=0, epoch=1, mono_ns=0, wall_ns=0)
        assert [e.span for e in appended.events] == [  # type: ignore[union-attr]
            AudioSpan(stream="user", offset=0, length=96, sample_rate=24_000),
            AudioSpan(stream="assistant", offset=0, length=64, sample_rate=16_000),
        ]
        wrong = UserAudio(epoch=1, frames=1, sample_rate=16_000, audio=b"\0\0")
        with pytest.raises(JournalError, match="24000 Hz"):
            writer.append([wrong], expected_seq=2, epoch=1, mono_ns=0, wall_ns=0)
        assert writer.next_seq == 2
        writer.close()
        assert journal.audio("s1", "user") == (b"\x01\x00" * 48, 24_000)
        assert journal.audio("s1", "assistant") == (b"\x02\x00" * 32, 16_000)

    def test_wire_capture_round_trips(self, journal: JournalBackend) -> None:
        # Capture lives in two byte streams of the audio store ("wire", "wire-audio"): a
        # backend that stores every stream of AUDIO_STREAMS keeps it with no code of its own.
        writer = journal.writer("s1")
        capture = WireCapture(
            writer, "full", mono_ns=lambda: 7, wall_ns=lambda: 9, next_seq=lambda: writer.next_seq
        )
        audio = base64.b64encode(bytes(range(200)) * 3).decode()
        sent = '{"type":"input_audio_buffer.append","audio":"' + audio + '"}'
        capture.sent(1, sent, audio_index=0)
        capture.received(1, b'{"type":"session.created","session":{"id":"x"}}')
        writer.close()
        frames = read_capture(journal, "s1")
        assert [(f.direction, f.index, f.epoch, f.mono_ns) for f in frames] == [
            ("sent", 0, 1, 7),
            ("received", 0, 1, 7),
        ]
        assert capture.errors == 0
        assert frame_payload(journal, "s1", frames[0]) == sent
        assert frame_payload(journal, "s1", frames[1]) == (
            b'{"type":"session.created","session":{"id":"x"}}'
        )

    # --- snapshots and replay -----------------------------------------------------------------

    def test_replay_equals_fold(self, tmp_path: Path) -> None:
        journal = self.make_journal(tmp_path, snapshot_every=4)
        events = conversation()
        writer = journal.writer("s1")
        state = SessionState()
        for event in events:
            state = fold([event], state)
            writer.append(
                [event], expected_seq=writer.next_seq, epoch=1, mono_ns=0, wall_ns=0, state=state
            )
        writer.close()
        assert journal.replay("s1") == fold(events)
        assert journal.replay("s1").instructions == "be brief"
        assert journal.snapshot_seqs("s1")  # at least the newest is kept

    def test_replay_starts_from_the_newest_snapshot(self, tmp_path: Path) -> None:
        journal = self.make_journal(tmp_path, snapshot_every=5)
        events = conversation()
        marked = msgspec.structs.replace(fold(events[:6]), instructions="from the snapshot")
        writer = journal.writer("s1")
        writer.append(events[:6], expected_seq=0, epoch=1, mono_ns=0, wall_ns=0, state=marked)
        writer.append(events[6:], expected_seq=6, epoch=1, mono_ns=0, wall_ns=0)
        writer.close()
        replayed = journal.replay("s1")
        assert replayed.instructions == "from the snapshot"  # proves the snapshot was used
        assert replayed == msgspec.structs.replace(fold(events), instructions="from the snapshot")

    # The same test method runs once per backend subclass, which is what this check flags.
    @settings(
        max_examples=25, deadline=None, suppress_health_check=[HealthCheck.differing_executors]
    )
    @given(
        texts=st.lists(st.text(max_size=40), min_size=1, max_size=30),
        sizes=st.lists(st.integers(1, 4), min_size=1, max_size=30),
    )
    def test_any_batching_round_trips(self, texts: list[str], sizes: list[int]) -> None:
        events: list[Event] = [
            GenerationTextDelta(generation_id="g", item_id=str(i), text=t)
            for i, t in enumerate(texts)
        ]
        with tempfile.TemporaryDirectory() as tmp:
            journal = self.make_journal(Path(tmp))
            writer = journal.writer("s")
            i = k = 0
            while i < len(events):
                n = sizes[k % len(sizes)]
                writer.append(events[i : i + n], expected_seq=i, epoch=k, mono_ns=i, wall_ns=i)
                i += n
                k += 1
            writer.close()
            assert list(journal.events("s")) == events
            assert [r.seq for r in journal.records("s")] == list(range(len(events)))
            journal.close()
