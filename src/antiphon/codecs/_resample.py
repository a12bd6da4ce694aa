"""Streaming sample-rate conversion on :class:`soxr.ResampleStream`.

One :class:`Resampler` belongs to one audio stream: the filter keeps state between calls,
so chunk boundaries leave no clicks and the output does not depend on how the input was
split. The stream runs in float32 rather than soxr's int16 mode on purpose: for int16
output libsoxr adds TPDF dither seeded from the clock, which would make the same input
resample to different bytes on each run and break deterministic replay.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import soxr

from antiphon.codecs._pcm import check_channels, check_pcm16, check_rate
from antiphon.errors import CodecError

__all__ = ["QUALITIES", "Resampler"]

QUALITIES: Final = frozenset({"QQ", "LQ", "MQ", "HQ", "VHQ"})
"""soxr quality recipes, from quick (``QQ``) to very high (``VHQ``)."""

_PCM16 = np.dtype("<i2")
_TO_FLOAT = np.float32(1.0 / 32768.0)
_TO_INT = np.float32(32768.0)


class Resampler:
    """Convert one PCM16 stream from ``in_rate`` to ``out_rate``.

    :meth:`process` returns what the filter can emit so far; :meth:`flush` drains the
    samples the filter still holds at the end of the stream and then resets the resampler,
    so the same object can take the next, independent stream (e.g. the next turn). A
    resampler whose two rates are equal is a passthrough that only validates its input.

    Example:
        >>> r = Resampler(48_000, 16_000)
        >>> out = r.process(b"\\x00\\x00" * 4800) + r.flush()
        >>> len(out)
        3200

    Args:
        in_rate: Input sample rate in Hz, one of ``SUPPORTED_RATES``.
        out_rate: Output sample rate in Hz, one of ``SUPPORTED_RATES``.
        channels: Number of interleaved channels (the same on both sides).
        quality: soxr quality recipe, one of :data:`QUALITIES`.

    Raises:
        CodecError: A rate, the channel count or the quality is not supported.
    """

    __slots__ = ("_channels", "_in_rate", "_out_rate", "_quality", "_stream")

    def __init__(
        self, in_rate: int, out_rate: int, *, channels: int = 1, quality: str = "HQ"
    ) -> None:
        check_rate(in_rate)
        check_rate(out_rate)
        check_channels(channels)
        if quality not in QUALITIES:
            raise CodecError(
                f"unknown resampler quality {quality!r} (one of: {', '.join(sorted(QUALITIES))})"
            )
        self._in_rate = in_rate
        self._out_rate = out_rate
        self._channels = channels
        self._quality = quality
        self._stream: soxr.ResampleStream | None = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, channels, dtype="float32", quality=quality)
        )

    def __repr__(self) -> str:
        return (
            f"Resampler({self._in_rate}, {self._out_rate}, channels={self._channels}, "
            f"quality={self._quality!r})"
        )

    @property
    def in_rate(self) -> int:
        """Input sample rate in Hz."""
        return self._in_rate

    @property
    def out_rate(self) -> int:
        """Output sample rate in Hz."""
        return self._out_rate

    @property
    def channels(self) -> int:
        """Number of interleaved channels."""
        return self._channels

    @property
    def passthrough(self) -> bool:
        """True when the rates are equal and audio is passed through unchanged."""
        return self._stream is None

    @property
    def delay_samples(self) -> float:
        """Output samples (per channel) the filter currently holds back; 0 for a passthrough."""
        return 0.0 if self._stream is None else float(self._stream.delay())

    def process(self, pcm: bytes) -> bytes:
        """Resample the next piece of the stream.

        Args:
            pcm: Interleaved PCM16 bytes at ``in_rate``; any whole number of frames,
                including none.

        Returns:
            Interleaved PCM16 bytes at ``out_rate``, possibly empty while the filter fills.

        Raises:
            CodecError: ``pcm`` does not hold whole frames.
        """
        check_pcm16(pcm, self._channels)
        if self._stream is None:
            return bytes(pcm)
        if not pcm:
            return b""
        return self._run(pcm, last=False)

    def flush(self) -> bytes:
        """Drain the filter at the end of the stream and reset for a new stream.

        Returns:
            The remaining PCM16 bytes at ``out_rate`` (empty for a passthrough).
        """
        if self._stream is None:
            return b""
        out = self._run(b"", last=True)
        # soxr refuses input after `last`; clearing makes the object reusable for the next
        # stream, which starts from silence exactly like a fresh Resampler.
        self._stream.clear()
        return out

    def _run(self, pcm: bytes, *, last: bool) -> bytes:
        assert self._stream is not None
        samples = np.frombuffer(pcm, dtype=_PCM16).astype(np.float32)
        samples *= _TO_FLOAT
        # soxr wants (frames, channels) for multichannel input.
        framed = samples.reshape(-1, self._channels) if self._channels > 1 else samples
        out: npt.NDArray[np.float32] = self._stream.resample_chunk(framed, last=last)
        if out.size == 0:
            return b""
        # The filter can overshoot full scale slightly on clipped input; clip, don't wrap.
        scaled: npt.NDArray[np.float32] = np.rint(out.ravel() * _TO_INT)
        np.clip(scaled, -32768.0, 32767.0, out=scaled)
        return scaled.astype(_PCM16).tobytes()
