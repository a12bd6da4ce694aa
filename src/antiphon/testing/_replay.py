"""A stored journal as a regression test: replay it and verify it in one line.

::

    from antiphon.testing import assert_journal_replays

    def test_bad_call_of_tuesday() -> None:
        assert_journal_replays("tests/journals/bad-call")   # a journal captured "full"

:func:`replay_journal` and :func:`verify_journal` return the reports; the ``assert_`` helpers
raise ``AssertionError`` with the first divergence or every violation.
"""

from __future__ import annotations

import os

from ..adapters import Translator
from ..journal import JournalBackend, open_journal
from ..journal._replay import ReplayReport, replay_capture
from ..journal._verify import VerifyReport, verify_session

__all__ = [
    "assert_journal_replays",
    "assert_journal_verifies",
    "replay_journal",
    "translator_for",
    "verify_journal",
]


def translator_for(provider: str) -> Translator:
    """A fresh translator of the provider a journal names (``SessionStarted.provider``), built
    from the provider's default preset.

    Raises:
        ValueError: an unknown provider name.
    """
    match provider:
        case "openai":
            from ..adapters.openai import OpenAIRealtime

            return OpenAIRealtime().new_translator()
        case "xai":
            from ..adapters.openai import XAIRealtime

            return XAIRealtime().new_translator()
        case "gemini":
            from ..adapters.gemini import GeminiLive

            return GeminiLive().new_translator()
        case "nova":
            from ..adapters.nova import NovaSonic

            return NovaSonic().new_translator()
        case "phonic":
            from ..adapters.phonic import Phonic

            return Phonic().new_translator()
        case "scripted":
            from ._provider import ScriptedProvider

            return ScriptedProvider().new_translator()
    raise ValueError(f"no translator for provider {provider!r}")


def _sessions(path: str | os.PathLike[str]) -> tuple[JournalBackend, list[str]]:
    """The journal at ``path`` and the sessions to take: one session directory's, or all."""
    from ..journal import FileJournal

    try:
        journal, session_id = open_journal(path)
    except Exception:  # a journal root with several sessions: take them all
        journal = FileJournal(path, create=False)
        return journal, journal.sessions()
    return journal, [session_id]


def replay_journal(path: str | os.PathLike[str]) -> list[ReplayReport]:
    """Replay every session of the journal at ``path`` (a journal root or a session
    directory) through the current translators and reducer.

    Raises:
        antiphon.errors.JournalError: not a journal, or a session without a full capture.
    """
    journal, sessions = _sessions(path)
    return [replay_capture(journal, sid, translator_for) for sid in sessions]


def verify_journal(path: str | os.PathLike[str]) -> list[VerifyReport]:
    """Verify every session of the journal at ``path`` (see
    :func:`antiphon.journal.verify_session`).

    Raises:
        antiphon.errors.JournalError: not a journal.
    """
    journal, sessions = _sessions(path)
    return [verify_session(journal, sid) for sid in sessions]


def assert_journal_replays(path: str | os.PathLike[str]) -> None:
    """Fail (``AssertionError``) when the current code decodes or folds a stored call
    differently from how it was recorded."""
    for report in replay_journal(path):
        d = report.divergence
        assert d is None, (
            f"{report.session_id}: {d.kind} divergence at epoch {d.epoch} frame {d.frame}"
            f" (seq {d.seq})\n  recorded: {d.recorded}\n  produced: {d.produced}"
        )


def assert_journal_verifies(path: str | os.PathLike[str]) -> None:
    """Fail (``AssertionError``) listing every broken promise of the calls at ``path``."""
    for report in verify_journal(path):
        assert report.ok, f"{report.session_id}: " + "; ".join(
            f"[{v.rule}] seq {v.seq}: {v.message}" for v in report.violations
        )
