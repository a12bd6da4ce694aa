"""``antiphon.testing``: the scripted provider needs no pytest; the suites load on first use."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import antiphon.testing


def test_importable_without_pytest_or_hypothesis() -> None:
    # A None entry in sys.modules makes `import pytest` raise ImportError, as if not installed.
    code = textwrap.dedent(
        """
        import sys
        sys.modules["pytest"] = sys.modules["hypothesis"] = None
        import antiphon.testing
        antiphon.testing.ScriptedProvider()
        try:
            antiphon.testing.JournalConformance
        except ImportError:
            print("suites need pytest")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "suites need pytest"


def test_suites_are_exported() -> None:
    from antiphon.testing.journal_suite import JournalConformance
    from antiphon.testing.translator_suite import TranslatorConformance

    assert antiphon.testing.JournalConformance is JournalConformance
    assert antiphon.testing.TranslatorConformance is TranslatorConformance
