"""audio-in's part of ``clear_audio``: the audio log forgets what was not committed, without
renumbering a frame or leaving a sender's cursor past the log's end."""

from __future__ import annotations

from antiphon.actors.audio_in import AudioIn, AudioLog
from antiphon.protocol import UserAudio

FRAME = 640  # 20 ms at 16 kHz


def frame(k: int) -> bytes:
    return bytes([k % 256]) * FRAME


def test_truncate_drops_the_tail_and_the_next_frame_takes_its_index() -> None:
    log = AudioLog(FRAME, capacity=100)
    for k in range(6):
        log.append(frame(k))
    log.mark_safe(2)
    assert log.truncate(4) == 2
    assert (log.base, log.end) == (2, 4)
    assert log.get(3) == frame(3)
    assert log.get(4) is None
    assert log.append(frame(9)) == 4
    # Never below what is kept: the safe frames are gone already, nothing else goes.
    assert log.truncate(0) == 3
    assert (log.base, log.end) == (2, 2)


def audio_in(records: list[UserAudio]) -> AudioIn:
    return AudioIn(out_rate=16_000, frame_ms=20, resend_window_s=10.0, record=records.append)


def test_clear_drops_unsent_frames_and_forgets_the_sent_ones() -> None:
    records: list[UserAudio] = []
    a = audio_in(records)
    a.push(b"".join(frame(k) for k in range(8)) + b"\x01\x00" * 10, 16_000, 1)
    assert a.log.end == 8
    # Frames 0-2 went out, frame 3 may be in the sender's hands; 4-7 and the converter's
    # partial frame were never sent.
    assert a.clear(sent_end=3, in_flight=1) == 4
    assert (a.log.base, a.log.end) == (3, 4)  # 0-2 are not re-sent by a reconnect
    assert a.log.resend_start() == 3
    a.push(frame(20), 16_000, 1)
    assert a.log.get(4) == frame(20)  # no partial frame was joined to it
    a.flush_record()
    # The journal's record holds each index once: the dropped frames were never recorded.
    spans = [(r.first_frame, r.frames) for r in records]
    assert spans == [(0, 5)]
    assert b"".join(r.audio for r in records) == b"".join(frame(k) for k in (0, 1, 2, 3, 20))


def test_frames_already_journalled_are_kept() -> None:
    records: list[UserAudio] = []
    a = audio_in(records)
    a.push(b"".join(frame(k) for k in range(12)), 16_000, 1)  # 10 frames make a record
    assert [(r.first_frame, r.frames) for r in records] == [(0, 10)]
    assert a.clear(sent_end=2, in_flight=1) == 2  # 10 and 11 only
    assert (a.log.base, a.log.end) == (2, 10)
