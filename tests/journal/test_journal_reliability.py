"""The file journal against a live writer, damage in an earlier segment, and malformed audio
metadata: ``check`` never reports damage a live writer did not make, ``--repair`` leaves a
live stream alone, a writer never opens on damage, and bad metadata is the project's error."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_journal_file import flip, frame_ends, text_events, write_session

from antiphon.cli import main
from antiphon.errors import JournalBusy, JournalCorrupt
from antiphon.journal import Durability, FileJournal, IntegrityReport, check
from antiphon.protocol import Event, SessionState, UserAudio, fold

# A writer in another process: many records with audio, tiny segments (frequent rollovers)
# and frequent snapshots, so a check that reads the stream in the wrong order sees "damage".
_LIVE_WRITER = textwrap.dedent(
    """
    import sys
    from antiphon.journal import Durability, FileJournal
    from antiphon.protocol import GenerationTextDelta, SessionState, UserAudio, fold

    journal = FileJournal(sys.argv[1], durability=Durability.none(), snapshot_every=3,
                          segment_bytes=2048)
    writer = journal.writer("s")
    print("open", flush=True)
    state = SessionState()
    seq = writer.next_seq
    stop = int(sys.argv[2])
    while seq < stop:
        events = [
            UserAudio(epoch=1, frames=1, sample_rate=16000, audio=bytes(640)),
            GenerationTextDelta(generation_id="g", item_id=f"i{seq}", text="x" * (seq % 900)),
        ]
        state = fold(events, state)
        writer.append(events, expected_seq=seq, epoch=1, mono_ns=seq, wall_ns=seq, state=state)
        seq = writer.next_seq
    print("done", flush=True)
    sys.stdin.read()
    writer.close()
    """
)


@pytest.fixture
def live_writer(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[subprocess.Popen[str]]:
    records = getattr(request, "param", 2000)
    proc = subprocess.Popen(
        [sys.executable, "-c", _LIVE_WRITER, str(tmp_path), str(records)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "open\n"
        yield proc
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)


def test_check_reads_a_consistent_view_of_a_live_stream(
    tmp_path: Path, live_writer: subprocess.Popen[str]
) -> None:
    reports: list[IntegrityReport] = []
    while live_writer.poll() is None and len(reports) < 400:
        report = check(tmp_path)
        reports.append(report)
        assert report.live
        assert report.corrupt == (), report.corrupt
        assert all(s.valid for s in report.snapshots), report.snapshots
        assert report.torn_tail is None
        assert report.ok
        if report.records >= 2000:
            break
    assert len({r.records for r in reports}) > 1  # the stream grew while it was checked


@pytest.mark.parametrize("live_writer", [200], indirect=True)
def test_repair_refuses_while_a_writer_holds_the_stream(
    tmp_path: Path, live_writer: subprocess.Popen[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(JournalBusy, match="live writer"):
        check(tmp_path, repair=True)
    assert main(["journal", "check", str(tmp_path), "--repair"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("antiphon: error:")
    assert "live writer" in err
    assert "Traceback" not in err
    assert main(["journal", "check", str(tmp_path)]) == 0
    assert "LIVE" in capsys.readouterr().out
    assert live_writer.stdout is not None
    assert live_writer.stdout.readline() == "done\n"
    done = check(tmp_path)
    assert (done.ok, done.live, done.records) == (True, True, 200)


def test_repair_refuses_while_a_writer_of_this_process_is_open(tmp_path: Path) -> None:
    write_session(tmp_path, text_events(5))
    writer = FileJournal(tmp_path, durability=Durability.none()).writer("s")
    try:
        assert check(tmp_path).live
        with pytest.raises(JournalBusy):
            check(tmp_path, repair=True)
    finally:
        writer.close()
    assert not check(tmp_path).live
    # Repair holds the lock meanwhile, and lets it go: a writer opens afterwards.
    assert check(tmp_path, repair=True).ok
    FileJournal(tmp_path).writer("s").close()


# --- damage in an earlier segment -----------------------------------------------------------


def _segmented(tmp_path: Path) -> tuple[Path, list[Path], list[Event]]:
    events = text_events(200)
    session = write_session(tmp_path, events, batch=2, segment_bytes=600)
    segments = sorted(session.glob("*.seg"))
    assert len(segments) > 5
    return session, segments, events


def test_writer_refuses_a_stream_damaged_mid_segment_in_an_earlier_segment(
    tmp_path: Path,
) -> None:
    _, segments, _ = _segmented(tmp_path)
    seg = segments[1]
    bad = frame_ends(seg)[1]  # the third record of the second segment
    flip(seg, bad + 8 + 3)
    with pytest.raises(JournalCorrupt) as info:
        FileJournal(tmp_path).writer("s")
    assert (info.value.path, info.value.offset) == (str(seg), bad)
    report = check(tmp_path)
    # Only the damaged record: the intact segments after it are not "corrupt" too.
    assert [(c.path, c.offset) for c in report.corrupt] == [(str(seg), bad)]
    assert not report.ok


def test_writer_refuses_a_stream_whose_earlier_segment_ends_damaged(tmp_path: Path) -> None:
    _, segments, _ = _segmented(tmp_path)
    seg = segments[2]
    ends = frame_ends(seg)
    flip(seg, ends[-2] + 8 + 2)  # the payload of the segment's last record
    with pytest.raises(JournalCorrupt, match="later segments follow"):
        FileJournal(tmp_path).writer("s")
    report = check(tmp_path)
    assert [(c.path, c.offset) for c in report.corrupt] == [(str(seg), ends[-2])]


def test_writer_refuses_a_stream_with_a_lost_earlier_segment(tmp_path: Path) -> None:
    _, segments, _ = _segmented(tmp_path)
    segments[3].unlink()
    with pytest.raises(JournalCorrupt, match="expected"):
        FileJournal(tmp_path).writer("s")


def test_writer_on_an_intact_segmented_stream_still_opens(tmp_path: Path) -> None:
    _, _, events = _segmented(tmp_path)
    writer = FileJournal(tmp_path).writer("s")
    assert writer.next_seq == len(events)
    writer.close()


# --- audio metadata of the wrong type ----------------------------------------------------


@pytest.mark.parametrize(
    "meta",
    [
        '{"sample_rate": "abc"}',
        "null",
        '{"sample_rate": 1e400}',
        '{"sample_rate": null}',
        '{"sample_rate": true}',
        '{"sample_rate": -16000}',
        "[16000]",
        "{not json",
    ],
)
def test_malformed_audio_metadata_is_the_projects_error_naming_the_file(
    tmp_path: Path, meta: str, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = FileJournal(tmp_path, durability=Durability.none())
    writer = journal.writer("s")
    state = fold([UserAudio(epoch=1, frames=1, sample_rate=16000, audio=bytes(64))])
    writer.append(
        [UserAudio(epoch=1, frames=1, sample_rate=16000, audio=bytes(64))],
        expected_seq=0,
        epoch=1,
        mono_ns=0,
        wall_ns=0,
        state=state,
    )
    writer.close()
    path = tmp_path / "s" / "audio-user.meta"
    path.write_text(meta)
    with pytest.raises(JournalCorrupt) as info:
        journal.audio("s", "user")
    assert info.value.path == str(path)
    with pytest.raises(JournalCorrupt, match=r"audio-user\.meta"):
        journal.audio_rate("s", "user")
    with pytest.raises(JournalCorrupt, match=r"audio-user\.meta"):
        journal.writer("s")
    for argv in (
        ["journal", "stats", str(tmp_path)],
        ["journal", "export-audio", str(tmp_path), "--out", str(tmp_path / "out")],
    ):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("antiphon: error:"), err
        assert "audio-user.meta" in err
        assert "Traceback" not in err
    # The session state itself never depended on the metadata.
    assert journal.replay("s") != SessionState()
