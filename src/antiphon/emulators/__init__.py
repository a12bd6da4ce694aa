"""Local servers that speak each provider's real wire protocol, driven by a scripted model.

The scripted model (:mod:`antiphon.emulators._model`) is pure and provider-neutral, and so
is the vocabulary every emulator shares (:mod:`antiphon.emulators._base`): :class:`Fault`,
:class:`Trigger`, :class:`Record`, scheduled with ``emulator.fault(...)`` and read from
``emulator.records``. The servers are asyncio-only; importing this package is cheap: each
emulator (and its optional dependencies) loads on first use of its name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from antiphon.emulators._base import (
    ClosedBy,
    Emulator,
    Fault,
    FaultKind,
    Record,
    Trigger,
    TriggerKind,
)
from antiphon.emulators._model import (
    DEFAULT_SCRIPT,
    UTTERANCE_COUNT,
    EnergyVad,
    ModelAction,
    ModelSession,
    Reply,
    Script,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    Turn,
    UserSpeechStarted,
    UserTurn,
    VadEvent,
    conversation_audio,
    recognize,
    reply_audio,
    reply_pitch,
    reply_transcript_deltas,
    silence,
    user_transcript,
    utterance_audio,
    utterance_freq,
)

if TYPE_CHECKING:
    from antiphon.emulators.gemini import GeminiEmulator, GeminiRecord
    from antiphon.emulators.nova import NovaEmulator, NovaRecord
    from antiphon.emulators.openai import OpenAIEmulator, OpenAIRecord
    from antiphon.emulators.phonic import PhonicEmulator, PhonicRecord

__all__ = [
    "DEFAULT_SCRIPT",
    "UTTERANCE_COUNT",
    "ClosedBy",
    "Emulator",
    "EnergyVad",
    "Fault",
    "FaultKind",
    "GeminiEmulator",
    "GeminiRecord",
    "ModelAction",
    "ModelSession",
    "NovaEmulator",
    "NovaRecord",
    "OpenAIEmulator",
    "OpenAIRecord",
    "PhonicEmulator",
    "PhonicRecord",
    "Record",
    "Reply",
    "Script",
    "SpeechStarted",
    "SpeechStopped",
    "ToolCall",
    "Trigger",
    "TriggerKind",
    "Turn",
    "UserSpeechStarted",
    "UserTurn",
    "VadEvent",
    "conversation_audio",
    "recognize",
    "reply_audio",
    "reply_pitch",
    "reply_transcript_deltas",
    "silence",
    "user_transcript",
    "utterance_audio",
    "utterance_freq",
]

# Names of each emulator module; loaded lazily so that optional dependencies of one emulator
# (google-genai, h2) are never needed to import another.
_OPENAI = {"OpenAIEmulator", "OpenAIRecord"}
_GEMINI = {"GeminiEmulator", "GeminiRecord"}
_NOVA = {"NovaEmulator", "NovaRecord"}
_PHONIC = {"PhonicEmulator", "PhonicRecord"}


def __getattr__(name: str) -> Any:
    # Plain import statements, not names in strings: the layering test sees every import.
    if name in _OPENAI:
        from . import openai as module
    elif name in _GEMINI:
        from . import gemini as module  # type: ignore[no-redef]
    elif name in _NOVA:
        from . import nova as module  # type: ignore[no-redef]
    elif name in _PHONIC:
        from . import phonic as module  # type: ignore[no-redef]
    else:
        raise AttributeError(f"module 'antiphon.emulators' has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value
