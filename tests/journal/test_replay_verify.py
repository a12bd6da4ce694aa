"""``journal replay`` and ``journal verify``: library calls, the pytest helpers and the CLI,
on journals the runtime wrote (the in-process scripted provider, capture "full") and on
journals written by hand to break one promise each."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import anyio.lowlevel
import msgspec
import numpy as np
import pytest

from antiphon.actors import Backoff, open_session
from antiphon.cli import main
from antiphon.cli._journal_debug import call_recording
from antiphon.events import ReplyEnded
from antiphon.journal import FileJournal, MemoryJournal, read_capture
from antiphon.journal._replay import replay_capture
from antiphon.journal._verify import verify_session
from antiphon.protocol import (
    ConnectionLost,
    ConnectionOpened,
    Event,
    GenerationEnded,
    GenerationEndReason,
    GenerationStarted,
    GenerationTextDelta,
    SessionClosed,
    SessionStarted,
    ToolCallFinished,
    ToolCallRequested,
    ToolResultDelivered,
    UserAudio,
    UserSpeechStarted,
)
from antiphon.testing import (
    Fault,
    ScriptedProvider,
    Trigger,
    assert_journal_replays,
    assert_journal_verifies,
)
from antiphon.testing._replay import translator_for
from antiphon.testing._translator import ScriptedTranslator

pytestmark = pytest.mark.anyio

FAST = Backoff(base_s=0.01, max_s=0.05)


def _frames(n: int) -> list[bytes]:
    rng = np.random.default_rng(5)
    return [rng.integers(-3000, 3000, 320, dtype=np.int16).tobytes() for _ in range(n)]


def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"sunny in {city}"


async def _scripted_call(journal: MemoryJournal | FileJournal) -> str:
    """A call with a reconnect mid-reply, journalled with full capture."""
    provider = ScriptedProvider(commit_every=8)
    provider.fault(Fault.drop(), at=Trigger.reply_audio(2))
    async with open_session(provider, journal=journal, backoff=FAST) as session:
        for frame in _frames(24):
            await session.send_audio(frame, sample_rate=16_000)
            await anyio.lowlevel.checkpoint()
        with anyio.fail_after(30):
            ended = 0
            async for event in session.events():
                ended += isinstance(event, ReplyEnded)
                if ended >= 3 and session.state.turns == 3:
                    break
        return session.session_id


async def test_a_recorded_call_replays_and_verifies() -> None:
    journal = MemoryJournal(capture="full")
    sid = await _scripted_call(journal)
    report = replay_capture(journal, sid, translator_for)
    assert report.ok, report.divergence
    assert report.frames > 10
    assert report.events > 10
    assert {f.epoch for f in read_capture(journal, sid)} == {1, 2}
    verified = verify_session(journal, sid)
    assert verified.ok, verified.violations
    assert verified.epochs == 2
    assert verified.user_frames == 24


class _ChangedDecoder(ScriptedTranslator):
    """The scripted translator with a deliberate change: from the ``at``-th received frame of
    epoch 1 on, assistant text comes out upper-cased."""

    def __init__(self, at: int, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.at = at
        self.seen = 0

    def decode(self, frame: str | bytes) -> list[Event]:
        events = super().decode(frame)
        self.seen += 1
        if self.seen - 1 < self.at:
            return events
        return [
            msgspec.structs.replace(e, text=e.text.upper())
            if isinstance(e, GenerationTextDelta)
            else e
            for e in events
        ]


async def test_a_changed_decoder_is_reported_at_the_frame_it_changes() -> None:
    journal = MemoryJournal(capture="full")
    sid = await _scripted_call(journal)
    received = [f for f in read_capture(journal, sid) if f.direction == "received"]
    events = list(journal.records(sid))
    # The first received frame of epoch 1 that was decoded into assistant text.
    target = next(
        f
        for f in received
        if f.epoch == 1
        and isinstance(events[f.seq].event, GenerationTextDelta)
        and events[f.seq].epoch == 1
    )
    base = ScriptedProvider().new_translator()

    def factory(provider: str) -> _ChangedDecoder:
        assert provider == "scripted"
        return _ChangedDecoder(target.index, capabilities=base.capabilities, limits=base.limits)

    report = replay_capture(journal, sid, factory)
    d = report.divergence
    assert d is not None
    assert (d.kind, d.epoch, d.frame, d.seq) == ("decode", 1, target.index, target.seq)
    recorded, produced = json.loads(d.recorded), json.loads(d.produced)
    assert produced["text"] == recorded["text"].upper() != recorded["text"]


async def test_cli_and_pytest_helpers_on_a_file_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = FileJournal(tmp_path, capture="full")
    await _scripted_call(journal)
    journal.close()
    assert_journal_replays(tmp_path)
    assert_journal_verifies(tmp_path)
    assert main(["journal", "replay", str(tmp_path)]) == 0
    assert "ok: no divergence" in capsys.readouterr().out
    assert main(["journal", "verify", str(tmp_path)]) == 0
    assert "ok: every promise kept" in capsys.readouterr().out


def test_replay_needs_a_full_capture() -> None:
    from antiphon.errors import JournalError

    journal = MemoryJournal()
    w = journal.writer("s")
    w.append(
        [SessionStarted(session_id="s", provider="scripted")],
        expected_seq=0,
        epoch=0,
        mono_ns=0,
        wall_ns=0,
    )
    with pytest.raises(JournalError, match="capture='full'"):
        replay_capture(journal, "s", translator_for)


def _write(journal: MemoryJournal, batches: list[tuple[int, list[Event]]]) -> str:
    w = journal.writer("bad")
    for i, (epoch, events) in enumerate(batches):
        w.append(events, expected_seq=w.next_seq, epoch=epoch, mono_ns=i, wall_ns=i)
    return "bad"


def test_verify_lists_every_broken_promise() -> None:
    journal = MemoryJournal()
    sid = _write(
        journal,
        [
            (0, [SessionStarted(session_id="bad", provider="scripted")]),
            (2, [ConnectionOpened(epoch=2)]),
            (2, [UserAudio(first_frame=0, frames=2, audio=b"\0" * 1280, sample_rate=16_000)]),
            (2, [UserAudio(first_frame=3, frames=1, audio=b"\0" * 640, sample_rate=16_000)]),
            (2, [GenerationStarted(generation_id="g1")]),
            (2, [ToolCallRequested(call_id="c1", name="t")]),
            (2, [ToolCallFinished(call_id="c1", name="t", output="x")]),
            (2, [ToolResultDelivered(call_id="c1", epoch=2)]),
            (2, [ToolResultDelivered(call_id="c1", epoch=2)]),
            (2, [ToolCallRequested(call_id="c2", name="t")]),
            (2, [ConnectionLost(epoch=2, cause="closed:1006", recoverable=True)]),
            (2, [UserSpeechStarted(item_id="late")]),
            (1, [ConnectionOpened(epoch=1)]),
        ],
    )
    report = verify_session(journal, sid)
    rules = sorted({v.rule for v in report.violations})
    assert rules == ["dead_epoch", "epoch", "generation", "tool_output", "user_audio"]
    messages = " | ".join(v.message for v in report.violations)
    assert "delivered 2 times" in messages
    assert "'c2' has no output" in messages
    assert "frames 2..2 skipped" in messages
    assert "'g1' started and never ended" in messages


def test_verify_cli_exits_1_on_a_violation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = FileJournal(tmp_path)
    w = journal.writer("call")
    events: list[Event] = [
        SessionStarted(session_id="call", provider="scripted"),
        ConnectionOpened(epoch=1),
        GenerationStarted(generation_id="g1"),
        ToolCallRequested(call_id="c1", name="t"),
        ToolCallFinished(call_id="c1", name="t", output="x"),
        GenerationEnded(generation_id="g1", reason=GenerationEndReason.TOOL_CALL),
    ]
    w.append(events, expected_seq=0, epoch=1, mono_ns=0, wall_ns=0)
    w.close()
    assert main(["journal", "verify", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "VIOLATION [tool_output]" in out
    assert "never delivered" in out


def test_call_recording_places_each_side_in_time() -> None:
    journal = MemoryJournal()
    w = journal.writer("s")
    second = 1_000_000_000
    user = (np.full(16_000, 1000, dtype="<i2")).tobytes()  # 1 s at 16 kHz
    w.append(
        [SessionStarted(session_id="s", provider="scripted")],
        expected_seq=0,
        epoch=0,
        mono_ns=0,
        wall_ns=0,
    )
    w.append(
        [UserAudio(first_frame=0, frames=50, audio=user, sample_rate=16_000)],
        expected_seq=1,
        epoch=1,
        mono_ns=0,
        wall_ns=0,
    )
    reply = (np.full(8_000, -2000, dtype="<i2")).tobytes()  # 0.5 s at 16 kHz, at t = 2 s
    from antiphon.protocol import GenerationAudioDelta

    w.append(
        [GenerationAudioDelta(generation_id="g", audio=reply, sample_rate=16_000)],
        expected_seq=2,
        epoch=1,
        mono_ns=2 * second,
        wall_ns=2 * second,
    )
    pcm, rate = call_recording(journal, "s")
    assert rate == 16_000
    stereo = np.frombuffer(pcm, dtype="<i2").reshape(-1, 2)
    assert len(stereo) == int(2.5 * rate)
    left, right = stereo[:, 0], stereo[:, 1]
    assert (left[:rate] == 1000).all()
    assert (left[rate:] == 0).all()
    assert (right[: 2 * rate] == 0).all()
    assert (right[2 * rate :] == -2000).all()


@pytest.mark.parametrize("mode", ["off", "metadata"])
async def test_capture_modes_of_a_session(mode: str) -> None:
    journal = MemoryJournal(capture=mode)  # type: ignore[arg-type]
    sid = await _scripted_call(journal)
    frames = read_capture(journal, sid)
    if mode == "off":
        assert frames == []
        assert journal.audio(sid, "wire") == (b"", 0)
        return
    assert {(f.epoch, f.direction) for f in frames} == {
        (1, "sent"),
        (1, "received"),
        (2, "sent"),
        (2, "received"),
    }
    assert all(f.payload is None for f in frames)
    assert journal.audio(sid, "wire-audio") == (b"", 0)
    for epoch in (1, 2):
        for direction in ("sent", "received"):
            indexes = [f.index for f in frames if (f.epoch, f.direction) == (epoch, direction)]
            assert indexes == list(range(len(indexes)))
    # Every user audio frame the app gave went out, some twice (the resend after the drop).
    sent_audio = sorted(
        {
            i
            for f in frames
            if f.audio_index >= 0
            for i in range(f.audio_index, f.audio_index + f.audio_frames)
        }
    )
    assert sent_audio == list(range(24))


class _CapturedSession:
    """A journalled session (started, epoch 1 open) with a metadata wire capture."""

    def __init__(self) -> None:
        from antiphon.journal import WireCapture

        self.journal = MemoryJournal()
        self.writer = w = self.journal.writer("s")
        self.capture = WireCapture(
            w, "metadata", mono_ns=lambda: 0, wall_ns=lambda: 0, next_seq=lambda: w.next_seq
        )
        self.add(SessionStarted(session_id="s", provider="scripted"), epoch=0)
        self.add(ConnectionOpened(epoch=1))

    def add(self, *events: Event, epoch: int = 1) -> None:
        w = self.writer
        w.append(list(events), expected_seq=w.next_seq, epoch=epoch, mono_ns=0, wall_ns=0)


def test_verify_finds_user_audio_lost_at_a_reconnect() -> None:
    from antiphon.protocol import UserAudioCommitted

    session = _CapturedSession()
    journal, capture, add = session.journal, session.capture, session.add
    # Ten 20 ms frames at 16 kHz, all sent on epoch 1 ...
    add(UserAudio(first_frame=0, frames=10, audio=bytes(6400), sample_rate=16_000))
    for i in range(10):
        capture.sent(1, '{"type":"append"}', audio_index=i)
    # ... whose safe point covers the first five (100 ms) before the connection is lost.
    add(UserAudioCommitted(audio_end_ms=100))
    add(ConnectionLost(epoch=1, cause="closed:1006", recoverable=True))
    add(ConnectionOpened(epoch=2), epoch=2)
    for i in (7, 8, 9):  # the resend should have started at frame 5
        capture.sent(2, '{"type":"append"}', audio_index=i)
    add(SessionClosed(), epoch=2)
    report = verify_session(journal, "s")
    (violation,) = report.violations
    assert violation.rule == "user_audio"
    assert "frames 5..6 were never sent" in violation.message


def test_verify_counts_every_frame_of_a_joined_message() -> None:
    from antiphon.protocol import UserAudioCommitted

    session = _CapturedSession()
    journal, capture, add = session.journal, session.capture, session.add
    add(UserAudio(first_frame=0, frames=10, audio=bytes(6400), sample_rate=16_000))
    # Frame 0 alone, 1..4 joined into one message, 5..9 joined and cut into two wire frames.
    capture.sent(1, '{"type":"append"}', audio_index=0)
    capture.sent(1, '{"type":"append"}', audio_index=1, audio_frames=4)
    add(UserAudioCommitted(audio_end_ms=100))  # covers frames 0..4: all sent before it
    capture.sent(1, '{"type":"append"}', audio_index=5, audio_frames=5)
    capture.sent(1, '{"type":"append"}', audio_index=5, audio_frames=5)
    add(ConnectionLost(epoch=1, cause="closed:1006", recoverable=True))
    add(ConnectionOpened(epoch=2), epoch=2)
    capture.sent(2, '{"type":"append"}', audio_index=5, audio_frames=5)
    add(SessionClosed(), epoch=2)
    assert verify_session(journal, "s").violations == ()
    frames = list(read_capture(journal, "s"))
    assert [f.audio_frames for f in frames] == [1, 4, 5, 5, 5]


async def test_export_audio_writes_the_call_as_one_stereo_wav(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import wave

    journal = FileJournal(tmp_path / "calls", capture="full")
    sid = await _scripted_call(journal)
    journal.close()
    assert main(["journal", "export-audio", str(tmp_path / "calls"), "--out", str(tmp_path)]) == 0
    assert "stereo" in capsys.readouterr().out
    with wave.open(str(tmp_path / f"{sid}-call.wav"), "rb") as wav:
        assert wav.getnchannels() == 2
        reader = FileJournal(tmp_path / "calls", create=False)
        user, user_rate = reader.audio(sid, "user")
        _, assistant_rate = reader.audio(sid, "assistant")
        rate = max(user_rate, assistant_rate)  # both sides at the higher rate
        assert wav.getframerate() == rate
        # The user's side is all there (placed in time, so the call is at least as long).
        assert wav.getnframes() >= len(user) // 2 * rate // user_rate


async def test_a_changed_reducer_is_reported_at_the_snapshot() -> None:
    from antiphon.protocol import InstructionsUpdated, SessionState

    journal = MemoryJournal(capture="full", snapshot_every=10)
    sid = await _scripted_call(journal)
    report = replay_capture(journal, sid, translator_for)
    assert report.ok
    assert report.snapshots > 0  # the fold was compared with the stored states
    # A state the current reducer would not compute, stored as a snapshot (as if an older
    # reducer had computed it).
    writer = journal.writer(sid)
    seq = writer.next_seq
    changed = InstructionsUpdated(instructions="be terse")
    writer.append(
        [changed] * 10,
        expected_seq=seq,
        epoch=2,
        mono_ns=0,
        wall_ns=0,
        state=SessionState(instructions="an older reducer's idea"),
    )
    writer.close()
    d = replay_capture(journal, sid, translator_for).divergence
    assert d is not None
    assert (d.kind, d.seq) == ("reducer", seq + 10)
    assert "an older reducer's idea" in d.recorded
    assert "be terse" in d.produced


async def test_open_session_overrides_the_journals_capture() -> None:
    journal = MemoryJournal()  # metadata by default
    provider = ScriptedProvider()
    async with open_session(provider, journal=journal, capture="full") as session:
        await session.send_audio(_frames(1)[0], sample_rate=16_000)
        sid = session.session_id
    frames = read_capture(journal, sid)
    assert frames
    assert all(f.payload is not None for f in frames)


@pytest.mark.parametrize(
    ("capture", "error"),
    [("everything", "InvalidArgument"), (3, "InvalidArgumentType")],
)
async def test_open_session_checks_capture(capture: object, error: str) -> None:
    from antiphon import errors

    with pytest.raises(getattr(errors, error), match="capture"):
        async with open_session(ScriptedProvider(), capture=capture):  # type: ignore[arg-type]
            pass
