"""File backend: framing, torn tails, damage in the middle, segments, snapshots, locking."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from antiphon.errors import JournalConflict, JournalCorrupt, JournalError, NotAJournal
from antiphon.journal import Durability, FileJournal, JournalWriter, check, open_journal
from antiphon.journal._file import SyncScope, filesystem_sync_for, mount_of
from antiphon.protocol import (
    SCHEMA_VERSION,
    Event,
    GenerationTextDelta,
    InputTranscriptDelta,
    SessionState,
    fold,
)
from antiphon.protocol import _events as protocol_events

HEADER = 16  # segment header: magic + first seq
FRAME = struct.Struct("<II")


def text_events(n: int, width: int = 12) -> list[Event]:
    return [
        GenerationTextDelta(generation_id="g", item_id=f"i{i}", text=("w" * (i % width)) + str(i))
        for i in range(n)
    ]


def write_session(root: Path, events: list[Event], *, batch: int = 1, **options: object) -> Path:
    journal = FileJournal(root, durability=Durability.none(), **options)  # type: ignore[arg-type]
    writer = journal.writer("s")
    state = SessionState()
    for i in range(0, len(events), batch):
        state = fold(events[i : i + batch], state)
        writer.append(
            events[i : i + batch], expected_seq=i, epoch=1, mono_ns=i, wall_ns=i, state=state
        )
    writer.close()
    return root / "s"


def frame_ends(segment: Path) -> list[int]:
    """Byte offsets where each record of a segment ends."""
    data = segment.read_bytes()
    ends, pos = [], HEADER
    while pos < len(data):
        length, _ = FRAME.unpack_from(data, pos)
        pos += 8 + length
        ends.append(pos)
    return ends


def test_truncation_at_every_byte_keeps_exactly_the_complete_records(tmp_path: Path) -> None:
    events = text_events(12)
    session = write_session(tmp_path / "orig", events, batch=3)
    segment = session / "000000000000.seg"
    full = segment.read_bytes()
    ends = frame_ends(segment)
    work = tmp_path / "work"
    for cut in range(len(full) + 1):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(tmp_path / "orig", work)
        seg = work / "s" / "000000000000.seg"
        with seg.open("r+b") as f:
            f.truncate(cut)
        complete = sum(1 for end in ends if end <= cut)
        journal = FileJournal(work, create=False)
        # A reader sees exactly the complete records and changes nothing.
        assert list(journal.events("s")) == events[:complete], cut
        assert seg.stat().st_size == cut
        # A writer truncates the torn tail and continues right after the last complete record.
        writer = journal.writer("s")
        assert writer.next_seq == complete, cut
        writer.close()
        expected_size = 0 if cut < HEADER else max([HEADER, *[e for e in ends if e <= cut]])
        assert (seg.stat().st_size if seg.exists() else 0) == expected_size, cut
        assert journal.replay("s") == fold(events[:complete]), cut


@settings(max_examples=30, deadline=None)
@given(
    texts=st.lists(st.text(max_size=60), min_size=1, max_size=25),
    cut_fraction=st.floats(0, 1),
    tail=st.sampled_from([b"", b"\0" * 4096, b"\xff\xff\xff\x7f", b"\x05\0\0\0abc"]),
)
def test_truncated_or_garbage_tail_reopens_to_the_complete_prefix(
    texts: list[str], cut_fraction: float, tail: bytes
) -> None:
    events: list[Event] = [InputTranscriptDelta(item_id="u", text=t) for t in texts]
    with tempfile.TemporaryDirectory() as tmp:
        session = write_session(Path(tmp), events)
        seg = session / "000000000000.seg"
        ends = frame_ends(seg)
        cut = HEADER + round(cut_fraction * (ends[-1] - HEADER))
        data = seg.read_bytes()[:cut] + tail
        seg.write_bytes(data)
        complete = sum(1 for end in ends if end <= cut)
        journal = FileJournal(tmp)
        assert list(journal.events("s")) == events[:complete]
        writer = journal.writer("s")
        assert writer.next_seq == complete
        writer.append(events[:1], expected_seq=complete, epoch=1, mono_ns=0, wall_ns=0)
        writer.close()
        assert list(journal.events("s")) == [*events[:complete], events[0]]


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_damaged_record_in_the_middle_is_reported_never_skipped(tmp_path: Path) -> None:
    events = text_events(10)
    session = write_session(tmp_path, events)
    seg = session / "000000000000.seg"
    ends = frame_ends(seg)
    bad_offset = ends[3]  # record 4 starts here
    flip(seg, bad_offset + 8 + 5)  # a byte of its payload
    journal = FileJournal(tmp_path, create=False)
    seen: list[Event] = []
    with pytest.raises(JournalCorrupt) as info:
        seen.extend(journal.events("s"))
    assert seen == events[:4]
    assert info.value.offset == bad_offset
    assert info.value.path == str(seg)
    with pytest.raises(JournalCorrupt):
        journal.replay("s")
    with pytest.raises(JournalCorrupt):
        journal.writer("s")
    size = seg.stat().st_size
    report = check(tmp_path)
    assert not report.ok
    assert [(c.offset, c.path) for c in report.corrupt] == [(bad_offset, str(seg))]
    assert check(tmp_path, repair=True).corrupt == report.corrupt
    assert seg.stat().st_size == size  # nothing repaired, nothing lost
    journal.writer("t").close()  # the other streams stay writable


def test_damaged_length_in_the_middle_is_found_by_resync(tmp_path: Path) -> None:
    session = write_session(tmp_path, text_events(10))
    seg = session / "000000000000.seg"
    bad_offset = frame_ends(seg)[5]
    flip(seg, bad_offset + 1)  # the length field: the next frame boundary is lost
    with pytest.raises(JournalCorrupt) as info:
        list(FileJournal(tmp_path).events("s"))
    assert info.value.offset == bad_offset


def test_damaged_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    events = text_events(6)
    session = write_session(tmp_path, events)
    seg = session / "000000000000.seg"
    ends = frame_ends(seg)
    flip(seg, ends[-1] - 2)
    report = check(tmp_path)
    assert report.ok
    assert report.torn_tail is not None
    assert (report.torn_tail.offset, report.torn_tail.bytes) == (ends[-2], ends[-1] - ends[-2])
    assert report.records == 5
    repaired = check(tmp_path, repair=True)
    assert repaired.torn_tail is not None
    assert repaired.torn_tail.repaired
    assert seg.stat().st_size == ends[-2]
    assert check(tmp_path).torn_tail is None
    assert list(FileJournal(tmp_path).events("s")) == events[:5]


def test_valid_checksum_but_undecodable_record_is_corrupt(tmp_path: Path) -> None:
    session = write_session(tmp_path, text_events(3))
    seg = session / "000000000000.seg"
    payload = msgspec.msgpack.encode([3, 0, 0, 1, SCHEMA_VERSION, {"type": "no.such.event"}])
    import google_crc32c

    with seg.open("ab") as f:
        f.write(FRAME.pack(len(payload), google_crc32c.value(payload)) + payload)
    with pytest.raises(JournalCorrupt, match="undecodable"):
        list(FileJournal(tmp_path).events("s"))
    assert not check(tmp_path).ok


def test_old_tags_are_upgraded_on_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session = write_session(tmp_path, text_events(1))
    seg = session / "000000000000.seg"
    old = {"type": "assistant.text", "generation_id": "g", "text": "renamed"}
    payload = msgspec.msgpack.encode([1, 0, 0, 1, SCHEMA_VERSION, old])
    import google_crc32c

    with seg.open("ab") as f:
        f.write(FRAME.pack(len(payload), google_crc32c.value(payload)) + payload)
    monkeypatch.setitem(protocol_events.EVENT_TAG_ALIASES, "assistant.text", "generation.text")
    records = list(FileJournal(tmp_path).records("s"))
    assert records[1].event == GenerationTextDelta(generation_id="g", text="renamed")
    assert records[1].tag == "generation.text"


def test_segments_roll_over_and_read_back(tmp_path: Path) -> None:
    events = text_events(200)
    session = write_session(tmp_path, events, batch=2, segment_bytes=600)
    segments = sorted(p.name for p in session.glob("*.seg"))
    assert len(segments) > 5
    journal = FileJournal(tmp_path)
    assert list(journal.events("s")) == events
    assert [r.seq for r in journal.records("s", start_seq=150)] == list(range(150, 200))
    writer = journal.writer("s")
    assert writer.next_seq == 200
    writer.close()
    report = check(tmp_path)
    assert (report.ok, report.segments, report.records) == (True, len(segments), 200)
    # A lost segment in the middle is damage, not a shorter journal.
    (session / segments[2]).unlink()
    with pytest.raises(JournalCorrupt, match="expected"):
        list(journal.events("s"))
    assert not check(tmp_path).ok


def test_snapshots_are_kept_few_and_dropped_when_ahead_of_the_stream(tmp_path: Path) -> None:
    events = text_events(50)
    session = write_session(tmp_path, events, snapshot_every=10)
    snaps = sorted(p.name for p in session.glob("snapshot-*"))
    assert snaps == ["snapshot-000000000040.msgpack", "snapshot-000000000050.msgpack"]
    assert all(s.valid for s in check(tmp_path).snapshots)
    # Lose the tail: the snapshot at 50 now describes records that are gone.
    seg = session / "000000000000.seg"
    with seg.open("r+b") as f:
        f.truncate(frame_ends(seg)[44] - 3)
    journal = FileJournal(tmp_path, snapshot_every=10)
    assert journal.replay("s") == fold(events[:44])  # not the snapshot at 50
    report = check(tmp_path)
    assert [s.valid for s in report.snapshots] == [True, False]
    journal.writer("s").close()
    assert sorted(p.name for p in session.glob("snapshot-*")) == ["snapshot-000000000040.msgpack"]


def test_damaged_snapshot_is_ignored_by_replay_and_reported(tmp_path: Path) -> None:
    events = text_events(25)
    session = write_session(tmp_path, events, snapshot_every=10)
    flip(session / "snapshot-000000000020.msgpack", 12)
    assert FileJournal(tmp_path).replay("s") == fold(events)
    report = check(tmp_path)
    assert not report.ok
    assert [(s.seq, s.valid) for s in report.snapshots] == [(10, True), (20, False)]
    assert check(tmp_path, repair=True).ok
    assert check(tmp_path).ok


def test_snapshot_that_disagrees_with_the_fold_is_reported(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path, snapshot_every=2)
    writer = journal.writer("s")
    wrong = SessionState(instructions="not what the events say")
    writer.append(text_events(2), expected_seq=0, epoch=1, mono_ns=0, wall_ns=0, state=wrong)
    writer.close()
    report = check(tmp_path)
    assert [s.reason for s in report.snapshots] == ["differs from the fold of the events it covers"]
    assert not report.ok


def test_one_writer_across_journal_objects(tmp_path: Path) -> None:
    a = FileJournal(tmp_path)
    b = FileJournal(tmp_path)
    writer = a.writer("s")
    with pytest.raises(JournalError, match="already open"):
        b.writer("s")
    writer.close()
    b.writer("s").close()


def test_journal_close_closes_its_writers(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path)
    writer = journal.writer("s")
    journal.close()
    assert writer.closed
    FileJournal(tmp_path).writer("s").close()


def test_batch_durability_exposes_its_flush_deadline(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path, durability=Durability.batch(3600))
    writer = journal.writer("s")
    deadlines = [writer.flush_deadline]
    writer.append(text_events(1), expected_seq=0, epoch=1, mono_ns=0, wall_ns=0)
    deadlines.append(writer.flush_deadline)
    writer.flush()
    deadlines.append(writer.flush_deadline)
    writer.close()
    assert deadlines[0] is None
    assert deadlines[1] is not None
    assert deadlines[1] > time.monotonic() + 3000
    assert deadlines[2] is None


def _flusher_threads() -> int:
    return sum(t.name == "antiphon-journal-flusher" for t in threading.enumerate())


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30  # guards against a hang only
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.005)


class _Syncs:
    """The journal's real fsyncs and filesystem syncs, counted (and made to fail on demand)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, journal: FileJournal) -> None:
        self.fsyncs: list[int] = []
        self.filesystem: list[int] = []
        self.fail_fsync = False
        self.fail_filesystem = False
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            self.fsyncs.append(fd)
            if self.fail_fsync:
                raise OSError(5, "Input/output error")
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        real_whole = journal._flusher._filesystem_sync
        if real_whole is not None:

            def whole(fd: int) -> None:
                self.filesystem.append(fd)
                if self.fail_filesystem:
                    raise OSError(5, "Input/output error")
                real_whole(fd)

            monkeypatch.setattr(journal._flusher, "_filesystem_sync", whole)


def _deferred_writers(journal: FileJournal, n: int) -> list[JournalWriter]:
    """``n`` writers with their first segment written and synced, synced by the flusher."""
    writers = [journal.writer(f"s{i}") for i in range(n)]
    for writer in writers:
        writer.append(text_events(1), expected_seq=0, epoch=1, mono_ns=0, wall_ns=0)
        writer.flush()
        writer.deferred_sync = True
    return writers


def _synced(journal: FileJournal) -> bool:
    """Every stream was synced since its last write (not dirty, and no round in progress)."""
    return not any(s.dirty for s in journal._leases.values()) and not journal._flusher.busy


def _close(writers: list[JournalWriter]) -> None:
    for writer in writers:
        writer.close()
    _wait_for(lambda: _flusher_threads() == 0)  # the last writer closed: the thread ends


def _write_some(writers: list[JournalWriter]) -> None:
    for writer in writers:
        writer.append(text_events(2), expected_seq=1, epoch=1, mono_ns=0, wall_ns=0)
        writer.write_audio("user", b"\1\0" * 160, 16_000)
        # The journal's flusher syncs it: nobody else needs to call flush.
        assert writer.flush_deadline is None


needs_syncfs = pytest.mark.skipif(
    filesystem_sync_for(Path(tempfile.gettempdir()), "auto") is None,
    reason="the filesystem here is synced file by file",
)


@pytest.mark.parametrize("sync", ["files", pytest.param("filesystem", marks=needs_syncfs)])
def test_deferred_writers_are_synced_together_by_one_flusher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync: SyncScope
) -> None:
    journal = FileJournal(tmp_path, durability=Durability.batch(0.05), sync=sync)
    syncs = _Syncs(monkeypatch, journal)
    assert journal.flushes_itself
    writers = _deferred_writers(journal, 20)
    assert _flusher_threads() == 0  # nothing written since the flushes: no thread
    syncs.fsyncs.clear()
    _write_some(writers)
    assert _flusher_threads() == 1
    # Every writer's records and audio reach the disk (within the 0.05 s batch window, but
    # this waits for the syncs, not for time).
    _wait_for(lambda: _synced(journal))
    assert journal._flusher.rounds <= 3  # one round for all of them, not one per writer
    if sync == "files":
        assert len(syncs.fsyncs) >= 2 * len(writers)  # each writer's segment and audio store
        assert not syncs.filesystem
    else:
        assert 1 <= len(syncs.filesystem) <= journal._flusher.rounds  # one call per round
        assert not syncs.fsyncs
    _close(writers)
    reader = FileJournal(tmp_path, create=False)
    assert all(len(list(reader.records(f"s{i}"))) == 3 for i in range(20))


@needs_syncfs
def test_a_round_with_few_files_fsyncs_them_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = FileJournal(tmp_path, durability=Durability.batch(0.01), sync="filesystem")
    syncs = _Syncs(monkeypatch, journal)
    writers = _deferred_writers(journal, 2)  # 4 files: below FILESYSTEM_SYNC_MIN_FILES
    syncs.fsyncs.clear()
    _write_some(writers)
    _wait_for(lambda: _synced(journal))
    assert len(syncs.fsyncs) == 4
    assert not syncs.filesystem
    _close(writers)


@needs_syncfs
def test_a_failed_filesystem_sync_is_retried_file_by_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = FileJournal(tmp_path, durability=Durability.batch(0.01))
    syncs = _Syncs(monkeypatch, journal)
    syncs.fail_filesystem = True
    writers = _deferred_writers(journal, 10)
    syncs.fsyncs.clear()
    _write_some(writers)
    streams = list(journal._leases.values())
    _wait_for(lambda: _synced(journal))
    assert syncs.filesystem  # tried first
    assert len(syncs.fsyncs) >= 2 * len(writers)  # then every stream synced its own files
    assert all(s.open and s.failure is None for s in streams)  # and all of them succeeded
    _close(writers)


@pytest.mark.parametrize("sync", ["files", pytest.param("auto", marks=needs_syncfs)])
def test_a_failed_batch_sync_closes_the_stream_and_its_next_append_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync: SyncScope
) -> None:
    journal = FileJournal(tmp_path, durability=Durability.batch(0.01), sync=sync)
    syncs = _Syncs(monkeypatch, journal)
    writers = _deferred_writers(journal, 10)
    syncs.fail_filesystem = syncs.fail_fsync = True
    _write_some(writers)
    streams = list(journal._leases.values())
    _wait_for(lambda: not any(s.open for s in streams))
    for writer in writers:
        with pytest.raises(JournalError, match=r"fsync failed: .*Input/output error"):
            writer.append(text_events(1), expected_seq=3, epoch=1, mono_ns=0, wall_ns=0)
    _close(writers)


_MOUNTINFO = [
    "22 27 0:21 / /proc rw,relatime - proc proc rw",
    "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard",
    "30 27 254:1 / /data rw,relatime shared:5 master:1 - ext4 /dev/vdb rw,data=writeback",
    "31 27 0:40 / /mnt/nfs rw - nfs4 server:/export rw,vers=4.2",
    "32 27 0:41 / /tmp rw - tmpfs tmpfs rw,size=100k",
    "33 27 8:3 / /x rw - xfs /dev/sda3 rw,attr2",
]


@pytest.mark.parametrize(
    ("major", "minor", "expected"),
    [
        (254, 0, ("ext4", "rw,discard")),
        (254, 1, ("ext4", "rw,data=writeback")),  # optional fields before the separator
        (0, 40, ("nfs4", "rw,vers=4.2")),
        (0, 41, ("tmpfs", "rw,size=100k")),
        (8, 3, ("xfs", "rw,attr2")),
        (9, 9, ("", "")),  # no such device
    ],
)
def test_mount_of_reads_the_filesystem_type_and_options(
    major: int, minor: int, expected: tuple[str, str]
) -> None:
    assert mount_of(_MOUNTINFO, major, minor) == expected


def test_sync_scope_is_checked(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="sync must be one of auto, files, filesystem"):
        FileJournal(tmp_path, sync="everything")  # type: ignore[arg-type]
    assert filesystem_sync_for(tmp_path, "files") is None
    assert FileJournal(tmp_path, sync="files")._flusher._filesystem_sync is None


def test_an_idle_deferred_writer_costs_the_flusher_nothing(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path, durability=Durability.batch(0.01))
    writer = journal.writer("s")
    writer.deferred_sync = True
    writer.append(text_events(1), expected_seq=0, epoch=1, mono_ns=0, wall_ns=0)
    _wait_for(lambda: journal._flusher.rounds >= 1)
    rounds = journal._flusher.rounds
    # Idle: the flusher sleeps until the next write wakes it, whatever the time.
    writer.append(text_events(1), expected_seq=1, epoch=1, mono_ns=0, wall_ns=0)
    _wait_for(lambda: journal._flusher.rounds == rounds + 1)
    writer.close()
    _wait_for(lambda: _flusher_threads() == 0)
    assert journal._flusher.rounds == rounds + 1


@pytest.mark.parametrize("session_id", ["", "../escape", "a/b", ".hidden", "x" * 200])
def test_unusable_session_ids(tmp_path: Path, session_id: str) -> None:
    with pytest.raises(JournalError, match="session id"):
        FileJournal(tmp_path).writer(session_id)


def test_not_a_journal(tmp_path: Path) -> None:
    with pytest.raises(NotAJournal, match="no such"):
        open_journal(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotAJournal, match="not an antiphon journal"):
        open_journal(tmp_path / "plain")
    with pytest.raises(NotAJournal):
        FileJournal(tmp_path / "plain", create=False)
    (tmp_path / "file.txt").write_text("hello")
    with pytest.raises(NotAJournal):
        open_journal(tmp_path / "file.txt")
    with pytest.raises(NotAJournal, match="no sessions"):
        open_journal(FileJournal(tmp_path / "empty").directory)


def test_open_journal_accepts_root_session_dir_and_segment(tmp_path: Path) -> None:
    session = write_session(tmp_path / "j", text_events(3))
    for path in (tmp_path / "j", session, session / "000000000000.seg"):
        journal, session_id = open_journal(path)
        assert session_id == "s"
        assert len(list(journal.records(session_id))) == 3
    # A session directory copied out of its journal still opens.
    shutil.copytree(session, tmp_path / "copy" / "s")
    journal, session_id = open_journal(tmp_path / "copy" / "s")
    assert len(list(journal.events(session_id))) == 3
    FileJournal(tmp_path / "j").writer("other").close()
    with pytest.raises(JournalError, match="2 sessions"):
        open_journal(tmp_path / "j")


def test_audio_survives_reopen_and_half_samples_are_trimmed(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path)
    writer = journal.writer("s")
    span = writer.write_audio("assistant", b"\x01\x02" * 10, 24_000)
    writer.close()
    with (tmp_path / "s" / "audio-assistant.pcm").open("ab") as f:
        f.write(b"\x07")  # a write cut short mid-sample
    writer = FileJournal(tmp_path).writer("s")
    nxt = writer.write_audio("assistant", b"\x03\x04", 24_000)
    writer.close()
    assert nxt.offset == span.length
    assert FileJournal(tmp_path).audio("s", "assistant") == (b"\x01\x02" * 10 + b"\x03\x04", 24_000)


def test_failed_write_releases_the_stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = FileJournal(tmp_path)
    writer = journal.writer("s")
    writer.append(text_events(2), expected_seq=0, epoch=1, mono_ns=0, wall_ns=0)

    def full_disk(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(JournalError, match="No space"):
        writer.append(text_events(1), expected_seq=2, epoch=1, mono_ns=0, wall_ns=0)
    monkeypatch.undo()
    assert writer.closed
    again = journal.writer("s")
    assert again.next_seq == 2
    again.close()


def test_take_over_from_another_journal_object(tmp_path: Path) -> None:
    a, b = FileJournal(tmp_path), FileJournal(tmp_path)
    old = a.writer("s")
    old.append(text_events(2), expected_seq=0, epoch=1, mono_ns=0, wall_ns=0)
    new = b.writer("s", take_over=True)
    new.append(text_events(3)[2:], expected_seq=2, epoch=2, mono_ns=0, wall_ns=0)
    with pytest.raises(JournalConflict):
        old.append(text_events(1), expected_seq=2, epoch=1, mono_ns=0, wall_ns=0)
    a.close()  # closes the old writer, not the stream its new holder writes
    new.append(text_events(4)[3:], expected_seq=3, epoch=2, mono_ns=0, wall_ns=0)
    new.close()
    assert list(FileJournal(tmp_path).events("s")) == text_events(4)


def test_a_writer_in_another_process_cannot_be_taken_over(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from antiphon.journal import FileJournal;"
            f" w = FileJournal({str(tmp_path)!r}).writer('s'); print('open', flush=True);"
            " sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "open\n"
        with pytest.raises(JournalError, match="another process"):
            FileJournal(tmp_path).writer("s", take_over=True)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
    # The kernel freed the lock with its process: no take-over needed.
    FileJournal(tmp_path).writer("s").close()
