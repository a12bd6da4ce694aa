"""Fixed-size framing and the audio-in conversion pipeline."""

from __future__ import annotations

from antiphon.codecs._pcm import check_channels, check_pcm16, check_rate, downmix
from antiphon.codecs._resample import Resampler
from antiphon.errors import CodecError

__all__ = ["AudioConverter", "Chunker"]


class Chunker:
    """Cut a byte stream into frames of exactly ``frame_bytes``.

    Bytes that do not fill a frame are held until the next :meth:`push`. After each push
    fewer than ``frame_bytes`` bytes are held, so every input byte is copied a bounded
    number of times: many small pushes cost time linear in the bytes pushed.

    The chunker knows nothing about samples; to keep PCM16 frames sample-aligned, use an
    even ``frame_bytes`` (a multiple of ``2 * channels``) and push whole samples.

    Args:
        frame_bytes: Size of each frame in bytes, at least 1.

    Raises:
        CodecError: ``frame_bytes`` is not a positive int.
    """

    __slots__ = ("_buffer", "_frame_bytes")

    def __init__(self, frame_bytes: int) -> None:
        if not isinstance(frame_bytes, int) or isinstance(frame_bytes, bool) or frame_bytes < 1:
            raise CodecError(f"frame_bytes must be a positive int, got {frame_bytes!r}")
        self._frame_bytes = frame_bytes
        self._buffer = bytearray()

    def __repr__(self) -> str:
        return f"Chunker(frame_bytes={self._frame_bytes}, pending={len(self._buffer)})"

    @property
    def frame_bytes(self) -> int:
        """Size of each frame in bytes."""
        return self._frame_bytes

    @property
    def pending(self) -> int:
        """Bytes held that do not yet fill a frame (always less than ``frame_bytes``)."""
        return len(self._buffer)

    def push(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add bytes and return every frame that is now complete.

        Args:
            data: The next bytes of the stream (any length, including empty). Frames are
                copies, so the caller may reuse its buffer afterwards.

        Returns:
            Complete frames, in order, each exactly ``frame_bytes`` long.
        """
        size = self._frame_bytes
        buffer = self._buffer
        if not buffer:
            # Fast path: nothing held, so frames come straight out of `data`.
            # cast("B") counts bytes even for a memoryview of wider items.
            view = memoryview(data).cast("B")
            whole = len(view) - len(view) % size
            frames = [bytes(view[i : i + size]) for i in range(0, whole, size)]
            buffer += view[whole:]
            return frames
        buffer += data
        whole = len(buffer) - len(buffer) % size
        if not whole:
            return []
        view = memoryview(buffer)
        frames = [bytes(view[i : i + size]) for i in range(0, whole, size)]
        view.release()  # a bytearray cannot be resized while a view is exported
        del buffer[:whole]
        return frames

    def flush(self, *, pad: bool = False) -> bytes:
        """Return and forget the held bytes.

        Args:
            pad: Zero-pad the held bytes to a full frame (silence, for PCM16).

        Returns:
            The held bytes (a full frame when ``pad`` is true), or ``b""`` if none are held.
        """
        held = bytes(self._buffer)
        self._buffer.clear()
        if pad and held:
            held += bytes(self._frame_bytes - len(held))
        return held


class AudioConverter:
    """The audio-in pipeline: downmix to mono, resample, cut into fixed frames.

    Takes interleaved PCM16 at ``in_rate`` with ``in_channels`` channels and returns mono
    PCM16 frames at ``out_rate``, each exactly ``frame_bytes`` long. When the input is
    already mono at ``out_rate`` the resampler is skipped entirely. After :meth:`flush` the
    converter is empty and reset, ready for an independent stream.

    Args:
        in_rate: Input sample rate in Hz, one of ``SUPPORTED_RATES``.
        in_channels: Interleaved input channels.
        out_rate: Output sample rate in Hz, one of ``SUPPORTED_RATES``.
        frame_bytes: Size of each output frame in bytes; a positive even number.
        quality: soxr quality recipe, see :class:`Resampler`.

    Raises:
        CodecError: A rate, the channel count, the quality or ``frame_bytes`` is invalid.
    """

    __slots__ = ("_chunker", "_in_channels", "_in_rate", "_out_rate", "_resampler")

    def __init__(
        self,
        *,
        in_rate: int,
        in_channels: int,
        out_rate: int,
        frame_bytes: int,
        quality: str = "HQ",
    ) -> None:
        check_rate(in_rate)
        check_rate(out_rate)
        check_channels(in_channels)
        if isinstance(frame_bytes, int) and frame_bytes % 2:
            raise CodecError(f"frame_bytes must be even for PCM16 frames, got {frame_bytes}")
        self._chunker = Chunker(frame_bytes)
        self._in_rate = in_rate
        self._in_channels = in_channels
        self._out_rate = out_rate
        self._resampler = (
            None if in_rate == out_rate else Resampler(in_rate, out_rate, quality=quality)
        )

    def __repr__(self) -> str:
        return (
            f"AudioConverter(in_rate={self._in_rate}, in_channels={self._in_channels}, "
            f"out_rate={self._out_rate}, frame_bytes={self._chunker.frame_bytes})"
        )

    @property
    def frame_bytes(self) -> int:
        """Size of each output frame in bytes."""
        return self._chunker.frame_bytes

    @property
    def pending(self) -> int:
        """Output bytes held that do not yet fill a frame (the resampler's delay excluded)."""
        return self._chunker.pending

    def push(self, pcm: bytes) -> list[bytes]:
        """Convert the next piece of input.

        Args:
            pcm: Interleaved PCM16 bytes at ``in_rate`` with ``in_channels`` channels.

        Returns:
            Every output frame completed by this input, each exactly ``frame_bytes`` long.

        Raises:
            CodecError: ``pcm`` does not hold whole input frames.
        """
        check_pcm16(pcm, self._in_channels)
        mono = downmix(pcm, self._in_channels) if self._in_channels > 1 else pcm
        if self._resampler is not None:
            mono = self._resampler.process(mono)
        return self._chunker.push(mono)

    def flush(self, *, pad: bool = True) -> list[bytes]:
        """End the stream: drain the resampler and return the last frames.

        Args:
            pad: Zero-pad the final partial frame to ``frame_bytes``. When false the final
                frame is returned short instead.

        Returns:
            The remaining frames; all exactly ``frame_bytes`` long unless ``pad`` is false,
            in which case the last one may be shorter.
        """
        frames = self._chunker.push(self._resampler.flush()) if self._resampler else []
        tail = self._chunker.flush(pad=pad)
        if tail:
            frames.append(tail)
        return frames
