"""The audio log seen at another provider's rate (failover): exact frames, one stream."""

from __future__ import annotations

import numpy as np
import pytest

from antiphon.actors.audio_in import AudioLog, ResampledLog
from antiphon.codecs import Resampler


def log_of(n: int, frame_bytes: int, capacity: int | None = None) -> AudioLog:
    rng = np.random.default_rng(5)
    log = AudioLog(frame_bytes, capacity or n)
    for _ in range(n):
        log.append(rng.integers(-8000, 8000, frame_bytes // 2, dtype=np.int16).tobytes())
    return log


@pytest.mark.parametrize(("in_rate", "out_rate"), [(24_000, 16_000), (16_000, 24_000)])
def test_frames_are_exact_and_one_continuous_resampled_stream(in_rate: int, out_rate: int) -> None:
    frame_bytes = in_rate // 50 * 2  # 20 ms
    log = log_of(100, frame_bytes)
    view = ResampledLog(log, in_rate=in_rate, out_rate=out_rate)
    frames = [view.get(i) for i in range(100)]
    assert all(f is not None and len(f) == out_rate // 50 * 2 for f in frames)
    sent = b"".join(f for f in frames if f is not None)
    # The same audio resampled in one go: identical after the leading silence, so frame
    # edges add nothing (no clicks), only the filter's delay.
    whole = Resampler(in_rate, out_rate).process(b"".join(log.get(i) or b"" for i in range(100)))
    lead = len(sent) - len(sent.lstrip(b"\x00"))
    lead -= lead % 2
    assert sent[lead : lead + len(whole)] == whole[: len(sent) - lead]
    assert lead <= out_rate // 1000 * 2 * 80  # under 80 ms of silence ahead


def test_a_frame_read_again_is_the_same_and_evicted_frames_are_skipped() -> None:
    log = log_of(20, 960, capacity=10)  # frames 0-9 evicted
    view = ResampledLog(log, in_rate=24_000, out_rate=16_000)
    assert view.get(3) is None or log.base == 10
    first = view.get(10)
    assert first is not None
    assert view.get(10) == first
    assert view.get(19) is not None
    assert view.get(20) is None  # not there yet
    assert (view.base, view.end) == (log.base, log.end)
