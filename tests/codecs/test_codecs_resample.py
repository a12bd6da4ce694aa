from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from antiphon.codecs import QUALITIES, SUPPORTED_RATES, Resampler, float32_to_pcm16
from antiphon.errors import CodecError

RATES = sorted(SUPPORTED_RATES)


def sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def as_array(pcm: bytes, channels: int = 1) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64).reshape(-1, channels) / 32768


def peak_hz(signal: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1 / rate)[np.argmax(spectrum)])


def resample_all(resampler: Resampler, pcm: bytes) -> bytes:
    return resampler.process(pcm) + resampler.flush()


# --- construction ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"in_rate": 12345, "out_rate": 16000}, "unsupported sample rate 12345 Hz"),
        ({"in_rate": 16000, "out_rate": 96000}, "unsupported sample rate 96000 Hz"),
        ({"in_rate": 16000, "out_rate": 24000, "channels": 9}, "channels must be 1..8"),
        ({"in_rate": 16000, "out_rate": 24000, "channels": 0}, "channels must be 1..8"),
        ({"in_rate": 16000, "out_rate": 24000, "quality": "best"}, "unknown resampler quality"),
    ],
)
def test_constructor_rejects(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(CodecError, match=message):
        Resampler(**kwargs)  # type: ignore[arg-type]


def test_properties_and_repr() -> None:
    r = Resampler(48000, 16000, channels=2, quality="VHQ")
    assert (r.in_rate, r.out_rate, r.channels, r.passthrough) == (48000, 16000, 2, False)
    assert repr(r) == "Resampler(48000, 16000, channels=2, quality='VHQ')"


@pytest.mark.parametrize(
    ("channels", "data", "message"),
    [
        (1, b"\x00\x00\x00", "even number of bytes, got 3"),
        (2, bytes(6), "multiple of 4 bytes, got 6"),
    ],
)
def test_process_rejects_partial_frames(channels: int, data: bytes, message: str) -> None:
    r = Resampler(16000, 24000, channels=channels)
    with pytest.raises(CodecError, match=message):
        r.process(data)
    # The bad call left the stream usable.
    assert len(resample_all(r, bytes(320 * channels))) == 480 * channels


# --- passthrough ----------------------------------------------------------------------


@pytest.mark.parametrize("rate", RATES)
def test_same_rate_is_passthrough(rate: int) -> None:
    r = Resampler(rate, rate, channels=2)
    data = float32_to_pcm16(sine(440, rate, 0.01).repeat(2))
    assert r.passthrough
    assert r.process(data) == data
    assert r.flush() == b""
    assert r.delay_samples == 0.0
    with pytest.raises(CodecError, match="multiple of 4 bytes"):
        r.process(b"\x00\x00")


# --- it is a real resampler ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("in_rate", "out_rate", "freq"),
    [
        (48000, 16000, 1000.0),
        (44100, 24000, 3000.0),
        (8000, 44100, 440.0),
        (16000, 48000, 2500.0),
        (22050, 11025, 2000.0),
    ],
)
def test_sine_keeps_frequency_and_level(in_rate: int, out_rate: int, freq: float) -> None:
    data = float32_to_pcm16(sine(freq, in_rate, 0.5))
    out = as_array(resample_all(Resampler(in_rate, out_rate), data))[:, 0]
    bin_hz = out_rate / len(out)
    assert abs(peak_hz(out, out_rate) - freq) <= bin_hz
    # Away from the filter's start-up transient the level is unchanged (RMS of 0.5 sine).
    middle = out[len(out) // 4 : 3 * len(out) // 4]
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_downsampling_removes_content_above_the_new_nyquist() -> None:
    # 7 kHz cannot exist at 8 kHz; plain decimation would alias it to 1 kHz at full level.
    data = float32_to_pcm16(sine(7000, 48000, 0.5))
    out = as_array(resample_all(Resampler(48000, 8000), data))[:, 0]
    assert np.sqrt(np.mean(out**2)) < 0.01


def test_channels_are_resampled_independently() -> None:
    left, right = sine(500, 48000, 0.5), sine(1500, 48000, 0.5, amplitude=0.25)
    data = float32_to_pcm16(np.stack([left, right], axis=1))
    out = as_array(resample_all(Resampler(48000, 16000, channels=2), data), channels=2)
    assert out.shape == (8000, 2)
    assert abs(peak_hz(out[:, 0], 16000) - 500) <= 2
    assert abs(peak_hz(out[:, 1], 16000) - 1500) <= 2


def test_full_scale_input_clips_instead_of_wrapping() -> None:
    square = np.sign(sine(1000, 48000, 0.1)) * 1.0  # overshoots when band-limited
    out = np.frombuffer(resample_all(Resampler(48000, 16000), float32_to_pcm16(square)), "<i2")
    assert out.max() == 32767
    assert out.min() == -32768
    # A wrapped overshoot would put a full negative sample next to a positive peak.
    assert np.abs(np.diff(out.astype(np.int32))).max() < 65535


# --- stream behaviour ---------------------------------------------------------------------


def test_output_is_deterministic() -> None:
    rng = np.random.default_rng(7)
    data = float32_to_pcm16(rng.uniform(-0.5, 0.5, 4800))
    outs = {resample_all(Resampler(48000, 16000), data) for _ in range(3)}
    assert len(outs) == 1


def test_flush_resets_for_reuse() -> None:
    data = float32_to_pcm16(sine(440, 16000, 0.1))
    r = Resampler(16000, 24000)
    first = resample_all(r, data)
    assert r.delay_samples == 0.0
    assert resample_all(r, data) == first
    assert resample_all(Resampler(16000, 24000), data) == first


def test_delay_reports_held_samples() -> None:
    r = Resampler(16000, 48000)
    emitted = len(r.process(bytes(3200))) // 2
    assert r.delay_samples > 0
    assert emitted + len(r.flush()) // 2 == 4800


def test_empty_input() -> None:
    r = Resampler(16000, 8000)
    assert r.process(b"") == b""
    assert r.flush() == b""


@settings(max_examples=25, deadline=None)
@given(
    in_rate=st.sampled_from(RATES),
    out_rate=st.sampled_from(RATES),
    channels=st.integers(1, 2),
    n_frames=st.integers(0, 3000),
    cuts=st.lists(st.integers(0, 3000), max_size=8),
    seed=st.integers(0, 2**32 - 1),
)
def test_stream_length_and_split_independence(
    in_rate: int, out_rate: int, channels: int, n_frames: int, cuts: list[int], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    data = float32_to_pcm16(rng.uniform(-0.5, 0.5, n_frames * channels))
    frame = 2 * channels
    bounds = sorted({min(c, n_frames) * frame for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]

    split = Resampler(in_rate, out_rate, channels=channels)
    out = b"".join(split.process(p) for p in pieces) + split.flush()
    assert len(out) % frame == 0
    ratio = out_rate / in_rate
    assert abs(len(out) // frame - n_frames * ratio) <= 2 + ratio
    # The filter state carries across calls, so the split does not change a single sample.
    assert out == resample_all(Resampler(in_rate, out_rate, channels=channels), data)


def test_qualities() -> None:
    assert frozenset({"QQ", "LQ", "MQ", "HQ", "VHQ"}) == QUALITIES
    data = float32_to_pcm16(sine(1000, 48000, 0.2))
    for quality in sorted(QUALITIES):
        out = as_array(resample_all(Resampler(48000, 16000, quality=quality), data))[:, 0]
        assert abs(peak_hz(out, 16000) - 1000) <= 16000 / len(out)
