"""G.711 against a scalar transcription of the reference algorithm (Sun ``g711.c``)."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from antiphon.codecs import alaw_decode, alaw_encode, mulaw_decode, mulaw_encode
from antiphon.errors import CodecError

Codec = Callable[[bytes], bytes]

# --- scalar reference, one sample at a time, written the way the C code reads -----------

SEG_AEND = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)
SEG_UEND = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
BIAS = 0x84
CLIP = 8159


def search(value: int, table: tuple[int, ...]) -> int:
    for i, end in enumerate(table):
        if value <= end:
            return i
    return len(table)


def ref_linear2alaw(pcm_val: int) -> int:
    pcm_val >>= 3
    if pcm_val >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm_val = -pcm_val - 1
    seg = search(pcm_val, SEG_AEND)
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    if seg < 2:
        aval |= (pcm_val >> 1) & 0xF
    else:
        aval |= (pcm_val >> seg) & 0xF
    return aval ^ mask


def ref_alaw2linear(a_val: int) -> int:
    a_val ^= 0x55
    t = (a_val & 0xF) << 4
    seg = (a_val & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t += 0x108
        t <<= seg - 1
    return t if a_val & 0x80 else -t


def ref_linear2ulaw(pcm_val: int) -> int:
    pcm_val >>= 2
    if pcm_val < 0:
        pcm_val = -pcm_val
        mask = 0x7F
    else:
        mask = 0xFF
    pcm_val = min(pcm_val, CLIP)
    pcm_val += BIAS >> 2
    seg = search(pcm_val, SEG_UEND)
    if seg >= 8:
        return 0x7F ^ mask
    uval = (seg << 4) | ((pcm_val >> (seg + 1)) & 0xF)
    return uval ^ mask


def ref_ulaw2linear(u_val: int) -> int:
    u_val = ~u_val & 0xFF
    t = ((u_val & 0xF) << 3) + BIAS
    t <<= (u_val & 0x70) >> 4
    return BIAS - t if u_val & 0x80 else t - BIAS


ALL_INT16 = list(range(-32768, 32768))
ALL_INT16_PCM = struct.pack(f"<{len(ALL_INT16)}h", *ALL_INT16)
ALL_CODES = bytes(range(256))


def samples(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 2}h", data))


# --- bit-exactness over the whole input space -------------------------------------------


def test_mulaw_encode_matches_reference_for_every_int16() -> None:
    assert list(mulaw_encode(ALL_INT16_PCM)) == [ref_linear2ulaw(x) for x in ALL_INT16]


def test_alaw_encode_matches_reference_for_every_int16() -> None:
    assert list(alaw_encode(ALL_INT16_PCM)) == [ref_linear2alaw(x) for x in ALL_INT16]


def test_mulaw_decode_matches_reference_for_every_code() -> None:
    assert samples(mulaw_decode(ALL_CODES)) == [ref_ulaw2linear(c) for c in ALL_CODES]


def test_alaw_decode_matches_reference_for_every_code() -> None:
    assert samples(alaw_decode(ALL_CODES)) == [ref_alaw2linear(c) for c in ALL_CODES]


# --- published values (G.711 tables, not derived from the code above) ------------------


@pytest.mark.parametrize(
    ("sample", "code"),
    [
        (0, 0xFF),
        (32767, 0x80),  # largest positive code
        (-32768, 0x00),  # largest negative code
        (32124, 0x80),
        (-32124, 0x00),
        (8, 0xFE),
        (-8, 0x7E),
        (1000, 0xCE),
        (-1000, 0x4E),
    ],
)
def test_mulaw_known_values(sample: int, code: int) -> None:
    assert mulaw_encode(struct.pack("<h", sample)) == bytes([code])


@pytest.mark.parametrize(
    ("code", "sample"),
    [
        (0xFF, 0),
        (0x7F, 0),
        (0x80, 32124),
        (0x00, -32124),
        (0xFE, 8),
        (0x7E, -8),
        (0xF0, 120),
        (0xCE, 988),
    ],
)
def test_mulaw_known_decodes(code: int, sample: int) -> None:
    assert mulaw_decode(bytes([code])) == struct.pack("<h", sample)


@pytest.mark.parametrize(
    ("sample", "code"),
    [
        (0, 0xD5),
        (-1, 0x55),
        (32767, 0xAA),  # largest positive code
        (-32768, 0x2A),  # largest negative code
        (1000, 0xFA),
        (-1000, 0x7A),
    ],
)
def test_alaw_known_values(sample: int, code: int) -> None:
    assert alaw_encode(struct.pack("<h", sample)) == bytes([code])


@pytest.mark.parametrize(
    ("code", "sample"), [(0xD5, 8), (0x55, -8), (0xAA, 32256), (0x2A, -32256), (0xD4, 24)]
)
def test_alaw_known_decodes(code: int, sample: int) -> None:
    assert alaw_decode(bytes([code])) == struct.pack("<h", sample)


# --- round trips --------------------------------------------------------------------------


def test_alaw_every_code_round_trips() -> None:
    assert alaw_encode(alaw_decode(ALL_CODES)) == ALL_CODES


def test_mulaw_every_code_round_trips_except_negative_zero() -> None:
    again = mulaw_encode(mulaw_decode(ALL_CODES))
    expected = bytearray(ALL_CODES)
    expected[0x7F] = 0xFF  # 0x7F ("-0") and 0xFF ("+0") both decode to 0
    assert again == bytes(expected)


@pytest.mark.parametrize(
    ("encode", "decode"), [(mulaw_encode, mulaw_decode), (alaw_encode, alaw_decode)]
)
def test_decode_encode_decode_is_stable_for_every_code(encode: Codec, decode: Codec) -> None:
    once = decode(ALL_CODES)
    assert decode(encode(once)) == once


@pytest.mark.parametrize(
    ("encode", "decode", "max_step"),
    [(mulaw_encode, mulaw_decode, 1024), (alaw_encode, alaw_decode, 1024)],
)
def test_quantisation_error_is_bounded(encode: Codec, decode: Codec, max_step: int) -> None:
    # The largest segment quantises in steps of 1024; the round trip stays within one step
    # (plus mu-law's clip at 32635 -> 32124).
    back = samples(decode(encode(ALL_INT16_PCM)))
    assert max(abs(a - b) for a, b in zip(ALL_INT16, back, strict=True)) <= max_step


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(-32768, 32767), max_size=100))
def test_encode_is_per_sample(values: list[int]) -> None:
    data = struct.pack(f"<{len(values)}h", *values)
    assert list(mulaw_encode(data)) == [ref_linear2ulaw(v) for v in values]
    assert list(alaw_encode(data)) == [ref_linear2alaw(v) for v in values]
    assert len(mulaw_decode(mulaw_encode(data))) == len(data)


def test_empty() -> None:
    assert mulaw_encode(b"") == alaw_encode(b"") == b""
    assert mulaw_decode(b"") == alaw_decode(b"") == b""


@pytest.mark.parametrize("encode", [mulaw_encode, alaw_encode])
def test_encode_rejects_odd_byte_count(encode: Codec) -> None:
    with pytest.raises(CodecError, match="even number of bytes, got 3"):
        encode(b"\x00\x00\x00")
