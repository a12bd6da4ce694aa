"""Record format shared by every backend: the stored header + event, framing and snapshots.

How this works: one journalled event is stored as the msgpack array
``[seq, mono_ns, wall_ns, epoch, schema, event]`` (``_Stored``); the session id is held once
per stream (its directory / key), and the tag is the event's own ``type`` field, so neither is
repeated in every record. The file backend frames each payload as
``[u32 length][u32 crc32c(payload)][payload]`` (little endian). Readers get :class:`Record`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Literal

import google_crc32c
import msgspec

from antiphon.errors import JournalCorrupt, JournalError
from antiphon.protocol import (
    SCHEMA_VERSION,
    Event,
    SessionState,
    decode_event,
    decode_state,
    encode_state,
    event_tag,
)

__all__ = [
    "ENCODER",
    "FRAME",
    "MAX_RECORD_BYTES",
    "Durability",
    "Record",
    "crc32c",
    "decode_snapshot",
    "decode_stored",
    "encode_snapshot",
    "encode_stored",
    "iter_frames",
    "to_record",
]

DurabilityPolicy = Literal["none", "batch", "always"]


class Durability(msgspec.Struct, frozen=True, kw_only=True):
    """When appended records are forced to stable storage (fsync).

    Every policy hands each ``append`` to the operating system at once (one ``write``), so a
    process crash loses nothing that ``append`` returned. The policy decides what survives a
    machine crash or power loss:

    * ``none``: never fsync (the OS writes back in its own time).
    * ``batch(interval_s)``: fsync at most every ``interval_s`` seconds, checked on ``append``,
      and on ``flush``/``close``. Call ``flush`` when the session goes idle (see
      ``JournalWriter.flush_deadline``). The default, 0.2 s, bounds what a machine crash can
      lose to the last 0.2 s of a call while costing a live session at most 5 fsyncs a second
      per file. A file journal whose writers are deferred (the runtime's are) runs them on
      one flusher thread of its own for all its sessions, at most ``interval_s`` after the
      first write that found a session's files synced.
    * ``always``: fsync inside every ``append`` call; it blocks the caller for the duration of
      the fsync.
    """

    policy: DurabilityPolicy = "batch"
    interval_s: float = 0.2

    @classmethod
    def none(cls) -> Durability:
        return cls(policy="none", interval_s=0.0)

    @classmethod
    def batch(cls, interval_s: float = 0.2) -> Durability:
        if not interval_s >= 0:
            raise JournalError(f"batch interval must be >= 0 seconds, got {interval_s!r}")
        return cls(policy="batch", interval_s=interval_s)

    @classmethod
    def always(cls) -> Durability:
        return cls(policy="always", interval_s=0.0)


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """One journalled event as a reader sees it.

    Attributes:
        session_id: The stream the record belongs to.
        seq: Position in the stream; the first event has seq 0, with no gaps.
        mono_ns: Writer's monotonic clock when appended (orders records within a process).
        wall_ns: Wall-clock time (unix ns) when appended.
        epoch: Provider connection epoch the event belongs to.
        tag: The event's stable tag.
        schema: Schema version the record was written under.
        event: The event, upgraded to the current vocabulary.
    """

    session_id: str
    seq: int
    mono_ns: int
    wall_ns: int
    epoch: int
    tag: str
    schema: int
    event: Event


class _Stored(msgspec.Struct, frozen=True, array_like=True):
    seq: int
    mono_ns: int
    wall_ns: int
    epoch: int
    schema: int
    event: Event


class _StoredRaw(msgspec.Struct, frozen=True, array_like=True):
    seq: int
    mono_ns: int
    wall_ns: int
    epoch: int
    schema: int
    event: msgspec.Raw


class _Snapshot(msgspec.Struct, frozen=True, array_like=True):
    seq: int
    state: msgspec.Raw


ENCODER = msgspec.msgpack.Encoder()
_encoder = ENCODER
_stored_decoder = msgspec.msgpack.Decoder(_Stored)
_stored_raw_decoder = msgspec.msgpack.Decoder(_StoredRaw)
_snapshot_decoder = msgspec.msgpack.Decoder(_Snapshot)

FRAME = struct.Struct("<II")
"""Frame header: payload length, CRC32C of the payload."""

MAX_RECORD_BYTES = 64 << 20
"""Largest payload accepted; a larger declared length can only be damage."""

crc32c = google_crc32c.value
"""CRC32C (Castagnoli) of a bytes object."""


def encode_stored(seq: int, mono_ns: int, wall_ns: int, epoch: int, event: Event) -> bytes:
    """The payload of one record.

    Raises:
        JournalError: the event holds something msgpack cannot carry, or is too large.
    """
    try:
        # A tuple encodes as the same msgpack array as _Stored, without building a Struct.
        payload = _encoder.encode((seq, mono_ns, wall_ns, epoch, SCHEMA_VERSION, event))
    except (TypeError, OverflowError, msgspec.EncodeError) as exc:
        raise JournalError(f"cannot journal {event_tag(event)!r} event: {exc}") from exc
    if len(payload) > MAX_RECORD_BYTES:
        raise JournalError(f"{event_tag(event)!r} event is {len(payload)} bytes, over the limit")
    return payload


def decode_stored(payload: bytes, *, path: str = "", offset: int = -1) -> _Stored:
    """Decode one payload, upgrading events written under older tags.

    Raises:
        JournalCorrupt: the payload is not a record of any known event.
    """
    try:
        return _stored_decoder.decode(payload)
    except msgspec.ValidationError:
        pass
    except msgspec.DecodeError as exc:
        raise JournalCorrupt(f"undecodable record: {exc}", path=path, offset=offset) from exc
    try:
        raw = _stored_raw_decoder.decode(payload)
        event = decode_event(bytes(raw.event))
    except msgspec.MsgspecError as exc:
        raise JournalCorrupt(f"undecodable record: {exc}", path=path, offset=offset) from exc
    return _Stored(raw.seq, raw.mono_ns, raw.wall_ns, raw.epoch, raw.schema, event)


def to_record(session_id: str, stored: _Stored) -> Record:
    return Record(
        session_id=session_id,
        seq=stored.seq,
        mono_ns=stored.mono_ns,
        wall_ns=stored.wall_ns,
        epoch=stored.epoch,
        tag=event_tag(stored.event),
        schema=stored.schema,
        event=stored.event,
    )


def encode_snapshot(seq: int, state: SessionState) -> bytes:
    """A framed snapshot: the state after the events before ``seq``."""
    payload = _encoder.encode((seq, msgspec.Raw(encode_state(state))))
    return FRAME.pack(len(payload), crc32c(payload)) + payload


def decode_snapshot(data: bytes) -> tuple[int, SessionState]:
    """Decode a framed snapshot.

    Raises:
        JournalCorrupt: the snapshot is damaged (offset 0).
    """
    if len(data) < FRAME.size:
        raise JournalCorrupt("snapshot is truncated", offset=0)
    length, crc = FRAME.unpack_from(data)
    payload = data[FRAME.size :]
    if length != len(payload) or crc32c(payload) != crc:
        raise JournalCorrupt("snapshot fails its checksum", offset=0)
    try:
        snap = _snapshot_decoder.decode(payload)
        return snap.seq, decode_state(bytes(snap.state))
    except msgspec.MsgspecError as exc:
        raise JournalCorrupt(f"undecodable snapshot: {exc}", offset=0) from exc


def _valid_frame_at(data: bytes, pos: int) -> bool:
    end = len(data)
    if pos + FRAME.size > end:
        return False
    length, crc = FRAME.unpack_from(data, pos)
    stop = pos + FRAME.size + length
    if length == 0 or length > MAX_RECORD_BYTES or stop > end:
        return False
    return bool(crc32c(data[pos + FRAME.size : stop]) == crc)


def _valid_frame_after(data: bytes, bad: int) -> int:
    """Offset of the first intact frame after the damaged one at ``bad``, or -1.

    Tells a torn tail (nothing intact follows: a write cut short, or zeros left by a crash)
    from damage in the middle (intact records follow, so truncating would lose them).
    """
    end = len(data)
    if bad + FRAME.size <= end:
        length, _ = FRAME.unpack_from(data, bad)
        nxt = bad + FRAME.size + length
        if length > 0 and nxt < end and _valid_frame_at(data, nxt):
            return int(nxt)  # the length survived, the payload did not: the common bit-rot case
    pos = bad + 1
    while pos + FRAME.size <= end:
        if data[pos] == 0 and data[pos : pos + FRAME.size] == bytes(FRAME.size):
            # Skip a run of zeros at once (what a crash leaves in preallocated blocks).
            run = data[pos:end]
            pos = end - len(run.lstrip(b"\0"))
            continue
        if _valid_frame_at(data, pos):
            return pos
        pos += 1
    return -1


class FrameReader:
    """Walks the frames of a buffer, yielding ``(offset, payload)`` of each intact one.

    After the loop has run to its end, ``end`` is the offset after the last intact frame and
    ``torn`` the number of bytes after it that form a torn tail (0 when the buffer ended
    cleanly).

    Raises:
        JournalCorrupt: (while iterating) a damaged frame is followed by intact ones.
    """

    def __init__(self, data: bytes, start: int, *, path: str = "") -> None:
        self.data = data
        self.start = start
        self.path = path
        self.end = start
        self.torn = 0

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        data = self.data
        size = len(data)
        pos = self.start
        unpack = FRAME.unpack_from
        hsize = FRAME.size
        crc = crc32c
        while pos + hsize <= size:
            length, expected = unpack(data, pos)
            stop = pos + hsize + length
            if length == 0 or stop > size:
                break
            payload = data[pos + hsize : stop]
            if crc(payload) != expected:
                break
            yield pos, payload
            pos = stop
        self.end = pos
        if pos < size:
            if _valid_frame_after(data, pos) >= 0:
                raise JournalCorrupt(
                    "damaged record followed by intact ones", path=self.path, offset=pos
                )
            self.torn = size - pos


def iter_frames(data: bytes, start: int, *, path: str = "") -> FrameReader:
    """Shorthand for :class:`FrameReader`."""
    return FrameReader(data, start, path=path)
