"""G.711 mu-law and A-law, bit-exact with the reference algorithm.

The mapping follows the classic Sun Microsystems ``g711.c`` (also used by Python's former
``audioop`` module and by sox): 16-bit input is reduced to G.711's 14-bit (mu-law) or
13-bit (A-law) linear range by an arithmetic shift, mu-law clips the magnitude at 8159
(32635 in 16-bit terms) and adds the bias 0x21 (0x84 / 4), A-law XORs even bits with 0x55.

Both directions are table lookups. The tables are built once, at import, by running the
reference algorithm vectorised over every possible input: 65536 int16 values (indexed by
their uint16 bit pattern) for encoding and 256 codes for decoding.

Decoding is the exact inverse on codes: ``encode(decode(c)) == c`` for every A-law code
and for every mu-law code except 0x7F ("negative zero"), which decodes to 0 like 0xFF and
therefore re-encodes as 0xFF.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from antiphon.codecs._pcm import check_pcm16

__all__ = ["alaw_decode", "alaw_encode", "mulaw_decode", "mulaw_encode"]

_PCM16 = np.dtype("<i2")
_U16 = np.dtype("<u2")

# Segment end points of the reference algorithm, on the reduced (shifted) magnitude.
_SEG_ALAW_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)
_SEG_MULAW_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_MULAW_BIAS = 0x84
_MULAW_CLIP = 8159


def _all_int16() -> npt.NDArray[np.int32]:
    # Position i holds the int16 whose little-endian uint16 bit pattern is i, so an encode
    # table built over this array is indexed directly by the input viewed as uint16.
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


def _segment(
    magnitude: npt.NDArray[np.int32], ends: npt.NDArray[np.int32]
) -> npt.NDArray[np.int32]:
    # First segment whose end point is >= magnitude; 8 when beyond the last one.
    return np.searchsorted(ends, magnitude, side="left").astype(np.int32)


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    value = _all_int16() >> 3
    positive = value >= 0
    mask = np.where(positive, 0xD5, 0x55)
    value = np.where(positive, value, -value - 1)
    seg = _segment(value, _SEG_ALAW_END)
    quant = np.where(seg < 2, value >> 1, value >> np.maximum(seg, 1)) & 0xF
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | quant) ^ mask
    return code.astype(np.uint8)


def _build_mulaw_encode() -> npt.NDArray[np.uint8]:
    value = _all_int16() >> 2
    mask = np.where(value < 0, 0x7F, 0xFF)
    value = np.minimum(np.abs(value), _MULAW_CLIP) + (_MULAW_BIAS >> 2)
    seg = _segment(value, _SEG_MULAW_END)
    quant = (value >> (np.minimum(seg, 7) + 1)) & 0xF
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | quant) ^ mask
    return code.astype(np.uint8)


def _build_alaw_decode() -> npt.NDArray[np.int16]:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (code & 0x70) >> 4
    t = (code & 0xF) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(code & 0x80, t, -t).astype(_PCM16)


def _build_mulaw_decode() -> npt.NDArray[np.int16]:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((code & 0xF) << 3) + _MULAW_BIAS) << ((code & 0x70) >> 4)
    return np.where(code & 0x80, _MULAW_BIAS - t, t - _MULAW_BIAS).astype(_PCM16)


_ALAW_ENCODE = _build_alaw_encode()
_MULAW_ENCODE = _build_mulaw_encode()
_ALAW_DECODE = _build_alaw_decode()
_MULAW_DECODE = _build_mulaw_decode()


def mulaw_encode(pcm: bytes) -> bytes:
    """Encode PCM16 to G.711 mu-law, one byte per sample.

    Args:
        pcm: PCM16 bytes (any channel layout; each sample is encoded independently).

    Returns:
        mu-law bytes, half as long as ``pcm``.

    Raises:
        CodecError: The byte count is odd.
    """
    check_pcm16(pcm)
    return _MULAW_ENCODE[np.frombuffer(pcm, dtype=_U16)].tobytes()


def mulaw_decode(data: bytes) -> bytes:
    """Decode G.711 mu-law to PCM16.

    Args:
        data: mu-law bytes, one per sample.

    Returns:
        PCM16 bytes, twice as long as ``data``.
    """
    return _MULAW_DECODE[np.frombuffer(data, dtype=np.uint8)].tobytes()


def alaw_encode(pcm: bytes) -> bytes:
    """Encode PCM16 to G.711 A-law, one byte per sample.

    Args:
        pcm: PCM16 bytes (any channel layout; each sample is encoded independently).

    Returns:
        A-law bytes, half as long as ``pcm``.

    Raises:
        CodecError: The byte count is odd.
    """
    check_pcm16(pcm)
    return _ALAW_ENCODE[np.frombuffer(pcm, dtype=_U16)].tobytes()


def alaw_decode(data: bytes) -> bytes:
    """Decode G.711 A-law to PCM16.

    Args:
        data: A-law bytes, one per sample.

    Returns:
        PCM16 bytes, twice as long as ``data``.
    """
    return _ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)].tobytes()
