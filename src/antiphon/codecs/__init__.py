"""Pure audio codecs: PCM16 helpers, resampling, framing, G.711, WAV and base64.

Everything here is synchronous and free of IO except the WAV file helpers. Audio is
signed 16-bit little-endian PCM ("PCM16") with interleaved channels throughout; bad input
raises :class:`antiphon.errors.CodecError` (a :class:`ValueError`) naming the problem.

The audio-in path is :class:`AudioConverter`: downmix to mono, resample with a streaming
soxr filter (:class:`Resampler`), cut fixed provider frames (:class:`Chunker`).
"""

from __future__ import annotations

from antiphon.codecs._b64 import b64decode, b64encode
from antiphon.codecs._chunk import AudioConverter, Chunker
from antiphon.codecs._g711 import alaw_decode, alaw_encode, mulaw_decode, mulaw_encode
from antiphon.codecs._pcm import (
    MAX_CHANNELS,
    SUPPORTED_RATES,
    check_channels,
    check_pcm16,
    check_rate,
    downmix,
    float32_to_pcm16,
    pcm16_to_float32,
    pcm_duration_ms,
    pcm_frame_bytes,
    upmix,
)
from antiphon.codecs._resample import QUALITIES, Resampler
from antiphon.codecs._wav import WavAudio, read_wav, wav_bytes, write_wav

__all__ = [
    "MAX_CHANNELS",
    "QUALITIES",
    "SUPPORTED_RATES",
    "AudioConverter",
    "Chunker",
    "Resampler",
    "WavAudio",
    "alaw_decode",
    "alaw_encode",
    "b64decode",
    "b64encode",
    "check_channels",
    "check_pcm16",
    "check_rate",
    "downmix",
    "float32_to_pcm16",
    "mulaw_decode",
    "mulaw_encode",
    "pcm16_to_float32",
    "pcm_duration_ms",
    "pcm_frame_bytes",
    "read_wav",
    "upmix",
    "wav_bytes",
    "write_wav",
]
