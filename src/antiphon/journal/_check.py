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

from antiphon.errors import JournalCorrupt, JournalError, NotAJournal
from antiphon.protocol import GenerationAudioDelta, SessionState, UserAudio, apply

from ._file import (
    JOURNAL_MARKER,
    SEG_HEADER,
    SESSION_MARKER,
    FileJournal,
    is_session_dir,
    list_segments,
    list_snapshots,
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
    """

    session_id: str
    path: str
    segments: int
    records: int
    first_seq: int | None
    last_seq: int | None
    bytes: int
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

    Args:
        path: As for :func:`open_journal`.
        repair: Truncate a torn tail and remove invalid snapshots (what a writer opening the
            stream would do). Damage in the middle is never repaired.

    Raises:
        NotAJournal: the path holds no journal.
        JournalError: the root holds several sessions.
    """
    session = _session_path(path)
    segs = list_segments(session)
    corrupt: list[CorruptRecord] = []
    torn: TornTail | None = None
    total_bytes = 0
    records = 0
    first_seq: int | None = None
    expected = 0
    state = SessionState()
    states: dict[int, SessionState] = {0: state}
    snap_seqs = {seq for seq, _ in list_snapshots(session)}
    audio_len = {
        s: (session / f"audio-{s}.pcm").stat().st_size
        if (session / f"audio-{s}.pcm").exists()
        else 0
        for s in ("user", "assistant")
    }
    folding = True  # the fold stops at the first damage: later snapshots cannot be compared
    for i, (first, seg) in enumerate(segs):
        last = i == len(segs) - 1
        name = str(seg)
        data = seg.read_bytes()
        total_bytes += len(data)
        header = segment_header_state(data, first)
        if header == "torn" and last:
            torn = TornTail(path=name, offset=0, bytes=len(data))
            continue
        if header != "ok":
            corrupt.append(CorruptRecord(path=name, offset=0, reason="not a segment header"))
            folding = False
            continue
        if first != expected:
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
            folding = False
            expected = seq
            continue
        if reader.torn:
            if last:
                torn = TornTail(path=name, offset=reader.end, bytes=reader.torn)
            else:
                reason = "damaged record at the end of a segment that later segments follow"
                corrupt.append(CorruptRecord(path=name, offset=reader.end, reason=reason))
                folding = False
        expected = seq

    end_seq = expected
    snapshots: list[SnapshotCheck] = []
    for seq, snap in list_snapshots(session):
        reason = ""
        try:
            stored_seq, snap_state = decode_snapshot(snap.read_bytes())
            if stored_seq != seq:
                reason = f"holds seq {stored_seq}"
            elif seq > end_seq:
                reason = f"covers seq {seq} but the stream ends at {end_seq}"
            elif seq in states and snap_state != states[seq]:
                reason = "differs from the fold of the events it covers"
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
