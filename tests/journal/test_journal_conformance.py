"""The shipped journal conformance suite, run on every backend of this repository."""

from __future__ import annotations

from pathlib import Path

from antiphon.journal import Durability, FileJournal, JournalBackend, MemoryJournal
from antiphon.testing import JournalConformance


class TestMemoryJournal(JournalConformance):
    def make_journal(self, tmp_path: Path, *, snapshot_every: int = 1000) -> JournalBackend:
        return MemoryJournal(snapshot_every=snapshot_every)


class TestFileJournal(JournalConformance):
    def make_journal(self, tmp_path: Path, *, snapshot_every: int = 1000) -> JournalBackend:
        return FileJournal(tmp_path / "j", snapshot_every=snapshot_every)

    def reopen(self, journal: JournalBackend, tmp_path: Path) -> JournalBackend:
        return FileJournal(tmp_path / "j")


class TestFileJournalAlways(TestFileJournal):
    """Small segments and fsync on every append: the same contract."""

    def make_journal(self, tmp_path: Path, *, snapshot_every: int = 1000) -> JournalBackend:
        return FileJournal(
            tmp_path / "j",
            durability=Durability.always(),
            snapshot_every=snapshot_every,
            segment_bytes=200,
        )
