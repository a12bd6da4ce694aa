from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from antiphon.codecs import (
    SUPPORTED_RATES,
    check_pcm16,
    check_rate,
    downmix,
    float32_to_pcm16,
    pcm16_to_float32,
    pcm_duration_ms,
    pcm_frame_bytes,
    upmix,
)
from antiphon.errors import CodecError


def pcm(*samples: int) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nbytes", "channels"), [(0, 1), (2, 1), (960, 1), (4, 2), (0, 8), (48, 8), (12, 3)]
)
def test_check_pcm16_accepts_whole_frames(nbytes: int, channels: int) -> None:
    check_pcm16(bytes(nbytes), channels)


@pytest.mark.parametrize(
    ("nbytes", "channels", "message"),
    [
        (961, 1, "PCM16 needs an even number of bytes, got 961"),
        (1, 2, "even number of bytes, got 1"),
        (6, 2, "PCM16 with 2 channels needs a multiple of 4 bytes, got 6"),
        (10, 3, "multiple of 6 bytes, got 10"),
        (4, 0, "channels must be 1..8, got 0"),
        (4, 9, "channels must be 1..8, got 9"),
        (4, -1, "channels must be 1..8, got -1"),
    ],
)
def test_check_pcm16_rejects(nbytes: int, channels: int, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        check_pcm16(bytes(nbytes), channels)


def test_codec_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="even number"):
        check_pcm16(b"\x00")


@pytest.mark.parametrize("bad", [True, 2.0, "2"])
def test_check_pcm16_rejects_non_int_channels(bad: object) -> None:
    with pytest.raises(CodecError, match="channels must be an int"):
        check_pcm16(b"", bad)  # type: ignore[arg-type]


def test_supported_rates() -> None:
    assert frozenset({8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000}) == SUPPORTED_RATES


@pytest.mark.parametrize("rate", sorted(SUPPORTED_RATES))
def test_check_rate_accepts(rate: int) -> None:
    check_rate(rate)


@pytest.mark.parametrize("rate", [0, -16000, 12345, 96000, 16000.5, 16000.0, True])
def test_check_rate_rejects(rate: int) -> None:
    with pytest.raises(CodecError, match=r"unsupported sample rate .* Hz \(supported: 8000, "):
        check_rate(rate)


def test_check_rate_accepts_numpy_ints() -> None:
    check_rate(np.int64(16000))  # type: ignore[arg-type]


def test_check_rate_message_names_rate() -> None:
    with pytest.raises(CodecError, match="unsupported sample rate 12345 Hz"):
        check_rate(12345)


@pytest.mark.parametrize(
    ("nbytes", "rate", "channels", "expected"),
    [
        (0, 16000, 1, 0.0),
        (32000, 16000, 1, 1000.0),
        (960, 24000, 1, 20.0),
        (3840, 48000, 2, 20.0),
        (1, 8000, 1, 0.0625),
        (44100 * 2 * 2, 44100, 2, 1000.0),
    ],
)
def test_pcm_duration_ms(nbytes: int, rate: int, channels: int, expected: float) -> None:
    assert pcm_duration_ms(nbytes, rate, channels) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("nbytes", "rate", "channels", "message"),
    [
        (-2, 16000, 1, "must not be negative"),
        (2, 0, 1, "sample rate must be positive"),
        (2, 16000, 0, "channels must be 1..8"),
    ],
)
def test_pcm_duration_ms_rejects(nbytes: int, rate: int, channels: int, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        pcm_duration_ms(nbytes, rate, channels)


# --- float conversion -------------------------------------------------------------------


def test_pcm16_to_float32_scale() -> None:
    out = pcm16_to_float32(pcm(0, 16384, -16384, 32767, -32768, 1))
    assert out.dtype == np.float32
    assert out.tolist() == [0.0, 0.5, -0.5, 32767 / 32768, -1.0, 1 / 32768]


def test_pcm16_to_float32_is_writable_copy() -> None:
    data = pcm(1, 2)
    out = pcm16_to_float32(data)
    out[0] = 0.25
    assert data == pcm(1, 2)


def test_pcm16_to_float32_rejects_odd() -> None:
    with pytest.raises(CodecError, match="got 3"):
        pcm16_to_float32(b"\x00\x00\x00")


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([0.0, 0.5, -0.5, -1.0], [0, 16384, -16384, -32768]),
        ([1.0, 2.0, -3.0, 1e30], [32767, 32767, -32768, 32767]),
        ([1.4 / 32768, 1.6 / 32768, -1.6 / 32768], [1, 2, -2]),
        ([], []),
    ],
)
def test_float32_to_pcm16(samples: list[float], expected: list[int]) -> None:
    assert float32_to_pcm16(np.array(samples, dtype=np.float32)) == pcm(*expected)


def test_float32_to_pcm16_float64_huge_values_clip() -> None:
    assert float32_to_pcm16(np.array([1e300, -1e300])) == pcm(32767, -32768)


def test_float32_to_pcm16_interleaves_2d() -> None:
    frames = np.array([[0.5, -0.5], [0.25, 0.0]], dtype=np.float32)
    assert float32_to_pcm16(frames) == pcm(16384, -16384, 8192, 0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_float32_to_pcm16_rejects_non_finite(bad: float) -> None:
    with pytest.raises(CodecError, match="NaN or infinite"):
        float32_to_pcm16(np.array([0.0, bad], dtype=np.float32))


def test_float32_to_pcm16_rejects_integers() -> None:
    with pytest.raises(CodecError, match="floating-point samples, got int16"):
        float32_to_pcm16(np.array([1, 2], dtype=np.int16))


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=400).map(lambda b: b[: len(b) // 2 * 2]))
def test_pcm16_float32_round_trip_is_exact(data: bytes) -> None:
    assert float32_to_pcm16(pcm16_to_float32(data)) == data


# --- channel mixing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interleaved", "channels", "mono"),
    [
        (pcm(), 2, pcm()),
        (pcm(5, -7), 1, pcm(5, -7)),
        (pcm(100, 200, -100, -300), 2, pcm(150, -200)),
        (pcm(1, 2), 2, pcm(2)),  # 1.5 rounds half to even
        (pcm(1, 4), 2, pcm(2)),  # 2.5 rounds half to even
        (pcm(32767, 32767, -32768, -32768), 2, pcm(32767, -32768)),
        (pcm(32767, -32768), 2, pcm(0)),  # -0.5 rounds to 0
        (pcm(3, 6, 9, 0, 0, 3), 3, pcm(6, 1)),
        (pcm(*range(8)), 8, pcm(4)),  # 3.5 rounds half to even
    ],
)
def test_downmix(interleaved: bytes, channels: int, mono: bytes) -> None:
    assert downmix(interleaved, channels) == mono


@pytest.mark.parametrize(
    ("data", "channels", "message"),
    [
        (bytes(6), 2, "multiple of 4 bytes, got 6"),
        (bytes(3), 1, "even number of bytes, got 3"),
        (bytes(4), 9, "channels must be 1..8"),
    ],
)
def test_downmix_rejects(data: bytes, channels: int, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        downmix(data, channels)


@pytest.mark.parametrize(
    ("mono", "channels", "interleaved"),
    [
        (pcm(), 2, pcm()),
        (pcm(1, -2), 1, pcm(1, -2)),
        (pcm(1, -2), 2, pcm(1, 1, -2, -2)),
        (pcm(7), 3, pcm(7, 7, 7)),
    ],
)
def test_upmix(mono: bytes, channels: int, interleaved: bytes) -> None:
    assert upmix(mono, channels) == interleaved


@pytest.mark.parametrize(
    ("data", "channels", "message"),
    [(bytes(3), 2, "even number of bytes, got 3"), (bytes(2), 0, "channels must be 1..8")],
)
def test_upmix_rejects(data: bytes, channels: int, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        upmix(data, channels)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-32768, 32767), max_size=64),
    st.integers(1, 8),
)
def test_upmix_then_downmix_is_identity_for_mono(samples: list[int], channels: int) -> None:
    mono = pcm(*samples)
    up = upmix(mono, channels)
    assert len(up) == len(mono) * channels
    assert downmix(up, channels) == mono


# --- frame sizes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame_ms", "rate", "channels", "expected"),
    [
        (20, 16_000, 1, 640),
        (20, 24_000, 1, 960),
        (32, 16_000, 1, 1024),  # Nova's 32 ms frames
        (40, 11_025, 1, 882),
        (10, 44_100, 2, 1764),
        (1, 48_000, 8, 768),
    ],
)
def test_pcm_frame_bytes(frame_ms: int, rate: int, channels: int, expected: int) -> None:
    assert pcm_frame_bytes(frame_ms, rate, channels) == expected
    assert pcm_duration_ms(expected, rate, channels) == frame_ms


@pytest.mark.parametrize(
    ("frame_ms", "rate", "channels", "message"),
    [
        (20, 11_025, 1, "20 ms at 11025 Hz is not a whole number of samples"),
        (21, 16_000 + 1, 1, "not a whole number of samples"),
        (0, 16_000, 1, "frame_ms must be a positive int, got 0"),
        (-20, 16_000, 1, "frame_ms must be a positive int, got -20"),
        (20.0, 16_000, 1, "frame_ms must be a positive int, got 20.0"),
        (20, 0, 1, "sample rate must be a positive int, got 0"),
        (20, True, 1, "sample rate must be a positive int, got True"),
        (20, 16_000, 0, "channels must be 1..8, got 0"),
    ],
)
def test_pcm_frame_bytes_rejects(frame_ms: Any, rate: Any, channels: int, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        pcm_frame_bytes(frame_ms, rate, channels)
