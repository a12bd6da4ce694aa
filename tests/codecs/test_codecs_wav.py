from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from antiphon.codecs import WavAudio, read_wav, wav_bytes, write_wav
from antiphon.errors import CodecError


def stdlib_wav(pcm: bytes, rate: int, channels: int, width: int = 2) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return buffer.getvalue()


def riff(fmt_tag: int, channels: int, rate: int, bits: int, data: bytes) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


PCM = struct.pack("<6h", 0, 1, -1, 32767, -32768, 1234)


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (48000, 2), (8000, 3), (96000, 1)])
def test_write_then_read_round_trip(tmp_path: Path, rate: int, channels: int) -> None:
    pcm = PCM[: len(PCM) // (2 * channels) * 2 * channels]
    path = tmp_path / "a.wav"
    write_wav(path, pcm, rate, channels)
    assert read_wav(path) == WavAudio(pcm=pcm, sample_rate=rate, channels=channels)
    assert read_wav(str(path)) == read_wav(path)
    assert path.read_bytes() == wav_bytes(pcm, rate, channels)


def test_wav_bytes_is_a_standard_wav_file() -> None:
    data = wav_bytes(PCM, 24000)
    assert data == stdlib_wav(PCM, 24000, 1)
    assert data[:4] == b"RIFF"
    assert data[8:12] == b"WAVE"
    assert len(data) == 44 + len(PCM)
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24000)
        assert wav.readframes(100) == PCM


def test_read_from_file_object() -> None:
    audio = read_wav(io.BytesIO(wav_bytes(PCM, 16000, 2)))
    assert audio == WavAudio(pcm=PCM, sample_rate=16000, channels=2)
    assert audio.duration_ms == pytest.approx(3 / 16000 * 1000)


def test_wav_audio_repr_is_short() -> None:
    audio = WavAudio(pcm=bytes(32000), sample_rate=16000, channels=1)
    assert repr(audio) == "WavAudio(<32000 bytes>, sample_rate=16000, channels=1)"
    assert audio.duration_ms == 1000.0


@pytest.mark.parametrize(("width", "bits"), [(1, 8), (3, 24), (4, 32)])
def test_read_rejects_other_widths(tmp_path: Path, width: int, bits: int) -> None:
    path = tmp_path / "w.wav"
    path.write_bytes(stdlib_wav(bytes(width * 4), 16000, 1, width))
    with pytest.raises(CodecError, match=f"only 16-bit PCM WAV is supported.*{bits}-bit"):
        read_wav(path)


def test_read_rejects_float_wav() -> None:
    data = riff(3, 1, 16000, 32, bytes(16))  # WAVE_FORMAT_IEEE_FLOAT
    with pytest.raises(CodecError, match="not a 16-bit PCM WAV file"):
        read_wav(io.BytesIO(data))


@pytest.mark.parametrize(
    "data", [b"", b"RIFF", b"not a wav file at all, just text", b"RIFF\x00\x00\x00\x00WAVX"]
)
def test_read_rejects_non_wav(data: bytes) -> None:
    with pytest.raises(CodecError, match="not a 16-bit PCM WAV file"):
        read_wav(io.BytesIO(data))


def test_read_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.wav"
    path.write_bytes(b"junk")
    with pytest.raises(CodecError, match=r"junk\.wav: not a 16-bit PCM WAV file"):
        read_wav(path)


def test_read_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_wav(tmp_path / "missing.wav")


def test_read_drops_a_truncated_trailing_frame() -> None:
    # A file cut short mid-frame (its header still promising 3 frames) keeps whole frames.
    data = wav_bytes(PCM, 16000, 2)[: 44 + 10]
    assert read_wav(io.BytesIO(data)).pcm == PCM[:8]


@pytest.mark.parametrize(
    ("pcm", "rate", "channels", "message"),
    [
        (b"\x00", 16000, 1, "even number of bytes, got 1"),
        (bytes(6), 16000, 2, "multiple of 4 bytes, got 6"),
        (bytes(4), 16000, 0, "channels must be 1..8"),
        (bytes(4), 0, 1, "sample rate must be a positive int"),
        (bytes(4), 16000.0, 1, "sample rate must be a positive int"),
    ],
)
def test_write_rejects_bad_arguments(
    tmp_path: Path, pcm: bytes, rate: int, channels: int, message: str
) -> None:
    path = tmp_path / "bad.wav"
    with pytest.raises(CodecError, match=message):
        write_wav(path, pcm, rate, channels)
    assert not path.exists()
    with pytest.raises(CodecError, match=message):
        wav_bytes(pcm, rate, channels)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda ch: st.tuples(
            st.just(ch), st.binary(max_size=200).map(lambda b: b[: len(b) // (2 * ch) * 2 * ch])
        )
    ),
    st.integers(1, 192_000),
)
def test_wav_bytes_round_trip(channel_pcm: tuple[int, bytes], rate: int) -> None:
    channels, pcm = channel_pcm
    audio = read_wav(io.BytesIO(wav_bytes(pcm, rate, channels)))
    assert audio == WavAudio(pcm=pcm, sample_rate=rate, channels=channels)
