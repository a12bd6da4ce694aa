from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from antiphon.codecs import (
    SUPPORTED_RATES,
    AudioConverter,
    Chunker,
    Resampler,
    downmix,
    float32_to_pcm16,
)
from antiphon.errors import CodecError

RATES = sorted(SUPPORTED_RATES)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]


# --- Chunker ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -4, True, 2.0, "4"])
def test_chunker_rejects_bad_frame_size(bad: object) -> None:
    with pytest.raises(CodecError, match="frame_bytes must be a positive int"):
        Chunker(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("frame_bytes", "pushes", "frames", "pending"),
    [
        (4, [b""], [], 0),
        (4, [b"ab"], [], 2),
        (4, [b"abcd"], [b"abcd"], 0),
        (4, [b"abcdefghij"], [b"abcd", b"efgh"], 2),
        (4, [b"ab", b"cd", b"e"], [b"abcd"], 1),
        (4, [b"abc", b"defghi", b"jk"], [b"abcd", b"efgh"], 3),
        (3, [b"a", b"b", b"c", b"d"], [b"abc"], 1),
        (1, [b"xyz"], [b"x", b"y", b"z"], 0),
    ],
)
def test_chunker_push(
    frame_bytes: int, pushes: list[bytes], frames: list[bytes], pending: int
) -> None:
    chunker = Chunker(frame_bytes)
    got = [frame for data in pushes for frame in chunker.push(data)]
    assert got == frames
    assert chunker.pending == pending


@pytest.mark.parametrize(
    ("held", "pad", "expected"),
    [
        (b"", False, b""),
        (b"", True, b""),
        (b"ab", False, b"ab"),
        (b"ab", True, b"ab\x00\x00\x00\x00"),
        (b"abcde", True, b"abcde\x00"),
    ],
)
def test_chunker_flush(held: bytes, pad: bool, expected: bytes) -> None:
    chunker = Chunker(6)
    assert chunker.push(held) == []
    assert chunker.flush(pad=pad) == expected
    assert chunker.pending == 0
    assert chunker.flush(pad=pad) == b""


def test_chunker_accepts_bytearray_and_memoryview_and_copies() -> None:
    chunker = Chunker(2)
    source = bytearray(b"abc")
    frames = chunker.push(source) + chunker.push(memoryview(b"de"))
    source[:] = b"zzz"
    assert frames == [b"ab", b"cd"]
    assert all(type(f) is bytes for f in frames)
    assert chunker.flush() == b"e"
    wide = memoryview(bytes(range(6))).cast("h")  # len() counts 3 items, not 6 bytes
    assert chunker.push(wide) == [b"\x00\x01", b"\x02\x03", b"\x04\x05"]


def test_chunker_many_tiny_pushes_are_linear() -> None:
    # 300k one-byte pushes into a 200 kB frame: re-copying the held bytes on every push
    # would move ~3e10 bytes (minutes); the bound leaves a wide margin on a slow machine.
    chunker = Chunker(200_000)
    start = time.perf_counter()
    frames = [f for _ in range(300_000) for f in chunker.push(b"\x01")]
    elapsed = time.perf_counter() - start
    assert frames == [b"\x01" * 200_000]
    assert chunker.pending == 100_000
    assert elapsed < 5.0


def test_chunker_repr_and_frame_bytes() -> None:
    chunker = Chunker(8)
    chunker.push(b"abc")
    assert chunker.frame_bytes == 8
    assert repr(chunker) == "Chunker(frame_bytes=8, pending=3)"


@settings(max_examples=100, deadline=None)
@given(
    data=st.binary(max_size=300),
    cuts=st.lists(st.integers(0, 300), max_size=12),
    frame_bytes=st.integers(1, 40),
)
def test_chunking_never_changes_the_stream(data: bytes, cuts: list[int], frame_bytes: int) -> None:
    chunker = Chunker(frame_bytes)
    frames = [frame for piece in split(data, cuts) for frame in chunker.push(piece)]
    assert all(len(frame) == frame_bytes for frame in frames)
    assert len(frames) == len(data) // frame_bytes
    assert chunker.pending == len(data) % frame_bytes
    assert b"".join(frames) + chunker.flush() == data


# --- AudioConverter -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"in_rate": 12345}, "unsupported sample rate 12345 Hz"),
        ({"out_rate": 1}, "unsupported sample rate 1 Hz"),
        ({"in_channels": 0}, "channels must be 1..8"),
        ({"frame_bytes": 0}, "frame_bytes must be a positive int"),
        ({"frame_bytes": 641}, "frame_bytes must be even"),
        ({"quality": "ultra"}, "unknown resampler quality"),
    ],
)
def test_converter_rejects(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "in_rate": 48000,
        "in_channels": 2,
        "out_rate": 16000,
        "frame_bytes": 640,
        **kwargs,
    }
    with pytest.raises(CodecError, match=message):
        AudioConverter(**args)  # type: ignore[arg-type]


def test_converter_rejects_partial_input_frames() -> None:
    conv = AudioConverter(in_rate=48000, in_channels=2, out_rate=16000, frame_bytes=640)
    with pytest.raises(CodecError, match="multiple of 4 bytes, got 6"):
        conv.push(bytes(6))


def test_matching_format_only_chunks() -> None:
    conv = AudioConverter(in_rate=24000, in_channels=1, out_rate=24000, frame_bytes=4)
    assert conv.push(b"\x01\x00\x02\x00\x03\x00") == [b"\x01\x00\x02\x00"]
    assert conv.pending == 2
    assert conv.flush() == [b"\x03\x00\x00\x00"]
    assert conv.flush() == []
    assert conv.frame_bytes == 4


def test_same_rate_stereo_is_downmix_then_chunk() -> None:
    rng = np.random.default_rng(3)
    stereo = float32_to_pcm16(rng.uniform(-0.9, 0.9, 2 * 1000))
    conv = AudioConverter(in_rate=16000, in_channels=2, out_rate=16000, frame_bytes=320)
    frames = conv.push(stereo) + conv.flush(pad=False)
    assert b"".join(frames) == downmix(stereo, 2)
    assert [len(f) for f in frames] == [320] * 6 + [80]


def test_converter_equals_downmix_then_resample() -> None:
    rng = np.random.default_rng(5)
    stereo = float32_to_pcm16(rng.uniform(-0.5, 0.5, 2 * 4410))
    conv = AudioConverter(in_rate=44100, in_channels=2, out_rate=24000, frame_bytes=960)
    frames = conv.push(stereo[:1000]) + conv.push(stereo[1000:]) + conv.flush(pad=False)
    r = Resampler(44100, 24000)
    assert b"".join(frames) == r.process(downmix(stereo, 2)) + r.flush()


def test_converter_flush_resets_for_next_stream() -> None:
    tone = float32_to_pcm16(0.3 * np.sin(np.arange(4800) * 0.05))
    conv = AudioConverter(in_rate=48000, in_channels=1, out_rate=8000, frame_bytes=160)
    first = conv.push(tone) + conv.flush()
    assert conv.pending == 0
    assert conv.push(tone) + conv.flush() == first
    # 4800 samples at 48 kHz are 800 at 8 kHz: exactly 10 frames of 80 samples.
    assert len(first) == 10


@settings(max_examples=30, deadline=None)
@given(
    in_rate=st.sampled_from(RATES),
    out_rate=st.sampled_from(RATES),
    in_channels=st.integers(1, 3),
    frame_samples=st.integers(1, 400),
    n_frames=st.integers(0, 4000),
    cuts=st.lists(st.integers(0, 4000), max_size=8),
    seed=st.integers(0, 2**32 - 1),
)
def test_converter_frames_are_exact_and_length_tracks_the_rate(
    in_rate: int,
    out_rate: int,
    in_channels: int,
    frame_samples: int,
    n_frames: int,
    cuts: list[int],
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    data = float32_to_pcm16(rng.uniform(-0.5, 0.5, n_frames * in_channels))
    frame_bytes = 2 * frame_samples
    conv = AudioConverter(
        in_rate=in_rate, in_channels=in_channels, out_rate=out_rate, frame_bytes=frame_bytes
    )
    step = 2 * in_channels
    frames = [f for p in split(data, [c * step for c in cuts]) for f in conv.push(p)]
    frames += conv.flush(pad=True)
    assert all(len(f) == frame_bytes for f in frames)
    ratio = out_rate / in_rate
    expected_samples = n_frames * ratio
    # Padding adds less than one frame on top of the resampler's rounding.
    got_samples = len(frames) * frame_samples
    assert (
        expected_samples - (2 + ratio) <= got_samples < expected_samples + 2 + ratio + frame_samples
    )
