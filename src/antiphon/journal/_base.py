"""The journal contract: :class:`JournalBackend` (what a backend implements) and
:class:`JournalWriter` (the one writer class every backend shares).

How this works. A backend stores bytes: records as opaque payloads at consecutive sequence
numbers, audio as PCM16 byte streams, snapshots as opaque blobs. Everything that knows about
events lives here, once, for every backend: encoding records (so every backend stores the same
format and upgrades old records the same way on read), moving inline audio to the audio store,
deciding when to snapshot, folding a replay. A new backend (the Redis Streams one, for
example) subclasses :class:`JournalBackend` and implements its abstract methods; the shared
conformance suite, :class:`antiphon.testing.JournalConformance`, then checks it.

Rules every backend keeps (DESIGN.md section 4):

* **One writer per session stream.** :meth:`JournalBackend.writer` takes the stream's lease
  (:meth:`JournalBackend.acquire`); a second writer is refused while the lease is held, unless
  the caller takes the stream over (``take_over=True``: its holder is known to be dead).
* **Conditional appends.** Each append names the sequence number its caller believes comes
  next (``expected_seq``): the sequence after the caller's last successful append. The backend
  checks it against the stream itself, atomically with the write, and refuses a mismatch with
  :class:`~antiphon.errors.JournalConflict`. Two writers that both believe they own a stream
  (a taken-over writer that was not dead after all) therefore never interleave: whichever
  appends second with a stale view is refused.
* **Write ahead of effects.** Callers append an event *before* anything acts on it: a tool
  runs only after its ``ToolCallRequested`` is appended, a tool result is sent to the provider
  only after its ``ToolCallFinished`` is appended. After ``append`` returns, the records
  survive a process crash; what survives a machine crash is the backend's durability policy.
* **No inline audio.** The writer moves the inline audio of ``UserAudio`` and
  ``GenerationAudioDelta`` events to the audio store (each at its own sample rate) and
  journals the events with an :class:`~antiphon.protocol.AudioSpan` instead; it is the only
  part of antiphon that does.
* **Synchronous.** The API is plain blocking IO on the caller's thread: a buffered write to
  the page cache costs microseconds; a backend whose durability blocks (fsync) lets its owner
  defer that to another thread (:attr:`JournalWriter.deferred_sync`).
"""

from __future__ import annotations

import abc
import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Final

import msgspec

from antiphon.errors import JournalConflict, JournalCorrupt, JournalError
from antiphon.protocol import (
    SCHEMA_VERSION,
    AudioSpan,
    Event,
    GenerationAudioDelta,
    SessionState,
    UserAudio,
    fold,
)

from ._capture import CaptureMode, check_capture_mode
from ._record import (
    ENCODER,
    MAX_RECORD_BYTES,
    Record,
    _Stored,
    decode_snapshot,
    decode_stored,
    encode_snapshot,
    encode_stored,
    to_record,
)

__all__ = ["AUDIO_STREAMS", "Appended", "JournalBackend", "JournalWriter", "Lease"]

AUDIO_STREAMS: Final = ("user", "assistant", "wire", "wire-audio")
"""The byte streams of a session's audio store: the audio sent to the provider and the audio
it sent back (PCM16), then the wire capture's frames and the audio payloads cut out of them
(bytes, at a nominal rate of 1: see ``journal/_capture.py``)."""


class Lease(msgspec.Struct, frozen=True, kw_only=True):
    """A writer's hold on one session stream, granted by :meth:`JournalBackend.acquire`.

    Attributes:
        session_id: The stream held.
        token: Identifies this grant among all grants of the stream (unique across processes
            and machines for a shared backend), so that releasing a lease that was taken over
            does not release its new holder's.
        start_seq: The stream's next sequence number when the lease was granted.
    """

    session_id: str
    token: str
    start_seq: int


class Appended(msgspec.Struct, frozen=True, kw_only=True):
    """What :meth:`JournalWriter.append` journalled.

    Attributes:
        first_seq: Sequence number of the first event (the ``expected_seq`` passed).
        next_seq: The sequence after the last event: the ``expected_seq`` of the next append.
        events: The events as journalled: inline audio replaced by a span of the audio store.
    """

    first_seq: int
    next_seq: int
    events: tuple[Event, ...]


class JournalWriter:
    """The single writer of one session stream. Obtain it from :meth:`JournalBackend.writer`.

    Its caller tracks the sequence it believes comes next (start from :attr:`next_seq`, then
    take :attr:`Appended.next_seq` of each append) and passes it to :meth:`append`; a writer
    whose stream was appended to by someone else is refused instead of interleaving.

    Attributes:
        session_id: The stream this writer appends to.
        snapshot_errors: Snapshots the backend failed to store (each only saves replay time:
            a failure never fails the append, and the next snapshot is tried later).
    """

    def __init__(self, backend: JournalBackend, lease: Lease) -> None:
        self.session_id = lease.session_id
        self.snapshot_errors = 0
        self._backend = backend
        self._lease = lease
        self._next_seq = lease.start_seq
        self._snapshot_every = backend.snapshot_every
        self._snapshot_seq = max(backend.snapshot_seqs(lease.session_id), default=0)
        self._deferred_sync = False
        self._closed = False
        # Each audio stream's rate, asked of the backend once and then kept here: the check
        # runs on every audio write.
        self._rates: dict[str, int] = {}
        # Called with the events of each append before they are written, and with None
        # before a flush or close: a wire capture that collects its entries writes out what
        # must be in the journal ahead of those records (None: all of them).
        self.before_records: Callable[[Sequence[Event] | None], None] | None = None

    @property
    def next_seq(self) -> int:
        """The seq this writer's next append starts at: the stream's next seq when the writer
        was opened, then the one after its last successful append (the first event of a
        stream has seq 0)."""
        return self._next_seq

    @property
    def capture(self) -> CaptureMode:
        """What the session keeps of its wire frames: the journal's ``capture`` mode."""
        return self._backend.capture

    @property
    def closed(self) -> bool:
        """True once closed, by :meth:`close`, by the journal's ``close``, or by a failed write."""
        return self._closed

    @property
    def deferred_sync(self) -> bool:
        """When True, a blocking durability step (a file journal's batch fsync) never runs
        inside ``append``: the owner calls :meth:`flush` by :attr:`flush_deadline` instead,
        and may call it from a worker thread while appends go on (the runtime does, so fsync
        never blocks its event loop)."""
        return self._deferred_sync

    @deferred_sync.setter
    def deferred_sync(self, deferred: bool) -> None:
        self._deferred_sync = deferred
        self._backend.defer_sync(self._lease, deferred)

    @property
    def flushes_itself(self) -> bool:
        """Once deferred, nobody needs to call :meth:`flush` by :attr:`flush_deadline`: the
        journal meets its durability policy on its own (``JournalBackend.flushes_itself``)."""
        return self._backend.flushes_itself

    @property
    def flush_deadline(self) -> float | None:
        """``time.monotonic()`` value by which :meth:`flush` should be called so that appended
        records meet the durability policy even if no further append comes; None when nothing
        is waiting for it."""
        if self._closed:
            return None
        return self._backend.flush_deadline(self._lease)

    def append(
        self,
        events: Sequence[Event],
        *,
        expected_seq: int,
        epoch: int,
        mono_ns: int,
        wall_ns: int,
        state: SessionState | None = None,
    ) -> Appended:
        """Journal ``events`` as one all-or-nothing write, at seqs ``expected_seq, +1, ...``.

        Inline audio (``UserAudio.audio``, ``GenerationAudioDelta.audio``) is first moved to
        the session's audio store at the event's own ``sample_rate``; the events are journalled
        with the resulting spans, and returned that way.

        Args:
            events: Events in order.
            expected_seq: The seq the caller believes comes next: the ``next_seq`` of its last
                successful append (or :attr:`next_seq` before its first).
            epoch: Connection epoch the events belong to.
            mono_ns: Caller's monotonic clock reading (ns).
            wall_ns: Caller's wall clock reading (unix ns).
            state: The session state *after* these events; when given, it is stored as a
                snapshot every ``snapshot_every`` events so replay stays cheap. Folding the
                events before or after this call gives the same state (the reducer counts a
                span as the audio bytes it replaced).

        Returns:
            The sequence numbers taken and the events as journalled.

        Raises:
            JournalConflict: ``expected_seq`` is not this writer's next seq, or the stream was
                appended to by another writer; nothing was journalled. A writer that was
                overtaken stays refused: whoever continues the session replays the journal
                and opens a new writer.
            JournalError: the writer is closed, an event cannot be encoded or its audio
                stored, or the backend failed (the writer is then closed: a new writer starts
                at the stream's real end).
        """
        if self._closed:
            raise JournalError(f"journal writer for {self.session_id!r} is closed")
        if expected_seq != self._next_seq:
            raise JournalConflict(self.session_id, expected_seq, self._next_seq)
        if self.before_records is not None:
            self.before_records(events)
        stored = tuple(events)
        for i, event in enumerate(stored):
            t = type(event)
            if (t is GenerationAudioDelta or t is UserAudio) and event.audio:  # type: ignore[union-attr]
                stored = self._spill_audio(stored, i)
                break
        payloads = _encode(stored, expected_seq, epoch, mono_ns, wall_ns)
        try:
            self._backend.append_records(self._lease, expected_seq, payloads)
        except JournalConflict:
            raise
        except JournalError:
            self._fail()
            raise
        seq = expected_seq + len(payloads)
        self._next_seq = seq
        if state is not None and seq - self._snapshot_seq >= self._snapshot_every:
            self._snapshot_seq = seq
            try:
                self._backend.write_snapshot(self._lease, seq, encode_snapshot(seq, state))
            except JournalError:
                self.snapshot_errors += 1
        return Appended(first_seq=expected_seq, next_seq=seq, events=stored)

    def _spill_audio(self, events: tuple[Event, ...], first: int) -> tuple[Event, ...]:
        """Move inline audio of ``events[first:]`` to the audio store, leaving spans."""
        out = list(events)
        for i in range(first, len(out)):
            event = out[i]
            if isinstance(event, GenerationAudioDelta) and event.audio:
                span = self.write_audio("assistant", event.audio, event.sample_rate)
                out[i] = msgspec.structs.replace(event, audio=b"", span=span)
            elif isinstance(event, UserAudio) and event.audio:
                span = self.write_audio("user", event.audio, event.sample_rate)
                out[i] = msgspec.structs.replace(event, audio=b"", span=span)
        return tuple(out)

    def write_audio(self, stream: str, pcm: bytes, sample_rate: int) -> AudioSpan:
        """Append PCM16 mono audio to one of the session's audio streams; returns its span.

        :meth:`append` calls this for inline audio; call it directly only to store audio that
        an event appended afterwards references. A stream keeps one sample rate (resample
        before writing).

        Raises:
            JournalError: unknown stream, odd byte count, a rate that differs from the
                stream's, a closed writer, or a store failure (which closes the writer).
        """
        if self._closed:
            raise JournalError(f"journal writer for {self.session_id!r} is closed")
        if stream not in AUDIO_STREAMS:
            raise JournalError(f"unknown audio stream {stream!r}; expected 'user' or 'assistant'")
        if len(pcm) % 2:
            raise JournalError(f"PCM16 audio must have an even byte count, got {len(pcm)}")
        if sample_rate <= 0:
            raise JournalError(f"sample rate must be positive, got {sample_rate}")
        known = self._rates.get(stream)
        if known is None:
            known = self._rates[stream] = self._backend.audio_rate(self.session_id, stream)
        if known and known != sample_rate:
            raise JournalError(
                f"{stream} audio of {self.session_id!r} is stored at {known} Hz,"
                f" got {sample_rate} Hz"
            )
        try:
            offset = self._backend.append_audio(self._lease, stream, pcm, sample_rate)
        except JournalError:
            self._fail()
            raise
        self._rates[stream] = sample_rate
        return AudioSpan(stream=stream, offset=offset, length=len(pcm), sample_rate=sample_rate)

    def flush(self) -> None:
        """Make everything appended so far durable now (a no-op for a closed writer).

        Raises:
            JournalError: the backend failed (the writer is then closed).
        """
        if self._closed:
            return
        if self.before_records is not None:
            self.before_records(None)
        try:
            self._backend.flush(self._lease)
        except JournalError:
            self._fail()
            raise

    def close(self) -> None:
        """Flush and release the stream; a new writer may then be opened for it."""
        if self._closed:
            return
        if self.before_records is not None:
            self.before_records(None)
        self._closed = True
        self._backend._forget(self)
        self._backend.release(self._lease)

    def _fail(self) -> None:
        """After a failed write the stream's end is unknown to this writer: only a new writer
        (which starts at the stream's real end) may continue it."""
        if self._closed:
            return
        self._closed = True
        self._backend._forget(self)
        with contextlib.suppress(JournalError):
            self._backend.release(self._lease)

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _encode(
    events: Sequence[Event], seq: int, epoch: int, mono_ns: int, wall_ns: int
) -> list[bytes]:
    """Record payloads for ``events`` (the runtime's hot path: ``encode_stored`` inlined).

    Raises:
        JournalError: an event cannot be encoded, or its record is too large.
    """
    encode = ENCODER.encode
    payloads: list[bytes] = []
    s = seq
    try:
        for event in events:
            payload = encode((s, mono_ns, wall_ns, epoch, SCHEMA_VERSION, event))
            if len(payload) > MAX_RECORD_BYTES:
                raise ValueError
            payloads.append(payload)
            s += 1
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
        encode_stored(s, mono_ns, wall_ns, epoch, events[s - seq])  # raises JournalError
        raise
    return payloads


class JournalBackend(abc.ABC):
    """Base class of every journal backend: a store of many session streams.

    Apps use the concrete methods (:meth:`writer`, :meth:`records`, :meth:`events`,
    :meth:`replay`, :meth:`read_audio`, :meth:`audio`, :meth:`sessions`, :meth:`close`).
    A backend implements the abstract ones, which trade in bytes and sequence numbers only:

    * ownership: :meth:`acquire`, :meth:`release`;
    * records: :meth:`append_records` (conditional on the expected seq), :meth:`read_records`;
    * audio: :meth:`append_audio`, :meth:`audio_rate`, :meth:`read_audio`, :meth:`audio`;
    * snapshots: :meth:`write_snapshot`, :meth:`snapshot_seqs`, :meth:`read_snapshot`;
    * :meth:`sessions`;

    and may override the durability hooks :meth:`flush`, :meth:`flush_deadline` and
    :meth:`defer_sync` when appending does not make records durable by itself; one that meets
    its policy on its own once deferred sets :attr:`flushes_itself`. A backend that
    holds resources of its own overrides :meth:`close` and calls ``super().close()``.

    Unless stated otherwise a method may be called from any thread, and a method given the id
    of a session the backend does not hold raises :class:`~antiphon.errors.JournalError`.

    Wire capture (``capture``) needs nothing of a backend beyond the audio-store methods: the
    capture is two more byte streams of :data:`AUDIO_STREAMS`.

    Args:
        snapshot_every: Store a snapshot every this many events (when ``append`` gets a state).
        capture: What a session journalled here keeps of its provider's wire frames:
            ``"off"``, ``"metadata"`` (each frame's epoch, direction, time, size and kind; the
            default) or ``"full"`` (the frames too, for ``antiphon journal replay``).

    Raises:
        JournalError: ``snapshot_every`` is less than 1, or ``capture`` is not a mode.
    """

    capture: CaptureMode = "metadata"
    flushes_itself: bool = False
    """True when a deferred writer (:meth:`defer_sync`) needs no owner calling :meth:`flush`
    by :meth:`flush_deadline`: the backend meets its durability policy on its own (the file
    journal fsyncs all its deferred writers together from one thread of its own; the memory
    journal has nothing to make durable). False (the default): the owner runs :meth:`flush`
    by the deadline, as the session runtime does with a task per session."""

    def __init__(self, *, snapshot_every: int = 1000, capture: CaptureMode = "metadata") -> None:
        if snapshot_every < 1:
            raise JournalError(f"snapshot_every must be >= 1, got {snapshot_every}")
        self.snapshot_every = snapshot_every
        self.capture = check_capture_mode(capture)
        self._writers: list[JournalWriter] = []
        self._writers_lock = threading.Lock()

    # --- the app's API ------------------------------------------------------------------

    def writer(self, session_id: str, *, take_over: bool = False) -> JournalWriter:
        """The writer of ``session_id``'s stream, continuing at its next seq if it exists.

        Args:
            session_id: The stream; created when new.
            take_over: Open the stream even though another writer holds it, for resuming a
                session whose writer is known to be dead while the backend still counts it
                as the holder. The old writer is not stopped: if it does append again,
                whichever of the two appends second is refused with ``JournalConflict`` (a
                backend with fencing, the Redis journal, refuses the old writer at once:
                :class:`~antiphon.errors.LeaseLost`).

        Raises:
            JournalError: another writer holds the stream (and ``take_over`` is false, or the
                backend cannot take it from where it is held), or the session id is unusable.
            JournalCorrupt: the stream is damaged in a way truncation cannot repair.
        """
        if not session_id:
            raise JournalError("session id must not be empty")
        lease = self.acquire(session_id, take_over=take_over)
        try:
            writer = JournalWriter(self, lease)
        except BaseException:
            self.release(lease)
            raise
        with self._writers_lock:
            self._writers.append(writer)
        return writer

    def _forget(self, writer: JournalWriter) -> None:
        with self._writers_lock, contextlib.suppress(ValueError):
            self._writers.remove(writer)

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

    def _stored(self, session_id: str, start_seq: int) -> Iterator[_Stored]:
        seq = max(start_seq, 0)
        for payload in self.read_records(session_id, seq):
            try:
                stored = decode_stored(payload)
            except JournalCorrupt as exc:
                raise JournalCorrupt(f"record {seq} of {session_id!r}: {exc}") from exc
            if stored.seq != seq:
                raise JournalCorrupt(
                    f"record of {session_id!r} has seq {stored.seq}, expected {seq}"
                )
            yield stored
            seq += 1

    def replay(self, session_id: str) -> SessionState:
        """The session's state: the newest usable snapshot plus a fold of the events after it.

        A snapshot is usable when it decodes and the stream holds the event just before it;
        otherwise an older one (or none) is used, so the result always equals
        ``fold(events(session_id))``.

        Raises:
            JournalError: the session does not exist.
            JournalCorrupt: a damaged record after the snapshot used.
        """
        for seq in reversed(self.snapshot_seqs(session_id)):
            if seq <= 0:
                continue
            try:
                stored_seq, state = decode_snapshot(self.read_snapshot(session_id, seq))
            except JournalCorrupt:
                continue
            if stored_seq != seq:
                continue
            it = self._stored(session_id, seq - 1)
            if next(it, None) is None:
                continue  # the snapshot is ahead of the stream (its tail was lost)
            return fold((s.event for s in it), state)
        return fold(s.event for s in self._stored(session_id, 0))

    def close(self) -> None:
        """Close every writer this journal handed out that is still open."""
        with self._writers_lock:
            writers = list(self._writers)
        for writer in writers:
            writer.close()

    def __enter__(self) -> JournalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- ownership ----------------------------------------------------------------------

    @abc.abstractmethod
    def acquire(self, session_id: str, *, take_over: bool) -> Lease:
        """Make the caller the stream's only writer, creating the stream when new.

        Before granting, the backend brings the stream to a consistent end (the file backend
        truncates a torn tail) so that ``Lease.start_seq`` is the seq the next record gets.
        Records are then only appended through the returned lease.

        Args:
            session_id: The stream.
            take_over: Grant the lease even though another lease of the stream is held (its
                holder is known to be dead). A backend that cannot take a lease from where it
                is held (the file backend: a lock held by another process, which the kernel
                frees when that process dies) raises instead.

        Raises:
            JournalError: the stream is held (see ``take_over``), or the session id is
                unusable for this backend.
            JournalCorrupt: the stream is damaged in a way truncation cannot repair.
        """

    @abc.abstractmethod
    def release(self, lease: Lease) -> None:
        """Make what was appended durable (per the backend's policy) and give the stream up.

        Idempotent; releasing a lease that was taken over or already released does nothing to
        the stream's current holder.

        Raises:
            JournalError: the final durability step failed (the lease is released anyway).
        """

    # --- records ------------------------------------------------------------------------

    @abc.abstractmethod
    def append_records(self, lease: Lease, expected_seq: int, payloads: Sequence[bytes]) -> None:
        """Store ``payloads`` at seqs ``expected_seq, expected_seq + 1, ...``, all or nothing.

        Atomic check and write: when the stream's next seq is not ``expected_seq`` (another
        writer appended), nothing is stored. With no payloads only the check is made. When
        this returns, the records are readable by every reader of the backend and survive a
        crash of the calling process; what survives a machine crash is the backend's
        durability policy (see :meth:`flush`).

        Args:
            lease: The caller's lease (the stream's current one, or one that was taken over).
            expected_seq: The seq the first payload gets.
            payloads: Encoded records, opaque to the backend (each at most 64 MiB).

        Raises:
            JournalConflict: the stream's next seq is not ``expected_seq``.
            JournalError: the store failed or the lease was released; what was written is
                then unknown to the caller, whose writer closes.
        """

    @abc.abstractmethod
    def read_records(self, session_id: str, start_seq: int) -> Iterator[bytes]:
        """The payloads stored at seqs ``start_seq, start_seq + 1, ...``, in order, with no gaps,
        until the stream's end (nothing when ``start_seq`` is at or past it).

        A reader sees whole appends only. A backend that can hold damage says where it is.

        Raises:
            JournalError: (while iterating) the session does not exist, or the store failed.
            JournalCorrupt: (while iterating) a damaged record; those before it were yielded.
        """

    # --- audio --------------------------------------------------------------------------

    @abc.abstractmethod
    def append_audio(self, lease: Lease, stream: str, pcm: bytes, sample_rate: int) -> int:
        """Append ``pcm`` to the audio ``stream`` ("user" or "assistant"); return the byte
        offset it starts at.

        The writer has already checked the arguments (a known stream, an even byte count, the
        stream's own rate); the first write of a stream records its ``sample_rate``. Audio is
        not fenced by sequence: audio of a refused append is left unreferenced, which is
        harmless (events are the truth). Audio must be durable no later than a record appended
        after it.

        Raises:
            JournalError: the store failed.
        """

    @abc.abstractmethod
    def audio_rate(self, session_id: str, stream: str) -> int:
        """The sample rate of the audio ``stream``, or 0 while it holds no audio."""

    @abc.abstractmethod
    def read_audio(self, session_id: str, span: AudioSpan) -> bytes:
        """The PCM16 bytes of ``span``.

        Raises:
            JournalError: unknown session or stream, or the span lies outside the store.
        """

    @abc.abstractmethod
    def audio(self, session_id: str, stream: str) -> tuple[bytes, int]:
        """The whole audio ``stream`` ("user" or "assistant") and its sample rate (0 if empty).

        Raises:
            JournalError: unknown session or stream.
        """

    # --- snapshots ----------------------------------------------------------------------

    @abc.abstractmethod
    def write_snapshot(self, lease: Lease, seq: int, data: bytes) -> None:
        """Store the snapshot ``data`` of the state after the events before ``seq``.

        Replaces any snapshot at the same seq; a backend may drop older snapshots (keep at
        least the newest two). Readers must never see a partly written snapshot.

        Raises:
            JournalError: it could not be stored (the append it follows still stands).
        """

    @abc.abstractmethod
    def snapshot_seqs(self, session_id: str) -> list[int]:
        """Seqs of the stored snapshots, oldest first."""

    @abc.abstractmethod
    def read_snapshot(self, session_id: str, seq: int) -> bytes:
        """The snapshot data stored at ``seq``.

        Raises:
            JournalCorrupt: it cannot be read (replay then uses an older one).
        """

    # --- sessions and durability --------------------------------------------------------

    @abc.abstractmethod
    def sessions(self) -> list[str]:
        """Ids of the session streams held, sorted."""

    def flush(self, lease: Lease) -> None:  # noqa: B027 - optional hook, no-op by default
        """Make everything appended through ``lease`` so far durable now.

        The default does nothing: for a backend whose appends are durable when they return.

        Raises:
            JournalError: the durability step failed.
        """

    def flush_deadline(self, lease: Lease) -> float | None:
        """``time.monotonic()`` value by which :meth:`flush` should run to meet the policy, or
        None when nothing waits for it (the default)."""
        return None

    def defer_sync(self, lease: Lease, deferred: bool) -> None:  # noqa: B027 - optional hook
        """Deferred: never run a blocking durability step inside ``append_records`` or
        ``write_snapshot``; the owner calls :meth:`flush` (possibly from another thread, while
        appends go on) by :meth:`flush_deadline`. The default does nothing."""


Journal = JournalBackend
"""The name to annotate a journal with (``open_session(journal=...)``): every journal is a
:class:`JournalBackend`."""
