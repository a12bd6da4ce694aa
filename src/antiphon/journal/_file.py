"""File journal: the embedded default backend.

How this works. A journal is a directory (marked by ``journal.meta``) holding one directory
per session stream::

    ROOT/journal.meta                      marker: {"format": "antiphon-journal", ...}
    ROOT/<session_id>/session.meta         {"session_id": ...}
    ROOT/<session_id>/000000000000.seg     segment: 16-byte header, then framed records
    ROOT/<session_id>/audio-user.pcm       raw PCM16 mono (+ audio-user.meta: sample rate)
    ROOT/<session_id>/audio-assistant.pcm
    ROOT/<session_id>/snapshot-000000001000.msgpack   state after the events before seq 1000
    ROOT/<session_id>/writer.lock          held (flock) by the stream's writer

A segment starts with ``SEG_MAGIC`` and the u64 seq of its first record, and is named after
that seq; a new segment is started once the current one reaches ``segment_bytes``. Each record
is framed as ``[u32 length][u32 crc32c(payload)][payload]``. Every ``append`` is one
``write`` of all its frames, so after it returns the records are in the OS (a process crash
loses nothing); fsync follows the :class:`Durability` policy.

Batch durability without a task per session. A writer whose owner defers its fsyncs (the
session runtime does: fsync must never block its event loop) is synced by the journal itself:
one flusher thread per :class:`FileJournal` syncs every dirty deferred writer together, at
most ``interval_s`` after the first append that found it clean: file by file, or, where the
filesystem keeps earlier writes ahead of later ones, with one ``syncfs`` for all of them
(``sync=``, :func:`filesystem_sync_for`). The thread starts with the first such append and
ends when the journal's last deferred writer closes; an idle writer costs it nothing (it is
woken only when a clean writer is appended to). A writer that is not deferred fsyncs inside
``append`` once ``interval_s`` passed, and on ``flush``/``close``.

Damage. When a writer opens a stream, a torn tail of the last segment (a short header, a
length past the end, a checksum mismatch with nothing intact after it, zeros left by a crash)
is truncated. A damaged record followed by intact ones is never skipped: reading stops there
with :class:`~antiphon.errors.JournalCorrupt` carrying the file and byte offset, and opening a
writer on it fails the same way, wherever the damage lies: a writer checks the framing and
checksums of the earlier segments too (replay from a snapshot would never read them). A
malformed audio ``.meta`` file is :class:`~antiphon.errors.JournalCorrupt` naming the file.
Readers never modify files.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import re
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Literal

from antiphon.errors import JournalConflict, JournalCorrupt, JournalError, NotAJournal
from antiphon.protocol import AudioSpan

from ._base import AUDIO_STREAMS, JournalBackend, Lease
from ._capture import CaptureMode
from ._record import FRAME, Durability, crc32c, iter_frames

try:
    import fcntl
except ImportError:  # pragma: no cover - not a POSIX system: the in-process guard remains
    fcntl = None  # type: ignore[assignment]

__all__ = ["FileJournal"]

JOURNAL_MARKER: Final = "journal.meta"
SESSION_MARKER: Final = "session.meta"
SEG_MAGIC: Final = b"ANTPHJ\x00\x01"
SEG_HEADER: Final = struct.Struct("<8sQ")
_SEG_NAME = re.compile(r"^(\d{12})\.seg$")
_SNAP_NAME = re.compile(r"^snapshot-(\d{12})\.msgpack$")
_SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SNAPSHOTS_KEPT = 2
DEFAULT_DURABILITY: Final = Durability.batch()

type SyncScope = Literal["auto", "files", "filesystem"]
"""How a file journal's flusher makes a batch durable (see :class:`FileJournal`)."""
SYNC_SCOPES: Final = ("auto", "files", "filesystem")
FILESYSTEM_SYNC_MIN_FILES: Final = 8
"""Fewer dirty files than this in a round are fsynced one by one even where the filesystem
could be synced whole: two sessions' files cost little, and a whole-filesystem sync also
writes back whatever else is dirty there."""
# Filesystems on which a file's new size never becomes durable before data another file was
# given earlier (ext4 in its default data=ordered mode commits in order; a btrfs commit is one
# transaction; tmpfs has nothing to sync), so one sync of the filesystem keeps the rule the
# fsyncs keep: no durable record points at audio that is not. Others (xfs, network and FUSE
# filesystems, overlays) are fsynced file by file.
_ORDERED_FILESYSTEMS: Final = frozenset({"ext4", "btrfs", "tmpfs"})

# Stream directories with an open writer in this process, by resolved path (None while one is
# being opened). flock alone would keep a second writer out on Linux, but not everywhere; this
# also gives a clear message, and lets a writer of this process be taken over.
_open_streams: dict[str, _OpenStream | None] = {}
_open_lock = threading.Lock()


def segment_name(first_seq: int) -> str:
    return f"{first_seq:012d}.seg"


def snapshot_name(seq: int) -> str:
    return f"snapshot-{seq:012d}.msgpack"


def list_segments(session_dir: Path) -> list[tuple[int, Path]]:
    """(first seq, path) of the stream's segments, in order."""
    out = []
    for entry in os.scandir(session_dir):
        m = _SEG_NAME.match(entry.name)
        if m:
            out.append((int(m.group(1)), Path(entry.path)))
    out.sort()
    return out


def list_snapshots(session_dir: Path) -> list[tuple[int, Path]]:
    out = []
    for entry in os.scandir(session_dir):
        m = _SNAP_NAME.match(entry.name)
        if m:
            out.append((int(m.group(1)), Path(entry.path)))
    out.sort()
    return out


def segment_header_state(data: bytes, first_seq: int) -> str:
    """``"ok"``, ``"torn"`` (a header cut short at creation) or ``"bad"``."""
    header = SEG_HEADER.pack(SEG_MAGIC, first_seq)
    if data[: SEG_HEADER.size] == header:
        return "ok"
    if len(data) < SEG_HEADER.size and header.startswith(data):
        return "torn"
    return "bad"


def read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise NotAJournal(f"{path}: unreadable journal metadata ({exc})") from exc
    if not isinstance(value, dict):
        raise NotAJournal(f"{path}: unreadable journal metadata")
    return value


MAX_AUDIO_RATE: Final = 384_000


def read_audio_rate(meta: Path) -> int:
    """The sample rate an audio store's ``.meta`` file records (0 when there is no file).

    Raises:
        JournalCorrupt: the file is unreadable or its ``sample_rate`` is not a plausible rate
            (valid JSON of the wrong type included); the error names the file.
    """
    if not meta.exists():
        return 0
    try:
        value = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise JournalCorrupt(
            f"unreadable audio metadata ({exc})", path=str(meta), offset=0
        ) from exc
    rate = value.get("sample_rate", 0) if isinstance(value, dict) else None
    # bool is an int to Python; 1e400 decodes to inf and "abc" to a str: none is a rate.
    if type(rate) is not int or not 0 <= rate <= MAX_AUDIO_RATE:
        raise JournalCorrupt(
            f"audio metadata holds no usable sample_rate (got {value!r:.80})",
            path=str(meta),
            offset=0,
        )
    return rate


def lock_holder_active(session_dir: Path) -> bool:
    """Whether a writer (of any process, this one included) holds the stream's lock now.

    Probes the ``flock`` without keeping it, so a writer opening meanwhile is never refused.
    """
    with _open_lock:
        if str(session_dir.resolve()) in _open_streams:
            return True
    try:
        fd = os.open(session_dir / "writer.lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        if fcntl is not None:  # not a POSIX system: only this process's writers are known
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing the descriptor also drops a lock the probe took
    return False


@contextlib.contextmanager
def hold_writer_lock(session_dir: Path) -> Iterator[bool]:
    """Hold the stream's writer lock for the block, as a writer would (for repairs).

    Yields:
        True when the lock is held; False when a writer holds it (nothing is held then).
    """
    key = str(session_dir.resolve())
    with _open_lock:
        busy = key in _open_streams
        if not busy:
            _open_streams[key] = None  # keeps writers of this process out meanwhile
    if busy:
        yield False
        return
    fd = -1
    try:
        fd = os.open(session_dir / "writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
        yield True
    finally:
        if fd >= 0:
            os.close(fd)
        with _open_lock:
            if key in _open_streams and _open_streams[key] is None:
                del _open_streams[key]


def verify_sealed_segments(segs: Sequence[tuple[int, Path]], end_first: int) -> None:
    """Check the segments before the last one: headers, checksums and seq continuity.

    A writer appends only to the last segment, so damage in an earlier one is found by
    nothing else on the way to a resume (replay starts at the newest snapshot). This reads
    each earlier segment once and checks framing and checksums only; nothing is decoded.

    Args:
        segs: The sealed segments, in order.
        end_first: The first seq of the segment that follows them (the writer's).

    Raises:
        JournalCorrupt: the first damage found, with its file and offset.
    """
    expected = 0
    for first, path in segs:
        name = str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise JournalCorrupt(f"unreadable segment: {exc}", path=name, offset=0) from exc
        if segment_header_state(data, first) != "ok":
            raise JournalCorrupt("not a journal segment header", path=name, offset=0)
        if first != expected:
            raise JournalCorrupt(
                f"segment starts at seq {first}, expected {expected}", path=name, offset=0
            )
        reader = iter_frames(data, SEG_HEADER.size, path=name)
        expected = first + sum(1 for _ in reader)
        if reader.torn:
            raise JournalCorrupt(
                "segment ends in a damaged record but later segments follow",
                path=name,
                offset=reader.end,
            )
    if segs and end_first != expected:
        raise JournalCorrupt(
            f"segment starts at seq {end_first}, expected {expected}",
            path=str(segs[-1][1].with_name(segment_name(end_first))),
            offset=0,
        )


def _write_json_atomic(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value), encoding="utf-8")
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot fsync a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def filesystem_sync_for(directory: Path, scope: SyncScope) -> Callable[[int], None] | None:
    """The function that syncs ``directory``'s whole filesystem given a descriptor on it
    (``syncfs(2)``), or None when a journal there is fsynced file by file.

    ``"files"`` is always file by file. ``"auto"`` syncs the filesystem on Linux 5.8 or later
    (earlier kernels did not report write-back errors from ``syncfs``) when ``directory`` is
    on a filesystem that keeps earlier writes ahead of later ones (ext4 in its default
    ``data=ordered`` mode, btrfs, tmpfs). ``"filesystem"`` asks for it on any filesystem.

    Raises:
        JournalError: ``scope`` is not a scope, or ``"filesystem"`` where ``syncfs`` is
            unavailable (not Linux, or before 5.8).
    """
    if scope not in SYNC_SCOPES:
        raise JournalError(f"sync must be one of {', '.join(SYNC_SCOPES)}; got {scope!r}")
    if scope == "files":
        return None
    syncfs = _syncfs()
    if syncfs is None:
        if scope == "filesystem":
            raise JournalError("sync='filesystem' needs syncfs(2) of Linux 5.8 or later")
        return None
    if scope == "auto":
        fstype, options = _filesystem_of(directory)
        if fstype not in _ORDERED_FILESYSTEMS:
            return None
        if fstype == "ext4" and ("data=writeback" in options or "data=journal" in options):
            return None  # not the ordered mode the rule relies on; data=journal: rare, skip
    return syncfs


@functools.cache
def _syncfs() -> Callable[[int], None] | None:
    if sys.platform != "linux":
        return None
    found = re.match(r"(\d+)\.(\d+)", os.uname().release)
    if found is None or (int(found.group(1)), int(found.group(2))) < (5, 8):
        return None
    try:
        call = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int]
    call.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        if call(fd) != 0:  # the call runs without the interpreter lock
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return syncfs


def _filesystem_of(directory: Path) -> tuple[str, str]:
    try:
        dev = os.stat(directory).st_dev
        with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
            lines = mounts.readlines()
    except OSError:
        return "", ""
    return mount_of(lines, os.major(dev), os.minor(dev))


def mount_of(mountinfo: Sequence[str], major: int, minor: int) -> tuple[str, str]:
    """The type and superblock options of the filesystem on device ``major:minor``, from the
    lines of ``/proc/self/mountinfo`` (``("", "")`` when no line names the device)."""
    want = f"{major}:{minor}"
    for line in mountinfo:
        # ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPEROPTIONS
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if sep and len(fields) >= 3 and fields[2] == want and rest:
            return rest[0], rest[2] if len(rest) > 2 else ""
    return "", ""


def is_session_dir(path: Path) -> bool:
    return (path / SESSION_MARKER).is_file()


class _OpenStream:
    """The write side of one session stream held by a writer of this process: descriptors,
    sizes, the stream's next seq and the durability bookkeeping. Shared by the leases of the
    stream (a take-over hands it to the new holder), owned by the current one."""

    def __init__(self, journal: FileJournal, directory: Path, lock_fd: int) -> None:
        self.dir = directory
        self.holder = ""  # the token of the current lease
        self.open = True
        self.failure: JournalError | None = None  # why the journal's flusher closed it
        self._flusher = journal._flusher
        self._lock_fd = lock_fd
        self._durability = journal.durability
        self._always = journal.durability.policy == "always"
        self._batch = journal.durability.policy == "batch"
        self._segment_bytes = journal.segment_bytes
        self._fd = -1
        self._seg_size = 0
        self._audio_fds: dict[str, int] = {}
        self._audio_size: dict[str, int] = {}
        self.rates: dict[str, int] = {}
        self._dirty = False
        self._audio_dirty: set[str] = set()
        self._last_sync = time.monotonic()
        self.device = os.stat(directory).st_dev  # the filesystem its files are on
        self.deferred_sync = False  # synced by the journal's flusher (set_deferred)
        # Makes each append's check-and-write atomic when two leases' writers append from
        # different threads; held by appends only, so it is never contended in practice.
        self._append_lock = threading.Lock()
        # Guards the descriptors against a flush() from another thread (deferred_sync).
        self._fd_lock = threading.Lock()
        self.next_seq = self._recover()

    # --- opening ------------------------------------------------------------------------

    def _recover(self) -> int:
        """Truncate a torn tail and position the stream at its end."""
        segs = list_segments(self.dir)
        next_seq = 0
        while segs:
            first, path = segs[-1]
            data = path.read_bytes()
            header = segment_header_state(data, first)
            if header == "torn":
                path.unlink()  # created, but not even its header made it to disk
                segs.pop()
                continue
            if header == "bad":
                raise JournalCorrupt("not a journal segment header", path=str(path), offset=0)
            verify_sealed_segments(segs[:-1], first)
            reader = iter_frames(data, SEG_HEADER.size, path=str(path))
            count = sum(1 for _ in reader)
            if reader.torn:
                os.truncate(path, reader.end)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            if reader.torn:
                os.fsync(self._fd)
            self._seg_size = reader.end
            next_seq = first + count
            break
        for seq, path in list_snapshots(self.dir):
            if seq > next_seq:
                path.unlink()  # describes records lost with a torn tail
        for entry in os.scandir(self.dir):
            if entry.name.endswith(".tmp"):
                os.unlink(entry.path)
        for stream in AUDIO_STREAMS:
            pcm = self.dir / f"audio-{stream}.pcm"
            meta = self.dir / f"audio-{stream}.meta"
            size = pcm.stat().st_size if pcm.exists() else 0
            if size % 2:
                os.truncate(pcm, size - 1)  # half a sample from a cut-short write
                size -= 1
            self._audio_size[stream] = size
            self.rates[stream] = read_audio_rate(meta)
        return next_seq

    # --- writing ------------------------------------------------------------------------

    def _new_segment(self, first_seq: int) -> None:
        if self._fd >= 0:
            if self._durability.policy != "none":
                os.fsync(self._fd)
            with self._fd_lock:
                os.close(self._fd)
                self._fd = -1
        path = self.dir / segment_name(first_seq)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        with self._fd_lock:
            self._fd = fd
        _write_all(self._fd, SEG_HEADER.pack(SEG_MAGIC, first_seq))
        self._seg_size = SEG_HEADER.size
        if self._durability.policy != "none":
            os.fsync(self._fd)
            _fsync_dir(self.dir)

    def append(self, session_id: str, expected_seq: int, payloads: Sequence[bytes]) -> None:
        # The hot path of the runtime: frame every payload, then one write for the batch.
        pack = FRAME.pack
        crc = crc32c
        data = b"".join([b for p in payloads for b in (pack(len(p), crc(p)), p)])
        with self._append_lock:
            if not self.open:
                raise self._closed_error(session_id)
            if self.next_seq != expected_seq:
                raise JournalConflict(session_id, expected_seq, self.next_seq)
            if not payloads:
                return
            try:
                if self._fd < 0 or self._seg_size >= self._segment_bytes:
                    self._new_segment(expected_seq)
                _write_all(self._fd, data)
                self._seg_size += len(data)
                self.next_seq = expected_seq + len(payloads)
                if self._always:
                    self._sync()
                elif self._batch:
                    if self.deferred_sync:
                        self._mark_dirty()
                    else:
                        self._dirty = True
                        if time.monotonic() - self._last_sync >= self._durability.interval_s:
                            self._sync()
            except OSError as exc:
                self.close()
                raise JournalError(f"journal {session_id!r}: append failed: {exc}") from exc

    def append_audio(self, session_id: str, stream: str, pcm: bytes, sample_rate: int) -> int:
        with self._append_lock:
            if not self.open:
                raise self._closed_error(session_id)
            try:
                fd = self._audio_fds.get(stream)
                if fd is None:
                    if not self.rates[stream]:
                        meta = self.dir / f"audio-{stream}.meta"
                        _write_json_atomic(meta, {"sample_rate": sample_rate, "format": "pcm16le"})
                        self.rates[stream] = sample_rate
                    path = self.dir / f"audio-{stream}.pcm"
                    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                    with self._fd_lock:
                        self._audio_fds[stream] = fd
                offset = self._audio_size[stream]
                _write_all(fd, pcm)
                self._audio_size[stream] = offset + len(pcm)
                self._audio_dirty.add(stream)
                self._mark_dirty()
                return offset
            except OSError as exc:
                self.close()
                raise JournalError(f"journal {session_id!r}: audio write failed: {exc}") from exc

    def write_snapshot(self, seq: int, data: bytes) -> None:
        path = self.dir / snapshot_name(seq)
        tmp = path.with_name(path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                _write_all(fd, data)
                # Deferred: skip the fsync, a snapshot only saves replay time and a damaged
                # one is ignored on replay (the events are the truth).
                if self._durability.policy != "none" and not self.deferred_sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            for _, old in list_snapshots(self.dir)[:-_SNAPSHOTS_KEPT]:
                old.unlink()
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise JournalError(f"cannot write snapshot {path}: {exc}") from exc

    def _closed_error(self, session_id: str) -> JournalError:
        if self.failure is not None:
            return self.failure
        return JournalError(f"journal {session_id!r}: the stream was released")

    def _mark_dirty(self) -> None:
        # The first write since the last sync wakes the journal's flusher (when deferred):
        # one wake-up per interval at most, none while the writer is idle. A sync running
        # meanwhile on the flusher's thread either covers this write or clears the flag
        # before this check, which then wakes the flusher again.
        if not self._dirty:
            self._dirty = True
            if self.deferred_sync and self._batch:
                self._flusher.wake()

    def set_deferred(self, deferred: bool) -> None:
        """Whether the journal's flusher syncs this stream (else ``append`` does)."""
        self.deferred_sync = deferred
        if not self._batch:
            return
        if deferred:
            self._flusher.add(self)
            if self._dirty:
                self._flusher.wake()
        else:
            self._flusher.remove(self)

    @property
    def dirty(self) -> bool:
        """Written since the last sync."""
        return self._dirty

    @property
    def dirty_files(self) -> int:
        """How many of its files were written since the last sync (the records counted as
        one whenever anything was)."""
        return len(self._audio_dirty) + 1 if self._dirty else 0

    def mark_clean(self) -> None:
        """Count as synced from here on: the caller syncs what was written so far (a write
        that lands meanwhile marks the stream dirty again for the next round)."""
        with self._fd_lock:
            self._audio_dirty.clear()
            self._dirty = False

    def synced(self) -> None:
        """What was written before :meth:`mark_clean` is on stable storage."""
        self._last_sync = time.monotonic()

    def sync_deferred(self, *, everything: bool = False) -> None:
        """The flusher's round for this stream alone: fsync its files written since the last
        sync (``everything``: all of them, after a sync of the filesystem failed). A failure
        closes the stream; its next append raises the error."""
        try:
            self._sync(everything=everything)
        except OSError as exc:
            self.fail(JournalError(f"journal {self.dir.name!r}: fsync failed: {exc}"))

    def fail(self, error: JournalError) -> None:
        """Close the stream for ``error``, which its next append raises."""
        self.failure = error
        self.close()

    def _sync(self, *, everything: bool = False) -> None:
        # Audio first: a durable record must never point at audio that is not. The
        # descriptors are duplicated under the lock, so the (slow) fsyncs run without it and
        # an append on another thread may open a new segment meanwhile.
        with self._fd_lock:
            # Only what was written since the last sync (audio streams are often idle).
            audio = self._audio_fds
            written = (
                list(audio.values())
                if everything
                else [audio[s] for s in self._audio_dirty if s in audio]
            )
            fds = [os.dup(fd) for fd in [*written, self._fd] if fd >= 0]
            self._audio_dirty.clear()
            self._dirty = False
        try:
            for fd in fds:
                os.fsync(fd)
        finally:
            for fd in fds:
                os.close(fd)
        self.synced()

    @property
    def flush_deadline(self) -> float | None:
        # A deferred stream is the journal flusher's to sync: nobody else needs to.
        if not (self._batch and self._dirty and self.open) or self.deferred_sync:
            return None
        return self._last_sync + self._durability.interval_s

    def flush(self, session_id: str) -> None:
        """Fsync everything appended so far (a no-op under ``Durability.none()``)."""
        if not self.open or self._durability.policy == "none":
            return
        try:
            self._sync()
        except OSError as exc:
            self.close()
            raise JournalError(f"journal {session_id!r}: fsync failed: {exc}") from exc

    def close(self) -> None:
        """Close the descriptors and unregister the stream. After a failed write this is all
        that happens: the stream's end is then unknown, and only a new writer (which truncates
        whatever was half written) may continue it."""
        if not self.open:
            return
        self.open = False
        self._flusher.remove(self)
        with self._fd_lock:
            for fd in [self._fd, *self._audio_fds.values(), self._lock_fd]:
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._fd = -1
            self._audio_fds.clear()
        with _open_lock:
            key = str(self.dir)
            if _open_streams.get(key) is self:
                del _open_streams[key]


class _Flusher:
    """The batch fsyncs of one journal's deferred streams, from one thread for all of them.

    Woken by a stream's first write since its last sync; it then waits ``interval_s`` (the
    batch window: everything appended meanwhile, by any stream, goes with this round) and
    syncs every dirty stream. The thread exists only while a deferred stream is open and has
    written since the thread last ran out of streams.

    A round fsyncs each dirty file, or, given ``filesystem_sync`` (see
    :func:`filesystem_sync_for`) and at least ``min_files`` files to sync on its filesystem,
    syncs that filesystem once instead: one system call, where 50 live sessions' four files
    each would take 200 fsyncs, each of which gives the interpreter lock back and takes it
    again in the middle of the event loop's work. Should the filesystem sync fail, every
    stream of the round fsyncs its own files, so the stream whose write failed learns it.
    """

    def __init__(
        self, interval_s: float, filesystem_sync: Callable[[int], None] | None, directory: Path
    ) -> None:
        self._interval = interval_s
        self._filesystem_sync = filesystem_sync
        self._directory = directory  # the journal's root: on the filesystem it syncs
        self._device = os.stat(directory).st_dev
        self.min_files = FILESYSTEM_SYNC_MIN_FILES
        self._cond = threading.Condition()
        self._streams: set[_OpenStream] = set()
        self._due = False
        self._thread: threading.Thread | None = None
        self.rounds = 0  # fsync rounds run (for tests and benches)
        self.busy = False  # in a round (for tests: clean streams are synced when it is not)

    def add(self, stream: _OpenStream) -> None:
        with self._cond:
            self._streams.add(stream)

    def remove(self, stream: _OpenStream) -> None:
        with self._cond:
            self._streams.discard(stream)
            if not self._streams:
                self._cond.notify()  # the thread, if any, ends

    def wake(self) -> None:
        with self._cond:
            if self._due or not self._streams:
                return  # a round is coming, and will take this write with it
            self._due = True
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="antiphon-journal-flusher", daemon=True
                )
                self._thread.start()
            else:
                self._cond.notify()

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._due and self._streams:
                    cond.wait()
                if self._streams:
                    # The batch window; cut short only when the last stream closes.
                    cond.wait_for(lambda: not self._streams, timeout=self._interval)
                if not self._streams:
                    self._thread = None
                    self._due = False
                    return
                self._due = False
                streams = list(self._streams)
            self.busy = True
            self._round(streams)
            self.rounds += 1
            self.busy = False

    def _round(self, streams: list[_OpenStream]) -> None:
        dirty = [stream for stream in streams if stream.open and stream.dirty]
        whole: set[_OpenStream] = set()
        if self._filesystem_sync is not None:
            whole = {stream for stream in dirty if stream.device == self._device}
            if sum(stream.dirty_files for stream in whole) < self.min_files:
                whole = set()
        if whole:
            for stream in whole:
                stream.mark_clean()
            if self._sync_filesystem():
                for stream in whole:
                    stream.synced()
            else:
                # Each stream fsyncs its files instead: the failing one learns it.
                for stream in whole:
                    stream.sync_deferred(everything=True)
        for stream in dirty:
            if stream not in whole:
                stream.sync_deferred()

    def _sync_filesystem(self) -> bool:
        assert self._filesystem_sync is not None
        try:
            fd = os.open(self._directory, os.O_RDONLY)
            try:
                self._filesystem_sync(fd)
            finally:
                os.close(fd)
        except OSError:
            return False
        return True


class FileJournal(JournalBackend):
    """Session streams stored as files under ``directory`` (see the module docs for layout).

    One writer per stream is enforced by an in-process registry and, across processes, by an
    exclusive ``flock`` on the stream's ``writer.lock``; the kernel frees that lock when its
    process dies, so a crashed writer never blocks the next one. ``take_over`` can therefore
    only take a stream from a writer of this process.

    Args:
        directory: The journal root; created (with its marker) unless ``create`` is false.
        durability: When appends are fsynced.
        snapshot_every: Store a snapshot every this many events (when ``append`` gets a state).
        segment_bytes: Start a new segment file once the current one reaches this size.
        create: When false, open an existing journal for reading and raise
            :class:`~antiphon.errors.NotAJournal` if ``directory`` is not one.
        capture: Wire capture of the sessions journalled here: ``"off"``, ``"metadata"``
            (the default) or ``"full"`` (see :class:`~antiphon.journal.JournalBackend`).
        sync: How the batch of a :meth:`Durability.batch` journal is made durable:
            ``"files"`` fsyncs each file written since the last round; ``"filesystem"``
            syncs the filesystem the journal is on with one ``syncfs(2)`` (Linux 5.8 or
            later) once a round has 8 files or more to sync, which costs the process far
            less when many sessions write, but also writes back whatever else is dirty on
            that filesystem; ``"auto"`` (the default) is ``"filesystem"`` on ext4
            (``data=ordered``), btrfs and tmpfs, and ``"files"`` elsewhere. The promise of
            the durability policy is the same either way.

    Raises:
        NotAJournal: ``create`` is false and ``directory`` holds no journal.
        JournalError: bad options, or the directory cannot be created.
    """

    flushes_itself = True  # deferred writers are synced by the journal's flusher thread

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        durability: Durability = DEFAULT_DURABILITY,
        snapshot_every: int = 1000,
        segment_bytes: int = 64 << 20,
        create: bool = True,
        capture: CaptureMode = "metadata",
        sync: SyncScope = "auto",
    ) -> None:
        super().__init__(snapshot_every=snapshot_every, capture=capture)
        if segment_bytes < 1:
            raise JournalError(f"segment_bytes must be >= 1, got {segment_bytes}")
        self.directory = Path(directory)
        self.durability = durability
        self.segment_bytes = segment_bytes
        # The streams held by this object's leases, by lease token (a lease that was taken
        # over still finds the stream: its appends are then refused by seq, not by surprise).
        self._leases: dict[str, _OpenStream] = {}
        marker = self.directory / JOURNAL_MARKER
        if create:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                if not marker.exists():
                    _write_json_atomic(marker, {"format": "antiphon-journal", "version": 1})
            except OSError as exc:
                raise JournalError(f"cannot create journal at {self.directory}: {exc}") from exc
        elif not self.directory.is_dir():
            raise NotAJournal(f"{self.directory}: no such directory")
        elif not marker.is_file() and not self.sessions():
            raise NotAJournal(f"{self.directory} is not an antiphon journal")
        filesystem_sync = filesystem_sync_for(self.directory, sync)
        self._flusher = _Flusher(durability.interval_s, filesystem_sync, self.directory)

    # --- streams ------------------------------------------------------------------------

    def _session_dir(self, session_id: str) -> Path:
        if not _SESSION_ID.match(session_id):
            raise JournalError(
                f"unusable session id {session_id!r}: use 1-128 letters, digits, '.', '_' or '-'"
                " starting with a letter or digit"
            )
        return self.directory / session_id

    def _existing(self, session_id: str) -> Path:
        path = self._session_dir(session_id)
        if not is_session_dir(path):
            raise JournalError(f"no session {session_id!r} in journal {self.directory}")
        return path

    def acquire(self, session_id: str, *, take_over: bool) -> Lease:
        path = self._session_dir(session_id)
        try:
            path.mkdir(parents=True, exist_ok=True)
            if not is_session_dir(path):
                _write_json_atomic(path / SESSION_MARKER, {"session_id": session_id, "version": 1})
            path = path.resolve()
        except OSError as exc:
            raise JournalError(f"cannot create session {session_id!r}: {exc}") from exc
        key = str(path)
        token = uuid.uuid4().hex
        with _open_lock:
            if key in _open_streams:
                held = _open_streams[key]
                if not take_over or held is None:
                    raise JournalError(f"a writer for session {session_id!r} is already open")
                held.holder = token
                self._leases[token] = held
                return Lease(session_id=session_id, token=token, start_seq=held.next_seq)
            _open_streams[key] = None  # being opened: keeps others out meanwhile
        lock_fd = -1
        try:
            lock_fd = os.open(path / "writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
            if fcntl is not None:
                try:
                    fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise JournalError(
                        f"a writer for session {session_id!r} is open in another process"
                    ) from None
            stream = _OpenStream(self, path, lock_fd)
        except BaseException as exc:
            if lock_fd >= 0:
                os.close(lock_fd)
            with _open_lock:
                _open_streams.pop(key, None)
            if isinstance(exc, OSError):
                raise JournalError(f"cannot open session {session_id!r}: {exc}") from exc
            raise
        stream.holder = token
        with _open_lock:
            _open_streams[key] = stream
            self._leases[token] = stream
        return Lease(session_id=session_id, token=token, start_seq=stream.next_seq)

    def _held(self, lease: Lease) -> _OpenStream:
        stream = self._leases.get(lease.token)
        if stream is None or not stream.open:
            raise JournalError(f"journal {lease.session_id!r}: the stream was released")
        return stream

    def release(self, lease: Lease) -> None:
        with _open_lock:
            stream = self._leases.pop(lease.token, None)
        if stream is None or stream.holder != lease.token:
            return  # released already, or taken over: the stream is its new holder's
        try:
            stream.flush(lease.session_id)
        finally:
            stream.close()

    def append_records(self, lease: Lease, expected_seq: int, payloads: Sequence[bytes]) -> None:
        stream = self._leases.get(lease.token)  # _held() inlined: the runtime's hot path
        if stream is None:
            raise JournalError(f"journal {lease.session_id!r}: the stream was released")
        stream.append(lease.session_id, expected_seq, payloads)

    def append_audio(self, lease: Lease, stream: str, pcm: bytes, sample_rate: int) -> int:
        return self._held(lease).append_audio(lease.session_id, stream, pcm, sample_rate)

    def write_snapshot(self, lease: Lease, seq: int, data: bytes) -> None:
        self._held(lease).write_snapshot(seq, data)

    def flush(self, lease: Lease) -> None:
        self._held(lease).flush(lease.session_id)

    def flush_deadline(self, lease: Lease) -> float | None:
        stream = self._leases.get(lease.token)
        return None if stream is None else stream.flush_deadline

    def defer_sync(self, lease: Lease, deferred: bool) -> None:
        self._held(lease).set_deferred(deferred)

    def sessions(self) -> list[str]:
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return []
        return sorted(e.name for e in entries if e.is_dir() and is_session_dir(Path(e.path)))

    # --- reading ------------------------------------------------------------------------

    def read_records(self, session_id: str, start_seq: int) -> Iterator[bytes]:
        directory = self._existing(session_id)
        segs = list_segments(directory)
        expected = 0
        for i, (first, path) in enumerate(segs):
            last = i == len(segs) - 1
            if not last and segs[i + 1][0] <= start_seq:
                expected = segs[i + 1][0]
                continue
            name = str(path)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise JournalError(f"cannot read {path}: {exc}") from exc
            header = segment_header_state(data, first)
            if header == "torn" and last:
                return  # a segment whose creation was cut short: a torn tail
            if header != "ok":
                raise JournalCorrupt("not a journal segment header", path=name, offset=0)
            if first != expected:
                raise JournalCorrupt(
                    f"segment starts at seq {first}, expected {expected}", path=name, offset=0
                )
            reader = iter_frames(data, SEG_HEADER.size, path=name)
            seq = first
            for _, payload in reader:
                if seq >= start_seq:
                    yield payload
                seq += 1
            if reader.torn and not last:
                raise JournalCorrupt(
                    "segment ends in a damaged record but later segments follow",
                    path=name,
                    offset=reader.end,
                )
            expected = seq

    def snapshot_seqs(self, session_id: str) -> list[int]:
        return [seq for seq, _ in list_snapshots(self._existing(session_id))]

    def read_snapshot(self, session_id: str, seq: int) -> bytes:
        path = self._existing(session_id) / snapshot_name(seq)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise JournalCorrupt(f"unreadable snapshot: {exc}", path=str(path), offset=0) from exc

    def _audio_path(self, session_id: str, stream: str) -> Path:
        if stream not in AUDIO_STREAMS:
            raise JournalError(f"unknown audio stream {stream!r}")
        return self._existing(session_id) / f"audio-{stream}.pcm"

    def audio_rate(self, session_id: str, stream: str) -> int:
        meta = self._audio_path(session_id, stream).with_suffix(".meta")
        return read_audio_rate(meta)

    def read_audio(self, session_id: str, span: AudioSpan) -> bytes:
        path = self._audio_path(session_id, span.stream)
        if span.offset < 0 or span.length < 0:
            raise JournalError(f"invalid audio span {span}")
        try:
            with path.open("rb") as f:
                f.seek(span.offset)
                data = f.read(span.length)
        except FileNotFoundError:
            data = b""
        except OSError as exc:
            raise JournalError(f"cannot read {path}: {exc}") from exc
        if len(data) != span.length:
            raise JournalError(f"audio span {span} lies outside {path}")
        return data

    def audio(self, session_id: str, stream: str) -> tuple[bytes, int]:
        path = self._audio_path(session_id, stream)
        meta = path.with_suffix(".meta")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return b"", 0
        except OSError as exc:
            raise JournalError(f"cannot read {path}: {exc}") from exc
        rate = read_audio_rate(meta)
        return data[: len(data) & ~1], rate
