"""In-memory journal for tests: the file backend's semantics without the files.

Records are stored encoded, exactly as the file backend stores them, so what a test reads
back has been through the same encode/decode (and upgrade) path as a real journal.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from antiphon.errors import JournalError
from antiphon.protocol import AudioSpan, Event, SessionState

from ._base import AUDIO_STREAMS, Journal, JournalWriter
from ._record import _Stored, decode_snapshot, decode_stored, encode_snapshot, encode_stored

__all__ = ["MemoryJournal"]


class _Stream:
    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.snapshots: dict[int, bytes] = {}
        self.audio: dict[str, bytearray] = {s: bytearray() for s in AUDIO_STREAMS}
        self.rates: dict[str, int] = dict.fromkeys(AUDIO_STREAMS, 0)


class _MemoryWriter(JournalWriter):
    def __init__(
        self, journal: MemoryJournal, session_id: str, stream: _Stream, every: int
    ) -> None:
        snap = max(stream.snapshots, default=0)
        super().__init__(
            session_id, next_seq=len(stream.payloads), snapshot_every=every, snapshot_seq=snap
        )
        self._journal = journal
        self._stream = stream

    def _write(
        self, events: Sequence[Event], seq: int, epoch: int, mono_ns: int, wall_ns: int
    ) -> None:
        # Encode everything first: a failing event leaves the stream untouched.
        payloads = [
            encode_stored(seq + i, mono_ns, wall_ns, epoch, event) for i, event in enumerate(events)
        ]
        self._stream.payloads.extend(payloads)

    def _write_snapshot(self, seq: int, state: SessionState) -> None:
        self._stream.snapshots[seq] = encode_snapshot(seq, state)

    def _audio_rate(self, stream: str) -> int:
        return self._stream.rates[stream]

    def _write_audio_bytes(self, stream: str, pcm: bytes, sample_rate: int) -> int:
        buf = self._stream.audio[stream]
        offset = len(buf)
        buf += pcm
        self._stream.rates[stream] = sample_rate
        return offset

    def close(self) -> None:
        if not self._closed:
            super().close()
            self._journal._release(self)


class MemoryJournal(Journal):
    """Session streams held in memory (lost with the process); for tests.

    Args:
        snapshot_every: Store a snapshot every this many events (when ``append`` gets a state).
    """

    def __init__(self, *, snapshot_every: int = 1000) -> None:
        if snapshot_every < 1:
            raise JournalError(f"snapshot_every must be >= 1, got {snapshot_every}")
        self._snapshot_every = snapshot_every
        self._streams: dict[str, _Stream] = {}
        self._writers: dict[str, _MemoryWriter] = {}
        self._lock = threading.Lock()

    def writer(self, session_id: str) -> JournalWriter:
        if not session_id:
            raise JournalError("session id must not be empty")
        with self._lock:
            if session_id in self._writers:
                raise JournalError(f"a writer for session {session_id!r} is already open")
            stream = self._streams.setdefault(session_id, _Stream())
            writer = _MemoryWriter(self, session_id, stream, self._snapshot_every)
            self._writers[session_id] = writer
            return writer

    def _release(self, writer: _MemoryWriter) -> None:
        with self._lock:
            if self._writers.get(writer.session_id) is writer:
                del self._writers[writer.session_id]

    def _stream(self, session_id: str) -> _Stream:
        try:
            return self._streams[session_id]
        except KeyError:
            raise JournalError(f"no session {session_id!r} in this journal") from None

    def sessions(self) -> list[str]:
        return sorted(self._streams)

    def _stored(self, session_id: str, start_seq: int) -> Iterator[_Stored]:
        payloads = self._stream(session_id).payloads
        for i in range(max(start_seq, 0), len(payloads)):
            yield decode_stored(payloads[i], offset=i)

    def _snapshots(self, session_id: str) -> list[int]:
        return sorted(self._stream(session_id).snapshots)

    def _load_snapshot(self, session_id: str, seq: int) -> SessionState:
        return decode_snapshot(self._stream(session_id).snapshots[seq])[1]

    def read_audio(self, session_id: str, span: AudioSpan) -> bytes:
        stream = self._stream(session_id)
        if span.stream not in AUDIO_STREAMS:
            raise JournalError(f"unknown audio stream {span.stream!r}")
        buf = stream.audio[span.stream]
        if span.offset < 0 or span.length < 0 or span.offset + span.length > len(buf):
            raise JournalError(f"audio span {span} lies outside the {span.stream} audio store")
        return bytes(buf[span.offset : span.offset + span.length])

    def audio(self, session_id: str, stream: str) -> tuple[bytes, int]:
        s = self._stream(session_id)
        if stream not in AUDIO_STREAMS:
            raise JournalError(f"unknown audio stream {stream!r}")
        return bytes(s.audio[stream]), s.rates[stream]

    def close(self) -> None:
        for writer in list(self._writers.values()):
            writer.close()
