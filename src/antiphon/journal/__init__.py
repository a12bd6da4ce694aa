"""Append-only event journal: one stream per session, replayable into ``SessionState``.

Backends: :class:`FileJournal` (the embedded default: segment files with length + CRC32C
framing, audio sidecar files, snapshots) and :class:`MemoryJournal` (tests). Both keep the
contract documented in :mod:`antiphon.journal._base` (one writer per stream, ``expected_seq``
conflicts, write ahead of effects, no inline audio). The API is synchronous.
"""

from __future__ import annotations

from ._base import Journal, JournalWriter
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

__all__ = [
    "CorruptRecord",
    "Durability",
    "FileJournal",
    "IntegrityReport",
    "Journal",
    "JournalWriter",
    "MemoryJournal",
    "Record",
    "SnapshotCheck",
    "TornTail",
    "check",
    "open_journal",
    "verify",
]
