"""In-memory journal for tests: the file backend's semantics without the files.

Records are stored encoded, exactly as every backend stores them, so what a test reads back
has been through the same encode/decode (and upgrade) path as a real journal. It is also the
smallest complete :class:`~antiphon.journal.JournalBackend`: a model for new backends.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence

from antiphon.errors import JournalConflict, JournalCorrupt, JournalError
from antiphon.protocol import AudioSpan

from ._base import AUDIO_STREAMS, JournalBackend, Lease
from ._capture import CaptureMode

__all__ = ["MemoryJournal"]


class _Stream:
    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.snapshots: dict[int, bytes] = {}
        self.audio: dict[str, bytearray] = {s: bytearray() for s in AUDIO_STREAMS}
        self.rates: dict[str, int] = dict.fromkeys(AUDIO_STREAMS, 0)
        self.holder = ""  # the token of the current lease; "" when nobody writes


class MemoryJournal(JournalBackend):
    """Session streams held in memory (lost with the process); for tests.

    Args:
        snapshot_every: Store a snapshot every this many events (when ``append`` gets a state).
    """

    flushes_itself = True  # nothing to make durable: no owner needs to call flush

    def __init__(self, *, snapshot_every: int = 1000, capture: CaptureMode = "metadata") -> None:
        super().__init__(snapshot_every=snapshot_every, capture=capture)
        self._streams: dict[str, _Stream] = {}
        # One lock for everything: makes each append's check-and-write atomic across threads.
        self._lock = threading.Lock()

    def _stream(self, session_id: str) -> _Stream:
        try:
            return self._streams[session_id]
        except KeyError:
            raise JournalError(f"no session {session_id!r} in this journal") from None

    def acquire(self, session_id: str, *, take_over: bool) -> Lease:
        with self._lock:
            stream = self._streams.setdefault(session_id, _Stream())
            if stream.holder and not take_over:
                raise JournalError(f"a writer for session {session_id!r} is already open")
            stream.holder = uuid.uuid4().hex
            return Lease(session_id=session_id, token=stream.holder, start_seq=len(stream.payloads))

    def release(self, lease: Lease) -> None:
        with self._lock:
            stream = self._streams.get(lease.session_id)
            if stream is not None and stream.holder == lease.token:
                stream.holder = ""

    def append_records(self, lease: Lease, expected_seq: int, payloads: Sequence[bytes]) -> None:
        with self._lock:
            stream = self._stream(lease.session_id)
            if len(stream.payloads) != expected_seq:
                raise JournalConflict(lease.session_id, expected_seq, len(stream.payloads))
            stream.payloads.extend(payloads)

    def read_records(self, session_id: str, start_seq: int) -> Iterator[bytes]:
        payloads = self._stream(session_id).payloads
        for i in range(max(start_seq, 0), len(payloads)):
            yield payloads[i]

    def append_audio(self, lease: Lease, stream: str, pcm: bytes, sample_rate: int) -> int:
        with self._lock:
            s = self._stream(lease.session_id)
            buf = s.audio[stream]
            offset = len(buf)
            buf += pcm
            s.rates[stream] = sample_rate
            return offset

    def audio_rate(self, session_id: str, stream: str) -> int:
        return self._stream(session_id).rates[stream]

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

    def write_snapshot(self, lease: Lease, seq: int, data: bytes) -> None:
        with self._lock:
            self._stream(lease.session_id).snapshots[seq] = data

    def snapshot_seqs(self, session_id: str) -> list[int]:
        return sorted(self._stream(session_id).snapshots)

    def read_snapshot(self, session_id: str, seq: int) -> bytes:
        try:
            return self._stream(session_id).snapshots[seq]
        except KeyError:
            raise JournalCorrupt(f"no snapshot at seq {seq} of {session_id!r}") from None

    def sessions(self) -> list[str]:
        return sorted(self._streams)
