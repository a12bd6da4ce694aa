"""Testing helpers shipped for apps: an in-process scripted provider with fault injection.

Use it to test an app built on antiphon without a network or a real provider::

    provider = antiphon.testing.ScriptedProvider()
    async with antiphon.open_session(provider, tools=[get_weather]) as session:
        provider.fault(Fault.drop(), at=Trigger.reply_audio(2))
        ...
    assert provider.committed_frames() == frames_my_app_sent

The fault vocabulary (:class:`Fault`, :class:`Trigger`, :class:`Record`, ...) is the one every
emulator in :mod:`antiphon.emulators` speaks, so a test moves between them unchanged.

A stored journal becomes a regression test in one line: ``assert_journal_replays(path)``
decodes its captured frames again with the current code and fails at the first divergence;
``assert_journal_verifies(path)`` fails when the call broke one of antiphon's promises.

Conformance suites, for a journal backend or a provider translator written anywhere: subclass
:class:`JournalConformance` (:mod:`antiphon.testing.journal_suite`) or
:class:`TranslatorConformance` (:mod:`antiphon.testing.translator_suite`) in a pytest module.
They need pytest and hypothesis (``pip install 'antiphon[testing]'``), so they are imported on
first use: ``import antiphon.testing`` works without pytest, for the scripted provider alone.
"""

from __future__ import annotations

import sys
import typing

from ..emulators._base import ClosedBy, Fault, FaultKind, Record, Trigger, TriggerKind
from ._provider import DEFAULT_SCRIPT, ScriptedProvider, ScriptedRecord, Turn
from ._replay import (
    assert_journal_replays,
    assert_journal_verifies,
    replay_journal,
    translator_for,
    verify_journal,
)
from ._translator import ScriptedTranslator

if typing.TYPE_CHECKING:
    from .journal_suite import JournalConformance
    from .translator_suite import TranslatorConformance

if (_pytest := sys.modules.get("pytest")) is not None:
    # Under pytest, let it rewrite the suites' asserts (to explain a failure) as it does a test
    # module's; this must happen before they are imported.
    _pytest.register_assert_rewrite(
        "antiphon.testing.journal_suite", "antiphon.testing.translator_suite"
    )

__all__ = [
    "DEFAULT_SCRIPT",
    "ClosedBy",
    "Fault",
    "FaultKind",
    "JournalConformance",
    "Record",
    "ScriptedProvider",
    "ScriptedRecord",
    "ScriptedTranslator",
    "TranslatorConformance",
    "Trigger",
    "TriggerKind",
    "Turn",
    "assert_journal_replays",
    "assert_journal_verifies",
    "replay_journal",
    "translator_for",
    "verify_journal",
]


def __getattr__(name: str) -> object:
    # The suites import pytest and hypothesis: load them only when asked for.
    if name == "JournalConformance":
        from .journal_suite import JournalConformance

        return JournalConformance
    if name == "TranslatorConformance":
        from .translator_suite import TranslatorConformance

        return TranslatorConformance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
