"""Every end-to-end test and demo leaves a journal that keeps antiphon's promises.

After each test, the journals of the sessions its harness opened, and every file journal
written under its ``tmp_path`` (the demos'), are verified (``antiphon journal verify``); a
journal captured in full is also replayed through the current code (``antiphon journal
replay``). A violation fails the test that wrote the journal.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _session_log import OPENED, check_journal, check_journal_dirs


@pytest.fixture(autouse=True)
def _journals_keep_their_promises(tmp_path: Path) -> Iterator[None]:
    OPENED.clear()
    yield
    opened = list(OPENED)
    OPENED.clear()
    for journal, session_id in opened:
        check_journal(journal, session_id)
    check_journal_dirs(tmp_path)
