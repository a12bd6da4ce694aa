"""OpenAI Realtime (GA and beta) and xAI Grok voice: translator, connector, presets.

``OpenAIRealtime(...)`` and ``XAIRealtime(...)`` are the providers ``open_session`` takes;
both are the same configuration type, so xAI is a preset, not a subclass.
"""

from __future__ import annotations

from ._connector import OpenAIConnection, OpenAIConnector
from ._provider import OpenAIRealtime, XAIRealtime
from ._translator import OpenAITranslator, close_code_recoverable

__all__ = [
    "OpenAIConnection",
    "OpenAIConnector",
    "OpenAIRealtime",
    "OpenAITranslator",
    "XAIRealtime",
    "close_code_recoverable",
]
