"""Wire capture: redaction, audio cut out as spans and put back, the stored format."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from antiphon.errors import JournalError
from antiphon.journal import FileJournal, MemoryJournal, WireCapture, frame_payload, read_capture
from antiphon.journal._capture import FLUSH_BYTES, REDACTED, frame_kind, redact_text, scrub
from antiphon.protocol import (
    AudioSpan,
    Event,
    InputTranscriptDelta,
    UserAudioCleared,
    UserAudioCommitted,
)

AUDIO = bytes(range(256)) * 4  # 1 KiB: long enough to be cut out
B64 = base64.b64encode(AUDIO).decode()


def _capture(journal: MemoryJournal | FileJournal, mode: str = "full") -> tuple[WireCapture, str]:
    writer = journal.writer("s1")
    clock = iter(range(1_000, 10**9, 1_000))
    capture = WireCapture(
        writer,
        mode,  # type: ignore[arg-type]
        mono_ns=lambda: next(clock),
        wall_ns=lambda: 1_700_000_000_000_000_000,
        next_seq=lambda: writer.next_seq,
    )
    return capture, "s1"


@pytest.mark.parametrize(
    ("frame", "secret"),
    [
        ('{"type":"session.update","session":{"api_key":"sk-AAA111"}}', "sk-AAA111"),
        ('{"setup":{"Authorization":"Bearer tok-BBB222"}}', "tok-BBB222"),
        ('{"config":{"client_secret":{"value":"ek_CCC333"}}}', "ek_CCC333"),
        ('{"x":{"sessionToken":"ZZZ"},"access_token":"DDD444"}', "DDD444"),
        ('{"url":"wss://h/v1/realtime?key=EEE555&model=m"}', "EEE555"),
        ('{"text":"header Authorization: Bearer FFF666 sent"}', "FFF666"),
        ("not json api_key=GGG777 here", "GGG777"),
    ],
)
def test_credentials_are_redacted(frame: str, secret: str) -> None:
    payload, _ = scrub(frame)
    assert secret.encode() not in payload
    assert REDACTED.encode() in payload


def test_usage_fields_are_not_mistaken_for_secrets() -> None:
    frame = '{"usage":{"input_tokens":5,"output_tokens":7,"total_tokens":12},"key_count":1}'
    payload, cut = scrub(frame)
    assert json.loads(payload) == json.loads(frame)
    assert cut == []


def test_audio_is_cut_out_and_put_back_exactly() -> None:
    journal = MemoryJournal()
    capture, sid = _capture(journal)
    sent = json.dumps({"type": "input_audio_buffer.append", "audio": B64})
    received = json.dumps(
        {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": B64}}]}}}
    )
    capture.sent(1, sent, audio_index=0)
    capture.received(1, received)
    capture.received(1, AUDIO[:333])  # a binary frame that is not JSON: audio as a whole
    capture.flush()
    frames = read_capture(journal, sid)
    assert [f.direction for f in frames] == ["sent", "received", "received"]
    assert [f.index for f in frames] == [0, 0, 1]
    assert frames[0].audio_index == 0
    for f in frames:
        assert f.payload is not None
        assert B64.encode() not in f.payload
        assert len(f.audio) == 1
    assert json.loads(frame_payload(journal, sid, frames[0])) == json.loads(sent)
    assert json.loads(frame_payload(journal, sid, frames[1])) == json.loads(received)
    assert frame_payload(journal, sid, frames[2]) == AUDIO[:333]
    assert isinstance(frame_payload(journal, sid, frames[0]), str)
    assert frames[1].kind == "serverContent"


def test_short_base64_stays_inline() -> None:
    frame = json.dumps({"type": "x", "delta": base64.b64encode(b"hi").decode()})
    payload, cut = scrub(frame)
    assert cut == []
    assert json.loads(payload) == json.loads(frame)


def test_metadata_keeps_no_payload() -> None:
    journal = MemoryJournal()
    capture, sid = _capture(journal, "metadata")
    capture.received(2, json.dumps({"type": "response.output_audio.delta", "delta": B64}))
    capture.flush()
    (frame,) = read_capture(journal, sid)
    assert frame.payload is None
    assert frame.audio == ()
    assert (frame.epoch, frame.kind, frame.binary) == (2, "response.output_audio.delta", False)
    assert frame.size > len(B64)
    with pytest.raises(JournalError, match="capture='full'"):
        frame_payload(journal, sid, frame)
    assert journal.audio(sid, "wire-audio") == (b"", 0)


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        ('{"type":"response.done","response":{}}', "response.done"),
        ('{"setupComplete":{}}', "setupComplete"),
        ('{"event":{"audioOutput":{"content":"AAAA"}}}', "audioOutput"),
        (b'{"type":"audio_chunk"}', "audio_chunk"),
        (b"\x00\x01", ""),
    ],
)
def test_frame_kind(frame: str | bytes, kind: str) -> None:
    assert frame_kind(frame) == kind


def test_capture_survives_a_file_journal_reopen_and_a_cut_tail(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path)
    capture, sid = _capture(journal)
    for i in range(5):
        capture.sent(1, json.dumps({"type": "t", "n": i, "audio": B64}), audio_index=i)
    journal.close()
    wire = tmp_path / sid / "audio-wire.pcm"
    data = wire.read_bytes()
    wire.write_bytes(data[:-7])  # a crash mid-write: the last frame is cut short
    reopened = FileJournal(tmp_path, create=False)
    frames = read_capture(reopened, sid)
    assert [f.audio_index for f in frames] == [0, 1, 2, 3]
    assert json.loads(frame_payload(reopened, sid, frames[3]))["audio"] == B64


def test_entries_are_written_together_and_audio_ones_before_the_next_safe_point() -> None:
    journal = MemoryJournal()
    writer = journal.writer("s1")
    capture = WireCapture(
        writer, "metadata", mono_ns=lambda: 0, wall_ns=lambda: 0, next_seq=lambda: writer.next_seq
    )
    writes: list[int] = []
    store = capture._write_audio

    def counted(stream: str, data: bytes, rate: int) -> AudioSpan:
        writes.append(len(data))
        return store(stream, data, rate)

    def append(event: Event) -> None:
        writer.append([event], expected_seq=writer.next_seq, epoch=1, mono_ns=0, wall_ns=0)

    capture._write_audio = counted
    for i in range(3):
        capture.sent(1, json.dumps({"type": "input_audio_buffer.append", "n": i}), audio_index=i)
    capture.received(1, '{"type":"response.output_audio.delta"}')
    append(InputTranscriptDelta(item_id="u1", text="hi"))
    assert read_capture(journal, "s1") == []  # collected: nothing needs them before this record
    append(UserAudioCommitted(item_id="u1", audio_end_ms=60))
    # Written before the safe point, in one write: verify relates it to the frames sent before.
    assert [f.audio_index for f in read_capture(journal, "s1")] == [0, 1, 2, -1]
    assert (len(writes), capture.frames) == (1, 4)
    # Frames without user audio need not precede even a safe point: they wait for more.
    capture.received(1, '{"type":"response.output_audio.delta"}')
    append(UserAudioCleared())
    assert len(read_capture(journal, "s1")) == 4
    # A long stretch without safe points is written in pieces of FLUSH_BYTES.
    frame = json.dumps({"type": "input_audio_buffer.append", "audio": "x" * 64})
    n = 0
    while len(writes) < 2:
        capture.sent(1, frame, audio_index=3 + n)
        n += 1
    assert writes[1] >= FLUSH_BYTES
    capture.sent(1, frame, audio_index=3 + n)
    writer.close()  # writes the rest
    assert len(read_capture(journal, "s1")) == 6 + n


def test_a_capture_that_cannot_be_written_counts_its_frames_and_stops() -> None:
    journal = MemoryJournal()
    writer = journal.writer("s1")
    capture = WireCapture(
        writer, "metadata", mono_ns=lambda: 0, wall_ns=lambda: 0, next_seq=lambda: writer.next_seq
    )

    def refuse(stream: str, data: bytes, rate: int) -> AudioSpan:
        raise JournalError("disk full")

    capture._write_audio = refuse
    capture.sent(1, '{"type":"a"}')
    capture.received(1, '{"type":"b"}')
    capture.flush()
    capture.sent(1, '{"type":"c"}')  # capturing stopped
    capture.flush()
    assert (capture.frames, capture.errors) == (0, 2)


def test_capture_mode_is_checked() -> None:
    with pytest.raises(JournalError, match="capture must be one of"):
        MemoryJournal(capture="everything")  # type: ignore[arg-type]
    assert MemoryJournal().capture == "metadata"
    assert MemoryJournal().writer("s").capture == "metadata"


def test_redact_text_keeps_the_url() -> None:
    assert redact_text("GET https://x.io/a?key=1") == f"GET https://x.io/a?{REDACTED}"
