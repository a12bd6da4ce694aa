"""The journal contract shared by every backend: ``Journal`` and ``JournalWriter``.

Rules every backend keeps (DESIGN.md section 4):

* **One writer per session stream.** ``Journal.writer(session_id)`` hands out the stream's
  only writer in this process; ``append(events, expected_seq=...)`` raises
  :class:`~antiphon.errors.JournalConflict` when ``expected_seq`` is not the stream's next
  seq, so two writers that believe they own a stream cannot interleave.
* **Write ahead of effects.** Callers append an event *before* anything acts on it: a tool
  runs only after its ``ToolCallRequested`` is appended, a tool result is sent to the provider
  only after its ``ToolCallFinished`` is appended, audio is played only after its
  ``GenerationAudioDelta`` is appended. After ``append`` returns, the records survive a
  process crash; what survives a machine crash depends on :class:`Durability`.
* **No inline audio.** Audio lives in the audio store (``write_audio`` returns an
  :class:`~antiphon.protocol.AudioSpan`); an event appended with inline audio bytes is moved
  there by the writer, so a journal never carries audio inline.
* **Synchronous.** The API is plain blocking IO on the caller's thread: a buffered write to
  the page cache costs microseconds; ``Durability.always()`` fsyncs inline and blocks.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from typing import Final

import msgspec

from antiphon.errors import JournalConflict, JournalCorrupt, JournalError
from antiphon.protocol import (
    AudioSpan,
    Event,
    GenerationAudioDelta,
    SessionState,
    UserAudio,
    fold,
)

from ._record import Record, _Stored, to_record

__all__ = ["AUDIO_STREAMS", "DEFAULT_USER_SAMPLE_RATE", "Journal", "JournalWriter"]

AUDIO_STREAMS: Final = ("user", "assistant")

DEFAULT_USER_SAMPLE_RATE: Final = 16_000
"""Rate assumed for inline ``UserAudio`` bytes when the user stream has no rate yet
(``UserAudio`` does not carry its rate; the runtime writes user audio with ``write_audio``)."""


class JournalWriter(abc.ABC):
    """The single writer of one session stream. Obtain it from :meth:`Journal.writer`.

    Attributes:
        session_id: The stream this writer appends to.
    """

    session_id: str

    def __init__(
        self, session_id: str, *, next_seq: int, snapshot_every: int, snapshot_seq: int
    ) -> None:
        self.session_id = session_id
        self._next_seq = next_seq
        self._snapshot_every = snapshot_every
        self._snapshot_seq = snapshot_seq
        self._closed = False

    @property
    def next_seq(self) -> int:
        """The seq the next appended event gets (the first event of a stream has seq 0)."""
        return self._next_seq

    @property
    def closed(self) -> bool:
        return self._closed

    deferred_sync = False
    """When True, a ``batch`` policy never fsyncs inside ``append``: the owner calls
    ``flush()`` by ``flush_deadline`` instead, and may call it from a worker thread while
    appends go on (the runtime does, so fsync never blocks its event loop)."""

    @property
    def flush_deadline(self) -> float | None:
        """``time.monotonic()`` value by which ``flush`` should be called so that appended
        records meet the durability policy even if no further append comes; None when
        nothing is waiting for an fsync."""
        return None

    def append(
        self,
        events: Sequence[Event],
        *,
        expected_seq: int,
        epoch: int,
        mono_ns: int,
        wall_ns: int,
        state: SessionState | None = None,
    ) -> int:
        """Append events as one write; they get seqs ``expected_seq, expected_seq + 1, ...``.

        Args:
            events: Events in order; audio ones should already carry a ``span``.
            expected_seq: The seq the caller believes comes next (``next_seq``).
            epoch: Connection epoch the events belong to.
            mono_ns: Caller's monotonic clock reading (ns).
            wall_ns: Caller's wall clock reading (unix ns).
            state: The session state *after* these events; when given, the writer stores it
                as a snapshot every ``snapshot_every`` events so replay stays cheap.

        Returns:
            The new ``next_seq``.

        Raises:
            JournalConflict: ``expected_seq`` is not the stream's next seq.
            JournalError: the writer is closed, an event cannot be encoded, or the store failed.
        """
        if self._closed:
            raise JournalError(f"journal writer for {self.session_id!r} is closed")
        seq = self._next_seq
        if expected_seq != seq:
            raise JournalConflict(self.session_id, expected_seq, seq)
        if not events:
            return seq
        for i, event in enumerate(events):
            t = type(event)
            if (t is GenerationAudioDelta or t is UserAudio) and event.audio:  # type: ignore[union-attr]
                events = self._spill_audio(events, i)
                break
        self._write(events, seq, epoch, mono_ns, wall_ns)
        seq += len(events)
        self._next_seq = seq
        if state is not None and seq - self._snapshot_seq >= self._snapshot_every:
            self._write_snapshot(seq, state)
            self._snapshot_seq = seq
        return seq

    def _spill_audio(self, events: Sequence[Event], first: int) -> list[Event]:
        """Move inline audio of ``events[first:]`` to the audio store, leaving spans."""
        out = list(events)
        for i in range(first, len(out)):
            event = out[i]
            if isinstance(event, GenerationAudioDelta) and event.audio:
                span = self.write_audio("assistant", event.audio, event.sample_rate)
                out[i] = msgspec.structs.replace(event, audio=b"", span=span)
            elif isinstance(event, UserAudio) and event.audio:
                rate = self._audio_rate("user") or DEFAULT_USER_SAMPLE_RATE
                span = self.write_audio("user", event.audio, rate)
                out[i] = msgspec.structs.replace(event, audio=b"", span=span)
        return out

    def write_audio(self, stream: str, pcm: bytes, sample_rate: int) -> AudioSpan:
        """Append PCM16 mono audio to the stream's audio store; returns its span.

        Call it before appending the event that references the span. A stream keeps one
        sample rate (resample before writing).

        Raises:
            JournalError: unknown stream, odd byte count, a rate that differs from the
                stream's, a closed writer, or a store failure.
        """
        if self._closed:
            raise JournalError(f"journal writer for {self.session_id!r} is closed")
        if stream not in AUDIO_STREAMS:
            raise JournalError(f"unknown audio stream {stream!r}; expected 'user' or 'assistant'")
        if len(pcm) % 2:
            raise JournalError(f"PCM16 audio must have an even byte count, got {len(pcm)}")
        if sample_rate <= 0:
            raise JournalError(f"sample rate must be positive, got {sample_rate}")
        known = self._audio_rate(stream)
        if known and known != sample_rate:
            raise JournalError(
                f"{stream} audio of {self.session_id!r} is stored at {known} Hz,"
                f" got {sample_rate} Hz"
            )
        offset = self._write_audio_bytes(stream, pcm, sample_rate)
        return AudioSpan(stream=stream, offset=offset, length=len(pcm), sample_rate=sample_rate)

    def flush(self) -> None:  # noqa: B027 - backends without fsync have nothing to do
        """Make everything appended so far durable now (fsync unless the policy is none)."""

    def close(self) -> None:
        """Flush and release the stream; a new writer may then be opened for it."""
        self._closed = True

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abc.abstractmethod
    def _write(
        self, events: Sequence[Event], seq: int, epoch: int, mono_ns: int, wall_ns: int
    ) -> None: ...

    @abc.abstractmethod
    def _write_snapshot(self, seq: int, state: SessionState) -> None: ...

    @abc.abstractmethod
    def _audio_rate(self, stream: str) -> int:
        """The stream's sample rate, or 0 when it holds no audio yet."""

    @abc.abstractmethod
    def _write_audio_bytes(self, stream: str, pcm: bytes, sample_rate: int) -> int:
        """Append and return the offset the bytes were written at."""


class Journal(abc.ABC):
    """A backend holding many session streams."""

    @abc.abstractmethod
    def writer(self, session_id: str) -> JournalWriter:
        """The writer of ``session_id``'s stream, continuing at its next seq if it exists.

        Raises:
            JournalError: a writer for that stream is already open (one writer per stream),
                or the session id is unusable.
            JournalCorrupt: the stream is damaged in a way truncation cannot repair.
        """

    @abc.abstractmethod
    def sessions(self) -> list[str]:
        """Ids of the session streams held, sorted."""

    @abc.abstractmethod
    def _stored(self, session_id: str, start_seq: int) -> Iterator[_Stored]:
        """Stored records from ``start_seq`` on; raises JournalError for an unknown session."""

    @abc.abstractmethod
    def _snapshots(self, session_id: str) -> list[int]:
        """Seqs of the stored snapshots, oldest first."""

    @abc.abstractmethod
    def _load_snapshot(self, session_id: str, seq: int) -> SessionState:
        """Raises JournalCorrupt when the snapshot is damaged."""

    @abc.abstractmethod
    def read_audio(self, session_id: str, span: AudioSpan) -> bytes:
        """The PCM16 bytes of ``span``.

        Raises:
            JournalError: unknown session or stream, or the span lies outside the store.
        """

    @abc.abstractmethod
    def audio(self, session_id: str, stream: str) -> tuple[bytes, int]:
        """The whole ``stream`` ("user" or "assistant") and its sample rate (0 if empty)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close every writer this journal handed out that is still open."""

    def records(self, session_id: str, *, start_seq: int = 0) -> Iterator[Record]:
        """Records of a stream in seq order, from ``start_seq``.

        Raises:
            JournalError: (while iterating) the session does not exist.
            JournalCorrupt: (while iterating) a damaged record; the records before it were
                yielded, the damaged one and those after it never are.
        """
        for stored in self._stored(session_id, start_seq):
            yield to_record(session_id, stored)

    def events(self, session_id: str, *, start_seq: int = 0) -> Iterator[Event]:
        """The events of a stream in seq order (see :meth:`records`)."""
        for stored in self._stored(session_id, start_seq):
            yield stored.event

    def replay(self, session_id: str) -> SessionState:
        """The session's state: the newest usable snapshot plus a fold of the events after it.

        A snapshot is usable when it decodes and the stream holds the event just before it;
        otherwise an older one (or none) is used, so the result always equals
        ``fold(events(session_id))``.

        Raises:
            JournalError: the session does not exist.
            JournalCorrupt: a damaged record after the snapshot used.
        """
        for seq in reversed(self._snapshots(session_id)):
            if seq <= 0:
                continue
            try:
                state = self._load_snapshot(session_id, seq)
            except JournalCorrupt:
                continue
            it = self._stored(session_id, seq - 1)
            first = next(it, None)
            if first is None or first.seq != seq - 1:
                continue  # the snapshot is ahead of the stream (its tail was lost)
            return fold((s.event for s in it), state)
        return fold(s.event for s in self._stored(session_id, 0))

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
