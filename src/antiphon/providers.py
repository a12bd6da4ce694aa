"""Provider presets — configuration objects, not subclasses.

``OpenAIRealtime`` and ``XAIRealtime`` (OpenAI Realtime GA / beta, xAI Grok voice) and
``Phonic`` (Phonic speech-to-speech) are always available, and so is ``Failover`` (several
presets in order of preference: the call moves on when one is down). ``GeminiLive`` needs the
``gemini`` extra (google-genai) and ``NovaSonic`` the ``nova`` extra
(aws-sdk-bedrock-runtime); they are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .adapters.openai import OpenAIRealtime, XAIRealtime
from .adapters.phonic import Phonic
from .failover import Failover, FailoverPolicy

if TYPE_CHECKING:
    from .adapters.gemini import GeminiLive
    from .adapters.nova import NovaSonic

__all__ = [
    "Failover",
    "FailoverPolicy",
    "GeminiLive",
    "NovaSonic",
    "OpenAIRealtime",
    "Phonic",
    "XAIRealtime",
]


def __getattr__(name: str) -> Any:
    if name == "GeminiLive":
        from .adapters.gemini import GeminiLive

        return GeminiLive
    if name == "NovaSonic":
        from .adapters.nova import NovaSonic

        return NovaSonic
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
