"""transport-send: an idle sender sends each frame at once; frames that queued while it was
busy go out joined, as one ``AudioFrame`` of at most ``limits.max_chunk_ms``; the cursor, the
counters, the safe-point arithmetic and the wire capture count every frame exactly."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import anyio
import pytest

from antiphon.actors._outbox import Outbox
from antiphon.actors.audio_in import AudioLog
from antiphon.actors.transport_send import TransportSend
from antiphon.adapters import Capabilities, Connection, Frame, Limits, Translator
from antiphon.journal import MemoryJournal, WireCapture, read_capture
from antiphon.protocol import AudioFrame, Command, GenerateReply, SessionState
from antiphon.testing._translator import ScriptedTranslator

FRAME_BYTES = 640  # 20 ms at 16 kHz


class _Wire:
    """A connection whose ``send`` waits until the test takes the frame (an unbuffered
    in-memory stream): while the test does not read, the sender is busy."""

    def __init__(self) -> None:
        self.tx, self.rx = anyio.create_memory_object_stream[Frame](0)

    async def send(self, frame: Frame) -> None:
        await self.tx.send(frame)

    async def receive(self) -> Frame:
        raise NotImplementedError

    async def aclose(self) -> None:
        self.tx.close()

    async def sender_blocked(self) -> None:
        with anyio.fail_after(10):
            while self.rx.statistics().tasks_waiting_send == 0:
                await anyio.lowlevel.checkpoint()

    async def take(self) -> bytes:
        with anyio.fail_after(10):
            frame = await self.rx.receive()
        assert isinstance(frame, str)
        return base64.b64decode(json.loads(frame)["b64"])


def _frame(i: int) -> bytes:
    return bytes([i]) * FRAME_BYTES


def _sender(
    wire: Connection,
    log: AudioLog,
    max_chunk_ms: int = 100,
    capture: WireCapture | None = None,
    *,
    translator: Translator | None = None,
    now: Callable[[], float] = anyio.current_time,
) -> TransportSend:
    limits = Limits(input_sample_rate=16_000, frame_ms=20, max_chunk_ms=max_chunk_ms)

    def on_sent(command: Command, epoch: int, frames: int) -> None:
        pass

    def on_unencodable(command: Command, error: Exception) -> None:
        raise AssertionError(error)

    return TransportSend(
        epoch=1,
        connection=wire,
        translator=translator or ScriptedTranslator(capabilities=Capabilities(), limits=limits),
        log=log,
        outbox=Outbox(log.wake),
        start_index=0,
        frame_ms=20,
        high_water=3,  # frames 0..2 went out on an earlier connection
        state=SessionState,
        on_sent=on_sent,
        on_unencodable=on_unencodable,
        now=now,
        capture=capture,
    )


@pytest.mark.anyio
async def test_a_busy_sender_joins_the_frames_that_queued_up_to_the_limit() -> None:
    journal = MemoryJournal(capture="metadata")
    writer = journal.writer("s")
    capture = WireCapture(
        writer, "metadata", mono_ns=lambda: 0, wall_ns=lambda: 0, next_seq=lambda: 0
    )
    wire = _Wire()
    log = AudioLog(FRAME_BYTES, capacity=100)
    sender = _sender(wire, log, max_chunk_ms=100, capture=capture)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sender.run)
        log.append(_frame(0))
        assert await wire.take() == _frame(0)  # idle: sent at once, alone
        log.append(_frame(1))
        await wire.sender_blocked()  # frame 1 is on its way; the sender is busy
        for i in range(2, 9):
            log.append(_frame(i))
        assert await wire.take() == _frame(1)
        # Seven frames queued meanwhile: five (100 ms) in one message, then the other two.
        assert await wire.take() == b"".join(_frame(i) for i in range(2, 7))
        assert await wire.take() == _frame(7) + _frame(8)
        tg.cancel_scope.cancel()
    assert sender.cursor == 9
    assert sender.frames_sent == 9
    assert sender.audio_commands == 4
    assert sender.frames_resent == 3
    # A safe point of 60 ms covers three frames; one beyond what was sent covers no more.
    assert sender.safe_index(60) == 3
    assert sender.safe_index(10_000) == 9
    capture.flush()
    captured = [(f.audio_index, f.audio_frames) for f in read_capture(journal, "s")]
    assert captured == [(0, 1), (1, 1), (2, 5), (7, 2)]


@pytest.mark.anyio
async def test_a_limit_of_one_frame_sends_every_frame_alone() -> None:
    wire = _Wire()
    log = AudioLog(FRAME_BYTES, capacity=100)
    sender = _sender(wire, log, max_chunk_ms=20)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sender.run)
        log.append(_frame(0))
        await wire.sender_blocked()
        log.append(_frame(1))
        log.append(_frame(2))
        assert [await wire.take() for _ in range(3)] == [_frame(0), _frame(1), _frame(2)]
        tg.cancel_scope.cancel()
    assert (sender.frames_sent, sender.audio_commands) == (3, 3)


class _DirectWire:
    """A connection that can also send without waiting (``NonBlockingSend``), while it has
    ``room`` (messages it takes that way before its buffer is full; None: any number): it
    records every frame and which way it went out."""

    def __init__(self, room: int | None = None) -> None:
        self.room = room
        self.sent: list[tuple[str, str]] = []  # (how: "at once" | "send", the frame's kind)
        self.audio: list[bytes] = []
        self._arrived = anyio.Event()

    def _take(self, how: str, frame: Frame) -> None:
        assert isinstance(frame, str)
        message = json.loads(frame)
        self.sent.append((how, message["t"]))
        if message["t"] == "audio":
            self.audio.append(base64.b64decode(message["b64"]))
        self._arrived.set()

    def send_nowait(self, frame: Frame) -> bool:
        if self.room is not None:
            if self.room == 0:
                return False
            self.room -= 1
        self._take("at once", frame)
        return True

    async def send(self, frame: Frame) -> None:
        await anyio.lowlevel.checkpoint()
        self._take("send", frame)

    async def receive(self) -> Frame:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass

    async def until(self, count: int) -> None:
        with anyio.fail_after(10):
            while len(self.sent) < count:
                self._arrived = anyio.Event()
                await self._arrived.wait()


async def _waiting(log: AudioLog) -> None:
    """Until the sender waits on the log, taking frames directly."""
    with anyio.fail_after(10):
        while log._direct is None:
            await anyio.lowlevel.checkpoint()


@pytest.mark.anyio
async def test_an_idle_sender_sends_each_frame_in_the_appending_task() -> None:
    journal = MemoryJournal(capture="metadata")
    capture = WireCapture(
        journal.writer("s"), "metadata", mono_ns=lambda: 0, wall_ns=lambda: 0, next_seq=lambda: 0
    )
    wire = _DirectWire()
    log = AudioLog(FRAME_BYTES, capacity=100)
    sender = _sender(wire, log, max_chunk_ms=100, capture=capture)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sender.run)
        await _waiting(log)
        for i in range(5):
            log.append(_frame(i))
            # Out before append returned: no task switch, no wake-up of the sender.
            assert wire.audio[-1] == _frame(i)
        tg.cancel_scope.cancel()
    assert wire.sent == [("at once", "audio")] * 5
    assert (sender.cursor, sender.frames_sent, sender.frames_sent_at_once) == (5, 5, 5)
    assert (sender.audio_commands, sender.frames_resent) == (5, 3)
    capture.flush()
    assert [(f.audio_index, f.audio_frames) for f in read_capture(journal, "s")] == [
        (i, 1) for i in range(5)
    ]


@pytest.mark.anyio
async def test_a_queued_command_goes_before_the_frames_appended_after_it() -> None:
    wire = _DirectWire()
    log = AudioLog(FRAME_BYTES, capacity=100)
    sender = _sender(wire, log, max_chunk_ms=20)
    outbox = sender._outbox
    async with anyio.create_task_group() as tg:
        tg.start_soon(sender.run)
        await _waiting(log)
        log.append(_frame(0))
        outbox.put(GenerateReply())  # wakes the sender: frames now wait their turn
        log.append(_frame(1))
        log.append(_frame(2))
        await wire.until(4)
        await _waiting(log)
        log.append(_frame(3))  # idle again: at once
        tg.cancel_scope.cancel()
    assert wire.sent == [
        ("at once", "audio"),
        ("send", "reply"),
        ("send", "audio"),
        ("send", "audio"),
        ("at once", "audio"),
    ]
    assert wire.audio == [_frame(i) for i in range(4)]
    assert (sender.cursor, sender.frames_sent, sender.frames_sent_at_once) == (4, 4, 2)


@pytest.mark.anyio
async def test_a_frame_the_connection_cannot_take_at_once_is_sent_by_the_sender() -> None:
    wire = _DirectWire()
    log = AudioLog(FRAME_BYTES, capacity=100)
    sender = _sender(wire, log, max_chunk_ms=20)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sender.run)
        await _waiting(log)
        wire.room = 0  # its buffer is full, say
        log.append(_frame(0))
        assert wire.sent == []  # nothing was done in the appending task
        await wire.until(1)
        wire.room = None
        await _waiting(log)
        sender.stop_sending_at_once()  # being stopped: nothing more at once
        log.append(_frame(1))
        assert len(wire.sent) == 1
        tg.cancel_scope.cancel()
    assert wire.sent[0] == ("send", "audio")
    assert sender.frames_sent_at_once == 0


@pytest.mark.anyio
async def test_frames_sent_at_once_keep_a_keep_alive_from_going_out() -> None:
    wire = _DirectWire()
    log = AudioLog(FRAME_BYTES, capacity=100)
    clock = [0.0]
    limits = Limits(input_sample_rate=16_000, frame_ms=20, idle_timeout_s=10.0)
    translator = ScriptedTranslator(capabilities=Capabilities(), limits=limits)
    sender = _sender(wire, log, translator=translator, now=lambda: clock[0])
    async with anyio.create_task_group() as tg:
        tg.start_soon(sender.run)
        await _waiting(log)
        clock[0] = 4.0
        log.append(_frame(0))
        assert sender.keepalive.last_sent_at == 4.0  # the timer heard of it
        tg.cancel_scope.cancel()
    assert wire.sent == [("at once", "audio")]


@pytest.mark.anyio
async def test_frames_appended_together_go_out_together_up_to_the_limit() -> None:
    wire = _DirectWire()
    log = AudioLog(FRAME_BYTES, capacity=100)
    sender = _sender(wire, log, max_chunk_ms=100)  # 5 frames a message at most
    async with anyio.create_task_group() as tg:
        tg.start_soon(sender.run)
        await _waiting(log)
        for i in range(7):  # one app chunk of 140 ms, cut into 7 frames
            log.append(_frame(i), offer=False)
        assert wire.sent == []  # nothing until the chunk is complete
        log.offer()
        assert wire.audio == [b"".join(_frame(i) for i in range(5)), _frame(5) + _frame(6)]
        tg.cancel_scope.cancel()
    assert wire.sent == [("at once", "audio")] * 2
    assert (sender.cursor, sender.frames_sent, sender.frames_sent_at_once) == (7, 7, 7)
    assert (sender.audio_commands, sender.frames_resent) == (2, 3)


@pytest.mark.anyio
async def test_a_chunk_the_connection_takes_only_in_part_is_finished_by_the_sender() -> None:
    wire = _DirectWire(room=1)
    log = AudioLog(FRAME_BYTES, capacity=100)
    sender = _sender(wire, log, max_chunk_ms=40)  # 2 frames a message
    async with anyio.create_task_group() as tg:
        tg.start_soon(sender.run)
        await _waiting(log)
        for i in range(5):
            log.append(_frame(i), offer=False)
        log.offer()
        await wire.until(3)
        tg.cancel_scope.cancel()
    assert wire.sent == [("at once", "audio"), ("send", "audio"), ("send", "audio")]
    assert wire.audio == [_frame(0) + _frame(1), _frame(2) + _frame(3), _frame(4)]
    assert (sender.cursor, sender.frames_sent, sender.frames_sent_at_once) == (5, 5, 2)


class _SplittingTranslator(ScriptedTranslator):
    """Sends each ``AudioFrame`` as two messages, one per half, and counts the audio it
    encoded, as translators that count what they sent (Gemini, Phonic) do."""

    def __init__(self) -> None:
        super().__init__(
            capabilities=Capabilities(),
            limits=Limits(input_sample_rate=16_000, frame_ms=20, max_chunk_ms=20),
        )
        self.encoded_bytes = 0

    def encode(self, command: Command, state: SessionState) -> list[Frame]:
        if isinstance(command, AudioFrame):
            self.encoded_bytes += len(command.pcm)
            half = len(command.pcm) // 2
            return [
                *super().encode(AudioFrame(pcm=command.pcm[:half], index=command.index), state),
                *super().encode(AudioFrame(pcm=command.pcm[half:], index=command.index), state),
            ]
        return super().encode(command, state)


@pytest.mark.anyio
async def test_audio_encoded_at_once_is_sent_as_encoded_never_encoded_twice() -> None:
    wire = _DirectWire(room=1)
    log = AudioLog(FRAME_BYTES, capacity=100)
    translator = _SplittingTranslator()
    sender = _sender(wire, log, translator=translator)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sender.run)
        await _waiting(log)
        log.append(_frame(1))  # encoded at once; its second half does not fit
        log.append(_frame(2))  # the sender was woken: it sends this one itself
        await wire.until(4)
        tg.cancel_scope.cancel()
    half = FRAME_BYTES // 2
    assert wire.audio == [
        bytes([1]) * half,
        bytes([1]) * half,
        bytes([2]) * half,
        bytes([2]) * half,
    ]
    assert [how for how, _ in wire.sent] == ["at once", "send", "send", "send"]
    assert translator.encoded_bytes == 2 * FRAME_BYTES  # each frame counted once
    assert (sender.cursor, sender.frames_sent, sender.frames_sent_at_once) == (2, 2, 0)
