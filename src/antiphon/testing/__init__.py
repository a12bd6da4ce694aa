"""Testing helpers shipped for apps: an in-process scripted provider with fault injection.

Use it to test an app built on antiphon without a network or a real provider::

    provider = antiphon.testing.ScriptedProvider()
    async with antiphon.open_session(provider, tools=[get_weather]) as session:
        provider.fault("drop", trigger="reply_audio", count=2)
        ...
    assert provider.committed_frames() == frames_my_app_sent
"""

from __future__ import annotations

from ._provider import (
    DEFAULT_SCRIPT,
    ConnectionRecord,
    FaultKind,
    ScriptedProvider,
    Trigger,
    Turn,
)
from ._translator import ScriptedTranslator

__all__ = [
    "DEFAULT_SCRIPT",
    "ConnectionRecord",
    "FaultKind",
    "ScriptedProvider",
    "ScriptedTranslator",
    "Trigger",
    "Turn",
]
