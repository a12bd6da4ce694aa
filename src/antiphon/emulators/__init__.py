"""Local servers that speak each provider's real wire protocol, driven by a scripted model.

The scripted model (:mod:`antiphon.emulators._model`) is pure and provider-neutral. The
servers are asyncio-only; importing this package is cheap: each emulator (and its optional
dependencies) loads on first use of its name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    from antiphon.emulators.gemini import GeminiConnectionRecord, GeminiEmulator
    from antiphon.emulators.nova import NovaEmulator, NovaStreamRecord
    from antiphon.emulators.openai import (
        ConnectionRecord,
        Fault,
        OpenAIEmulator,
        fault_on_reply_audio,
        fault_on_speech_started,
        fault_on_tool_call,
    )

__all__ = [
    "DEFAULT_SCRIPT",
    "UTTERANCE_COUNT",
    "ConnectionRecord",
    "EnergyVad",
    "Fault",
    "GeminiConnectionRecord",
    "GeminiEmulator",
    "ModelAction",
    "ModelSession",
    "NovaEmulator",
    "NovaStreamRecord",
    "OpenAIEmulator",
    "Reply",
    "Script",
    "SpeechStarted",
    "SpeechStopped",
    "ToolCall",
    "Turn",
    "UserSpeechStarted",
    "UserTurn",
    "VadEvent",
    "conversation_audio",
    "fault_on_reply_audio",
    "fault_on_speech_started",
    "fault_on_tool_call",
    "recognize",
    "reply_audio",
    "reply_pitch",
    "reply_transcript_deltas",
    "silence",
    "user_transcript",
    "utterance_audio",
    "utterance_freq",
]

# Name -> module that defines it; loaded lazily so that optional dependencies of one
# emulator (google-genai, h2) are never needed to import another.
_LAZY = {
    "ConnectionRecord": "antiphon.emulators.openai",
    "Fault": "antiphon.emulators.openai",
    "OpenAIEmulator": "antiphon.emulators.openai",
    "fault_on_reply_audio": "antiphon.emulators.openai",
    "fault_on_speech_started": "antiphon.emulators.openai",
    "fault_on_tool_call": "antiphon.emulators.openai",
    "GeminiConnectionRecord": "antiphon.emulators.gemini",
    "GeminiEmulator": "antiphon.emulators.gemini",
    "NovaEmulator": "antiphon.emulators.nova",
    "NovaStreamRecord": "antiphon.emulators.nova",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'antiphon.emulators' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
