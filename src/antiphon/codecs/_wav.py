"""16-bit PCM WAV files, read and written with the standard library's :mod:`wave`."""

from __future__ import annotations

import io
import os
import wave
from typing import IO, NamedTuple

from antiphon.codecs._pcm import check_pcm16, pcm_duration_ms
from antiphon.errors import CodecError

__all__ = ["WavAudio", "read_wav", "wav_bytes", "write_wav"]


class WavAudio(NamedTuple):
    """The contents of a 16-bit PCM WAV file.

    Attributes:
        pcm: Interleaved PCM16 little-endian samples.
        sample_rate: Sample rate in Hz.
        channels: Number of interleaved channels.
    """

    pcm: bytes
    sample_rate: int
    channels: int

    def __repr__(self) -> str:
        # The default repr would print every sample.
        return (
            f"WavAudio(<{len(self.pcm)} bytes>, sample_rate={self.sample_rate}, "
            f"channels={self.channels})"
        )

    @property
    def duration_ms(self) -> float:
        """Duration of the audio in milliseconds."""
        return pcm_duration_ms(len(self.pcm), self.sample_rate, self.channels)


def read_wav(source: str | os.PathLike[str] | IO[bytes]) -> WavAudio:
    """Read a 16-bit PCM WAV file.

    Args:
        source: A path, or a binary file object positioned at the start of a WAV file.

    Returns:
        The samples with their rate and channel count.

    Raises:
        CodecError: The file is not a WAV file, is not PCM, or its samples are not 16-bit.
        OSError: The file cannot be opened or read.
    """
    # wave.open takes a str or a file object, not a PathLike.
    target = os.fspath(source) if isinstance(source, os.PathLike) else source
    name = target if isinstance(target, str) else str(getattr(target, "name", "<stream>"))
    try:
        with wave.open(target, "rb") as wav:
            width = wav.getsampwidth()
            if width != 2:
                raise CodecError(
                    f"{name}: only 16-bit PCM WAV is supported, this file has "
                    f"{8 * width}-bit samples"
                )
            channels = wav.getnchannels()
            rate = wav.getframerate()
            pcm = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        # wave.Error covers a missing RIFF/WAVE header and non-PCM formats (e.g. float).
        raise CodecError(f"{name}: not a 16-bit PCM WAV file ({exc})") from exc
    # A truncated data chunk can end mid-frame; keep whole frames only.
    whole = len(pcm) - len(pcm) % (2 * channels)
    return WavAudio(pcm=pcm[:whole], sample_rate=rate, channels=channels)


def _write(target: IO[bytes], pcm: bytes, sample_rate: int, channels: int) -> None:
    check_pcm16(pcm, channels)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise CodecError(f"sample rate must be a positive int, got {sample_rate!r}")
    with wave.open(target, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)


def write_wav(
    path: str | os.PathLike[str], pcm: bytes, sample_rate: int, channels: int = 1
) -> None:
    """Write PCM16 samples to a WAV file, replacing any existing file.

    Args:
        path: Where to write.
        pcm: Interleaved PCM16 little-endian samples.
        sample_rate: Sample rate in Hz (any positive rate).
        channels: Number of interleaved channels, 1..8.

    Raises:
        CodecError: ``pcm`` does not hold whole frames, or the rate or channel count is
            invalid. Nothing is written then.
        OSError: The file cannot be written.
    """
    # Encode in memory first so a bad argument never leaves a half-written file behind.
    data = wav_bytes(pcm, sample_rate, channels)
    with open(path, "wb") as file:
        file.write(data)


def wav_bytes(pcm: bytes, sample_rate: int, channels: int = 1) -> bytes:
    """Build an in-memory 16-bit PCM WAV file.

    Args:
        pcm: Interleaved PCM16 little-endian samples.
        sample_rate: Sample rate in Hz (any positive rate).
        channels: Number of interleaved channels, 1..8.

    Returns:
        The complete WAV file.

    Raises:
        CodecError: ``pcm`` does not hold whole frames, or the rate or channel count is
            invalid.
    """
    buffer = io.BytesIO()
    _write(buffer, pcm, sample_rate, channels)
    return buffer.getvalue()
