"""PCM16 basics: validation, float conversion and channel mixing.

All audio in antiphon is signed 16-bit little-endian PCM ("PCM16"), channels interleaved.
These helpers validate that shape once, at the edge, and raise :class:`CodecError` with a
message naming the problem; everything downstream may then assume well-formed frames.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
import numpy.typing as npt

from antiphon.errors import CodecError

__all__ = [
    "MAX_CHANNELS",
    "SUPPORTED_RATES",
    "check_channels",
    "check_pcm16",
    "check_rate",
    "downmix",
    "float32_to_pcm16",
    "pcm16_to_float32",
    "pcm_duration_ms",
    "pcm_frame_bytes",
    "upmix",
]

SUPPORTED_RATES: frozenset[int] = frozenset({8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000})
"""Sample rates the audio pipeline accepts (every provider rate plus the common device rates)."""

MAX_CHANNELS = 8
"""Largest interleaved channel count accepted (7.1 audio)."""

# Explicit little-endian: PCM16 on the wire and in WAV files is little-endian whatever the host.
_PCM16 = np.dtype("<i2")
_SUPPORTED_TEXT = ", ".join(str(rate) for rate in sorted(SUPPORTED_RATES))


def check_channels(channels: int) -> None:
    """Check an interleaved channel count.

    Args:
        channels: Number of interleaved channels.

    Raises:
        CodecError: ``channels`` is not an int in ``1..MAX_CHANNELS``.
    """
    # bool is an int subclass; True channels is certainly a caller bug.
    if not isinstance(channels, int) or isinstance(channels, bool):
        raise CodecError(f"channels must be an int, got {type(channels).__name__}")
    if not 1 <= channels <= MAX_CHANNELS:
        raise CodecError(f"channels must be 1..{MAX_CHANNELS}, got {channels}")


def check_pcm16(pcm: bytes, channels: int = 1) -> None:
    """Check that ``pcm`` holds whole PCM16 frames of ``channels`` samples.

    Args:
        pcm: Interleaved PCM16 bytes.
        channels: Number of interleaved channels.

    Raises:
        CodecError: ``channels`` is out of range, the byte count is odd, or the byte count
            is not a multiple of ``2 * channels``.
    """
    check_channels(channels)
    nbytes = len(pcm)
    if nbytes % 2:
        raise CodecError(f"PCM16 needs an even number of bytes, got {nbytes}")
    if nbytes % (2 * channels):
        raise CodecError(
            f"PCM16 with {channels} channels needs a multiple of {2 * channels} bytes, got {nbytes}"
        )


def check_rate(rate: int) -> None:
    """Check that ``rate`` is one of :data:`SUPPORTED_RATES`.

    Args:
        rate: Sample rate in Hz.

    Raises:
        CodecError: The rate is not supported.
    """
    # Checked as an object: callers pass floats despite the hint, and 16000.0 == 16000
    # would otherwise slip through the set lookup. numpy ints are Integral and welcome.
    value: object = rate
    if isinstance(value, bool) or not isinstance(value, Integral) or value not in SUPPORTED_RATES:
        raise CodecError(f"unsupported sample rate {rate!r} Hz (supported: {_SUPPORTED_TEXT})")


def pcm_duration_ms(nbytes: int, rate: int, channels: int = 1) -> float:
    """Duration of ``nbytes`` of PCM16 audio, in milliseconds.

    Args:
        nbytes: Byte count of interleaved PCM16 audio.
        rate: Sample rate in Hz (any positive rate; not limited to :data:`SUPPORTED_RATES`).
        channels: Number of interleaved channels.

    Returns:
        The duration in milliseconds; a partial trailing frame counts fractionally.

    Raises:
        CodecError: ``nbytes`` is negative, ``rate`` is not positive or ``channels`` is
            out of range.
    """
    check_channels(channels)
    if nbytes < 0:
        raise CodecError(f"byte count must not be negative, got {nbytes}")
    if rate <= 0:
        raise CodecError(f"sample rate must be positive, got {rate}")
    return nbytes * 1000.0 / (2 * channels * rate)


def pcm_frame_bytes(frame_ms: int, rate: int, channels: int = 1) -> int:
    """Size in bytes of a frame of ``frame_ms`` of PCM16 audio: the one frame-size formula.

    A frame must hold a whole number of samples, because the runtime maps milliseconds to
    frame indexes and back (a provider's safe point in ms becomes a frame index); a frame
    that was rounded would drift against the provider's clock.

    Args:
        frame_ms: Frame duration in milliseconds.
        rate: Sample rate in Hz (any positive rate; not limited to :data:`SUPPORTED_RATES`).
        channels: Number of interleaved channels.

    Returns:
        ``rate * frame_ms / 1000`` samples times ``2 * channels`` bytes.

    Raises:
        CodecError: ``frame_ms`` or ``rate`` is not a positive int, ``channels`` is out of
            range, or the frame is not a whole number of samples at ``rate``.
    """
    check_channels(channels)
    # Checked as objects: callers pass floats despite the hints (a 20.5 ms frame is a bug).
    checked: tuple[tuple[str, object], ...] = (("frame_ms", frame_ms), ("sample rate", rate))
    for name, value in checked:
        if isinstance(value, bool) or not isinstance(value, Integral) or value <= 0:
            raise CodecError(f"{name} must be a positive int, got {value!r}")
    samples, partial = divmod(int(rate) * int(frame_ms), 1000)
    if partial:
        raise CodecError(f"{frame_ms} ms at {rate} Hz is not a whole number of samples")
    return samples * 2 * channels


def pcm16_to_float32(pcm: bytes) -> npt.NDArray[np.float32]:
    """Convert PCM16 bytes to float32 samples in ``[-1, 1)``.

    The scale is 1/32768, so :func:`float32_to_pcm16` inverts it exactly.

    Args:
        pcm: PCM16 bytes (channels stay interleaved).

    Returns:
        A new, writable 1-D float32 array with one element per sample.

    Raises:
        CodecError: The byte count is odd.
    """
    check_pcm16(pcm)
    samples = np.frombuffer(pcm, dtype=_PCM16).astype(np.float32)
    samples *= np.float32(1.0 / 32768.0)
    return samples


def float32_to_pcm16(samples: npt.ArrayLike) -> bytes:
    """Convert float samples to PCM16 bytes, clipping to the int16 range and rounding.

    Args:
        samples: Float samples nominally in ``[-1, 1]``; values beyond are clipped. A 2-D
            ``(frames, channels)`` array is written interleaved (C order).

    Returns:
        PCM16 bytes, ``2 * samples.size`` long.

    Raises:
        CodecError: The array is not floating point, or holds NaN or infinity.
    """
    array = np.asarray(samples)
    if not np.issubdtype(array.dtype, np.floating):
        raise CodecError(f"float32_to_pcm16 needs floating-point samples, got {array.dtype}")
    if not np.isfinite(array).all():
        raise CodecError("float32_to_pcm16 got NaN or infinite samples")
    # Clip before scaling, in the input's own precision (at least float32), so nothing can
    # overflow; +1.0 scales to 32768, which the final minimum brings back into range.
    work = np.result_type(array.dtype, np.float32)
    scaled: npt.NDArray[np.floating[Any]] = np.clip(array.ravel(), -1.0, 1.0).astype(
        work, copy=False
    ) * work.type(32768.0)
    np.rint(scaled, out=scaled)
    np.minimum(scaled, 32767.0, out=scaled)
    return scaled.astype(_PCM16).tobytes()


def downmix(pcm: bytes, channels: int) -> bytes:
    """Mix interleaved PCM16 with ``channels`` channels down to mono by averaging.

    Args:
        pcm: Interleaved PCM16 bytes.
        channels: Number of interleaved channels in ``pcm``.

    Returns:
        Mono PCM16 bytes (a copy of ``pcm`` when it is already mono).

    Raises:
        CodecError: ``channels`` is out of range or ``pcm`` does not hold whole frames.
    """
    check_pcm16(pcm, channels)
    if channels == 1:
        return bytes(pcm)
    frames = np.frombuffer(pcm, dtype=_PCM16).reshape(-1, channels)
    # The mean of int16 values is within the int16 range, so rounding cannot overflow.
    mixed = np.rint(frames.mean(axis=1))
    return mixed.astype(_PCM16).tobytes()


def upmix(pcm: bytes, channels: int) -> bytes:
    """Copy mono PCM16 into ``channels`` identical interleaved channels.

    Args:
        pcm: Mono PCM16 bytes.
        channels: Number of output channels.

    Returns:
        Interleaved PCM16 bytes, ``channels`` times as long as ``pcm``.

    Raises:
        CodecError: ``channels`` is out of range or the byte count is odd.
    """
    check_pcm16(pcm, 1)
    check_channels(channels)
    if channels == 1:
        return bytes(pcm)
    return np.repeat(np.frombuffer(pcm, dtype=_PCM16), channels).tobytes()
