"""Phonic speech-to-speech: translator, connector, preset.

``Phonic(...)`` is the provider ``open_session`` takes. Continuity uses Phonic's own
conversation reconnect (``reconnect_conv_id``) inside its grace window and a re-seeded new
conversation past it; see :mod:`._translator`.
"""

from __future__ import annotations

from ._connector import PhonicConnection, PhonicConnector
from ._provider import Phonic
from ._translator import AUDIO_FORMATS, MAX_CHUNK_MS, AudioFormat, PhonicTranslator, resumable_close

__all__ = [
    "AUDIO_FORMATS",
    "MAX_CHUNK_MS",
    "AudioFormat",
    "Phonic",
    "PhonicConnection",
    "PhonicConnector",
    "PhonicTranslator",
    "resumable_close",
]
