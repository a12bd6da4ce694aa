"""Opening a journal from a path (for the CLI) and checking its integrity.

``check`` reads a file journal's session stream the way a writer would open it and reports,
without changing anything unless ``repair`` is set: the segments and records found, a torn
tail a writer would truncate, a damaged record in the middle (which nothing repairs), audio
spans that point outside the audio store, and whether each snapshot decodes and equals the
fold of the events it covers.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from antiphon.errors import JournalBusy, JournalCorrupt, JournalError, NotAJournal
from antiphon.protocol import GenerationAudioDelta, SessionState, UserAudio, apply

from ._file import (
    JOURNAL_MARKER,
    SEG_HEADER,
    SESSION_MARKER,
    FileJournal,
    hold_writer_lock,
    is_session_dir,
    list_segments,
    list_snapshots,
    lock_holder_active,
    segment_header_state,
)
from ._record import Durability, decode_snapshot, decode_stored, iter_frames

__all__ = [
    "CorruptRecord",
    "IntegrityReport",
    "SnapshotCheck",
    "TornTail",
    "check",
    "open_journal",
    "verify",
]


class TornTail(msgspec.Struct, frozen=True, kw_only=True):
    """Bytes after the last intact record of the last segment: a write cut short."""

    path: str
    offset: int
    bytes: int
    repaired: bool = False


class CorruptRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Damage that truncation cannot repair (records, or audio, after it would be lost)."""

    path: str
    offset: int
    reason: str


class SnapshotCheck(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    path: str
    valid: bool
    reason: str = ""
    removed: bool = False


class IntegrityReport(msgspec.Struct, frozen=True, kw_only=True):
    """What ``check`` found in one session stream.

    Attributes:
        ok: No damage is left that truncation cannot repair (a torn tail alone is ok).
        live: A writer held the stream while it was read: the report covers the records
            written until then (a record being appended is not a torn tail).
    """

    session_id: str
    path: str
    segments: int
    records: int
    first_seq: int | None
    last_seq: int | None
    bytes: int
    live: bool = False
    torn_tail: TornTail | None = None
    corrupt: tuple[CorruptRecord, ...] = ()
    snapshots: tuple[SnapshotCheck, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.corrupt and all(s.valid or s.removed for s in self.snapshots)


def _session_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise NotAJournal(f"{p}: no such file or directory")
    if p.is_file():
        if p.suffix == ".seg" or p.name in (SESSION_MARKER, JOURNAL_MARKER):
            p = p.parent
        else:
            raise NotAJournal(f"{p} is not an antiphon journal (pass its directory)")
    if is_session_dir(p):
        return p
    if not (p / JOURNAL_MARKER).is_file():
        raise NotAJournal(
            f"{p} is not an antiphon journal (no {JOURNAL_MARKER} or {SESSION_MARKER})"
        )
    sessions = sorted(e.name for e in os.scandir(p) if e.is_dir() and is_session_dir(Path(e.path)))
    if not sessions:
        raise NotAJournal(f"journal {p} holds no sessions")
    if len(sessions) > 1:
        shown = ", ".join(sessions[:10]) + (", ..." if len(sessions) > 10 else "")
        raise JournalError(
            f"journal {p} holds {len(sessions)} sessions ({shown}); pass one session directory"
        )
    return p / sessions[0]


def open_journal(path: str | os.PathLike[str]) -> tuple[FileJournal, str]:
    """Open an existing file journal for reading.

    Args:
        path: A journal root holding exactly one session, a session directory, or one of a
            session's segment files.

    Returns:
        The journal (opened read-only: reading never changes a file) and the session id.

    Raises:
        NotAJournal: the path does not exist or holds no journal.
        JournalError: the root holds several sessions (the message lists them).
    """
    session = _session_path(path)
    journal = FileJournal(session.parent, durability=Durability.none(), create=False)
    return journal, session.name


def check(path: str | os.PathLike[str], *, repair: bool = False) -> IntegrityReport:
    """Check one session stream of a file journal (see the module docs).

    A stream with a live writer is read as a consistent prefix: records first, then the
    audio store sizes and snapshots they refer to (both only grow ahead of the records), so
    what the writer adds meanwhile is never mistaken for damage. The report says it was live.

    Args:
        path: As for :func:`open_journal`.
        repair: Truncate a torn tail and remove invalid snapshots (what a writer opening the
            stream would do), holding the writer's lock meanwhile. Damage in the middle is
            never repaired.

    Raises:
        NotAJournal: the path holds no journal.
        JournalError: the root holds several sessions.
        JournalBusy: ``repair`` is set and a writer holds the stream.
    """
    session = _session_path(path)
    if repair:
        with hold_writer_lock(session) as held:
            if not held:
                raise JournalBusy(
                    f"session {session.name!r} has a live writer: --repair would truncate what "
                    "it is writing; stop the writer (a writer opening the stream repairs it too)"
                )
            return _check(session, repair=True, live=False)
    live = lock_holder_active(session)
    report = _check(session, repair=False, live=live)
    if not live and lock_holder_active(session):  # a writer opened while we were reading
        report = msgspec.structs.replace(report, live=True, torn_tail=None)
    return report


def _audio_sizes(session: Path) -> dict[str, int]:
    sizes = {}
    for stream in ("user", "assistant"):
        try:
            sizes[stream] = (session / f"audio-{stream}.pcm").stat().st_size
        except FileNotFoundError:
            sizes[stream] = 0
    return sizes


def _check(session: Path, *, repair: bool, live: bool) -> IntegrityReport:
    segs = list_segments(session)
    corrupt: list[CorruptRecord] = []
    torn: TornTail | None = None
    total_bytes = 0
    records = 0
    first_seq: int | None = None
    # The seq the next segment must start at; None after damage (the records behind it
    # cannot be counted, so the next segment is only required to start later).
    expected: int | None = 0
    lowest = 0
    state = SessionState()
    states: dict[int, SessionState] = {0: state}
    snap_seqs = {seq for seq, _ in list_snapshots(session)}
    folding = True  # the fold stops at the first damage: later snapshots cannot be compared
    for i, (first, seg) in enumerate(segs):
        last = i == len(segs) - 1
        name = str(seg)
        try:
            data = seg.read_bytes()
        except OSError as exc:
            corrupt.append(CorruptRecord(path=name, offset=0, reason=f"unreadable: {exc}"))
            folding, expected = False, None
            continue
        # Audio is written before the records that point at it: sizes taken after reading
        # the records cover every span in them, even while a writer appends.
        audio_len = _audio_sizes(session)
        total_bytes += len(data)
        header = segment_header_state(data, first)
        if header == "torn" and last:
            if not live:  # a live writer is creating this segment right now
                torn = TornTail(path=name, offset=0, bytes=len(data))
            continue
        if header != "ok":
            corrupt.append(CorruptRecord(path=name, offset=0, reason="not a segment header"))
            folding, expected = False, None
            continue
        if expected is None:
            if first < lowest:
                reason = f"segment starts at seq {first}, before seq {lowest} seen earlier"
                corrupt.append(CorruptRecord(path=name, offset=0, reason=reason))
        elif first != expected:
            reason = f"segment starts at seq {first}, expected {expected}"
            corrupt.append(CorruptRecord(path=name, offset=0, reason=reason))
            folding = False
        reader = iter_frames(data, SEG_HEADER.size, path=name)
        seq = first
        try:
            for offset, payload in reader:
                stored = decode_stored(payload, path=name, offset=offset)
                if stored.seq != seq:
                    raise JournalCorrupt(
                        f"record has seq {stored.seq}, expected {seq}", path=name, offset=offset
                    )
                event = stored.event
                span = event.span if isinstance(event, UserAudio | GenerationAudioDelta) else None
                if span is not None and span.offset + span.length > audio_len.get(span.stream, 0):
                    raise JournalCorrupt(
                        f"audio span {span.offset}+{span.length} lies past the end of the "
                        f"{span.stream} audio store ({audio_len.get(span.stream, 0)} bytes)",
                        path=name,
                        offset=offset,
                    )
                if first_seq is None:
                    first_seq = seq
                records += 1
                seq += 1
                if folding:
                    state = apply(state, event)
                    if seq in snap_seqs:
                        states[seq] = state
        except JournalCorrupt as exc:
            corrupt.append(CorruptRecord(path=name, offset=exc.offset, reason=_reason(exc)))
            folding, expected, lowest = False, None, seq + 1
            continue
        if reader.torn:
            if last:
                if not live:  # a live writer's append in flight, not a cut-short write
                    torn = TornTail(path=name, offset=reader.end, bytes=reader.torn)
            else:
                reason = "damaged record at the end of a segment that later segments follow"
                corrupt.append(CorruptRecord(path=name, offset=reader.end, reason=reason))
                folding, expected, lowest = False, None, seq + 1
                continue
        expected = lowest = seq

    end_seq = lowest
    snapshots: list[SnapshotCheck] = []
    for seq, snap in list_snapshots(session):
        if live and seq > end_seq:
            continue  # written after the records were read: beyond this view
        reason = ""
        try:
            stored_seq, snap_state = decode_snapshot(snap.read_bytes())
            if stored_seq != seq:
                reason = f"holds seq {stored_seq}"
            elif seq > end_seq:
                reason = f"covers seq {seq} but the stream ends at {end_seq}"
            elif seq in states and snap_state != states[seq]:
                reason = "differs from the fold of the events it covers"
        except FileNotFoundError:
            if live:
                continue  # the writer dropped an old snapshot meanwhile
            reason = "vanished while being read"
        except OSError as exc:
            reason = f"unreadable: {exc}"
        except JournalCorrupt as exc:
            reason = _reason(exc)
        removed = False
        if reason and repair and not corrupt:
            snap.unlink()
            removed = True
        snapshots.append(
            SnapshotCheck(seq=seq, path=str(snap), valid=not reason, reason=reason, removed=removed)
        )

    if torn is not None and repair and not corrupt:
        if torn.offset == 0:
            Path(torn.path).unlink()
        else:
            os.truncate(torn.path, torn.offset)
        torn = msgspec.structs.replace(torn, repaired=True)

    return IntegrityReport(
        session_id=session.name,
        path=str(session),
        segments=len(segs),
        records=records,
        first_seq=first_seq,
        last_seq=None if first_seq is None else first_seq + records - 1,
        bytes=total_bytes,
        live=live,
        torn_tail=torn,
        corrupt=tuple(corrupt),
        snapshots=tuple(snapshots),
    )


verify = check
"""Alias of :func:`check`."""


def _reason(exc: JournalCorrupt) -> str:
    text = str(exc)
    suffix = f" ({exc.path} at byte {exc.offset})"
    return text[: -len(suffix)] if exc.path and text.endswith(suffix) else text
