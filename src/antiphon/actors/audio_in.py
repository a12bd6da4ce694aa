"""audio-in: app audio in any PCM16 format -> provider-sized frames, kept until safe.

How this works: the app's chunks arrive in the mailbox; each is downmixed, resampled (one
``soxr`` stream per input format) and cut into frames of exactly the provider's frame size.
Frames go into the :class:`AudioLog`, numbered from 0 over the whole session. The transport's
sender reads the log by index, so a frame is never skipped and never sent twice on one
connection. Frames stay in the log until the provider reports a *safe point* (it has taken
the audio into the conversation); a new connection re-sends everything after the safe point.

Overrun policy: the log holds at most ``resend_window_s`` of audio. When a safe point does
not come in time (a provider that never commits, or a long outage), the oldest frames are
evicted and counted in ``frames_evicted`` — they can no longer be re-sent. The mailbox is
bounded too; ``send_audio`` waits while it is full (back-pressure on the app, never a drop).

audio-in is never restarted by a transport failure: the log survives reconnects. Nor by the
app's audio: ``Session.send_audio`` checks every chunk with the same codec checks the
converter applies (:mod:`._arguments`) before it is queued, so a queued chunk always converts.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable

import anyio

from ..codecs import AudioConverter, pcm_frame_bytes
from ..protocol import SendAudio, UserAudio
from ._actor import Actor

# 64 chunks: an app sends 10-100 ms chunks, so this is 0.6-6 s of audio queued before
# send_audio applies back-pressure; conversion runs far faster than real time, so it only
# fills when the event loop is starved.
MAILBOX_SIZE = 64
# Coalesce the journal's record of user audio into ~200 ms spans: 5 records a second instead
# of 50, while a crash loses at most that much of the *record* (the audio itself was sent).
JOURNAL_SPAN_MS = 200


class AudioLog:
    """Provider-format frames by session-wide index, kept from the last safe point on.

    Args:
        frame_bytes: Size of every frame.
        capacity: Frames kept at most (the resend window); older ones are evicted.
    """

    def __init__(self, frame_bytes: int, capacity: int) -> None:
        self.frame_bytes = frame_bytes
        self.capacity = max(1, capacity)
        self._frames: collections.deque[bytes] = collections.deque()
        self.base = 0  # index of _frames[0]
        self.safe = 0  # frames below this index are in the conversation
        self.evicted = 0
        self._wake = anyio.Event()
        self._listeners: list[Callable[[], None]] = []

    @property
    def end(self) -> int:
        """Index the next appended frame gets."""
        return self.base + len(self._frames)

    def append(self, frame: bytes) -> int:
        index = self.end
        self._frames.append(frame)
        if len(self._frames) > self.capacity:
            self._frames.popleft()
            self.base += 1
            self.evicted += 1
        self._wake.set()
        return index

    def get(self, index: int) -> bytes | None:
        """The frame at ``index``, or None when it is not there (yet, or any more)."""
        offset = index - self.base
        if 0 <= offset < len(self._frames):
            return self._frames[offset]
        return None

    def mark_safe(self, index: int) -> None:
        """Frames below ``index`` are in the conversation: forget them."""
        index = min(index, self.end)
        if index <= self.safe:
            return
        self.safe = index
        while self.base < index and self._frames:
            self._frames.popleft()
            self.base += 1

    def resend_start(self) -> int:
        """Where a new connection starts sending: the oldest frame not known to be safe."""
        return max(self.safe, self.base)

    async def wait_beyond(self, index: int) -> None:
        """Return once a frame at ``index`` or later exists (or when woken)."""
        if index < self.end:
            return
        self._wake = anyio.Event()
        await self._wake.wait()

    def wake(self) -> None:
        """Wake a waiting sender without a new frame (a command is queued for it)."""
        self._wake.set()


class AudioIn(Actor[SendAudio]):
    """The audio-in actor. See the module docstring.

    Args:
        out_rate: Provider input sample rate.
        frame_ms: Provider frame duration.
        resend_window_s: Audio kept for re-sending since the last safe point.
        record: Called with coalesced ``UserAudio`` events for the journal (sync).
        on_overrun: Called with the total of frames evicted so far when the resend window
            overflows: at its first eviction, then after every further second evicted.
    """

    def __init__(
        self,
        *,
        out_rate: int,
        frame_ms: int,
        resend_window_s: float,
        record: Callable[[UserAudio], None],
        on_overrun: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__("audio-in", mailbox_size=MAILBOX_SIZE)
        self.out_rate = out_rate
        self.frame_ms = frame_ms
        self.frame_bytes = pcm_frame_bytes(frame_ms, out_rate)
        capacity = math.ceil(resend_window_s * 1000 / frame_ms)
        self.log = AudioLog(self.frame_bytes, capacity)
        self._record = record
        self._on_overrun = on_overrun
        self._evicted_reported = 0
        self._frames_per_s = max(1, 1000 // frame_ms)
        self._converter: AudioConverter | None = None
        self._format: tuple[int, int] = (0, 0)
        self._pending: list[bytes] = []
        self._pending_first = 0
        self._span_frames = max(1, JOURNAL_SPAN_MS // frame_ms)
        self.frames_in = 0
        self.rejected_chunks = 0

    async def handle(self, message: SendAudio, epoch: int) -> None:
        self.push(message.pcm, message.sample_rate, message.channels)

    async def submit(self, message: SendAudio) -> None:
        """Take one app chunk. Fast path: conversion is synchronous and takes microseconds, so
        when nothing is queued ahead of it the chunk is converted right here, in the caller's
        task — same order, one task switch fewer per chunk. Otherwise it joins the mailbox
        behind the queued chunks."""
        if self.running and self.queued() == 0:
            self.push(message.pcm, message.sample_rate, message.channels)
            self.stats.handled += 1
            await anyio.lowlevel.checkpoint()
            return
        await self.send(message)

    def push(self, pcm: bytes, sample_rate: int, channels: int) -> None:
        """Convert one app chunk and append its frames to the log.

        Raises:
            CodecError: the chunk is not valid PCM16 in the stated format (the session checks
                chunks before they get here).
        """
        if (sample_rate, channels) != self._format or self._converter is None:
            # The old format's tail becomes one whole frame, zero-padded (under one frame of
            # silence): every frame in the log has the provider's exact size, which the
            # safe-point mapping (ms -> frame index) relies on.
            self._flush_converter(pad=True)
            self._converter = AudioConverter(
                in_rate=sample_rate,
                in_channels=channels,
                out_rate=self.out_rate,
                frame_bytes=self.frame_bytes,
            )
            self._format = (sample_rate, channels)
        for frame in self._converter.push(pcm):
            self._append(frame)

    def _append(self, frame: bytes) -> None:
        index = self.log.append(frame)
        self.frames_in += 1
        evicted = self.log.evicted
        if evicted != self._evicted_reported and (
            self._evicted_reported == 0 or evicted - self._evicted_reported >= self._frames_per_s
        ):
            self._evicted_reported = evicted
            if self._on_overrun is not None:
                self._on_overrun(evicted)
        if not self._pending:
            self._pending_first = index
        self._pending.append(frame)
        if len(self._pending) >= self._span_frames:
            self.flush_record()

    def _flush_converter(self, *, pad: bool) -> None:
        if self._converter is not None:
            for frame in self._converter.flush(pad=pad):
                self._append(frame)

    def flush(self) -> None:
        """End of input: emit the converter's tail (zero-padded) and the journal record."""
        self._flush_converter(pad=True)
        self.flush_record()

    def flush_record(self) -> None:
        if not self._pending:
            return
        audio = b"".join(self._pending)
        event = UserAudio(
            first_frame=self._pending_first,
            frames=len(self._pending),
            sample_rate=self.out_rate,
            audio=audio,
        )
        self._pending = []
        self._record(event)
