"""Google Gemini Live: pure translator, google-genai connector and provider preset.

The connector (and google-genai) is imported only when a connector is made, so the
translator works without the ``gemini`` extra installed.
"""

from __future__ import annotations

from ._provider import GeminiLive
from ._translator import DEFAULT_LIMITS, GeminiTranslator, parse_duration_ms

__all__ = ["DEFAULT_LIMITS", "GeminiLive", "GeminiTranslator", "parse_duration_ms"]
