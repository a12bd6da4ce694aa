"""Append-only event journal: one stream per session, replayable into ``SessionState``.

Backends: :class:`FileJournal` (the embedded default: segment files with length + CRC32C
framing, audio sidecar files, snapshots), :class:`RedisJournal` (a Redis server shared by a
fleet of workers, with leases and fencing; the ``redis`` extra) and :class:`MemoryJournal`
(tests). All implement
:class:`JournalBackend`, whose docs state the contract every backend keeps (one writer per
stream, appends conditional on the expected sequence, write ahead of effects, no inline
audio); a backend written elsewhere subclasses it and runs
:class:`antiphon.testing.JournalConformance`. The API is synchronous.
"""

from __future__ import annotations

from ._base import Appended, Journal, JournalBackend, JournalWriter, Lease
from ._capture import CaptureMode, WireCapture, WireFrame, frame_payload, read_capture
from ._check import (
    CorruptRecord,
    IntegrityReport,
    SnapshotCheck,
    TornTail,
    check,
    open_journal,
    verify,
)
from ._file import FileJournal
from ._memory import MemoryJournal
from ._record import Durability, Record
from ._redis import RedisDurability, RedisJournal

__all__ = [
    "Appended",
    "CaptureMode",
    "CorruptRecord",
    "Durability",
    "FileJournal",
    "IntegrityReport",
    "Journal",
    "JournalBackend",
    "JournalWriter",
    "Lease",
    "MemoryJournal",
    "Record",
    "RedisDurability",
    "RedisJournal",
    "SnapshotCheck",
    "TornTail",
    "WireCapture",
    "WireFrame",
    "check",
    "frame_payload",
    "open_journal",
    "read_capture",
    "verify",
]
