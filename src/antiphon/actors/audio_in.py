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
from typing import Protocol

import anyio

from ..codecs import AudioConverter, Resampler, pcm_frame_bytes
from ..protocol import SendAudio, UserAudio
from ._actor import Actor

# 64 chunks: an app sends 10-100 ms chunks, so this is 0.6-6 s of audio queued before
# send_audio applies back-pressure; conversion runs far faster than real time, so it only
# fills when the event loop is starved.
MAILBOX_SIZE = 64
# Coalesce the journal's record of user audio into ~200 ms spans: 5 records a second instead
# of 50, while a crash loses at most that much of the *record* (the audio itself was sent).
JOURNAL_SPAN_MS = 200


class FrameSource(Protocol):
    """What a sender reads user audio from: the audio log, or a view of it at another rate
    (:class:`ResampledLog`)."""

    @property
    def base(self) -> int: ...

    @property
    def end(self) -> int: ...

    def get(self, index: int) -> bytes | None: ...

    async def wait_beyond(
        self, index: int, direct: Callable[[int], bool] | None = None
    ) -> None: ...


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
        self._direct: Callable[[int], bool] | None = None  # the waiting sender's
        self._listeners: list[Callable[[], None]] = []
        self.on_settled: Callable[[int], None] | None = None  # told each new safe point

    @property
    def end(self) -> int:
        """Index the next appended frame gets."""
        return self.base + len(self._frames)

    def append(self, frame: bytes, *, offer: bool = True) -> int:
        """Add ``frame``; returns its index. ``offer=False`` leaves the sender to a later
        :meth:`offer` (one for all the frames of an app chunk)."""
        index = self.end
        self._frames.append(frame)
        if len(self._frames) > self.capacity:
            self._frames.popleft()
            self.base += 1
            self.evicted += 1
        if offer:
            self.offer()
        return index

    def offer(self) -> None:
        """New frames are in: offer them to the waiting sender, which sends them at once, or
        wake it. Not offered once it was woken (a command is queued for it, or frames it did
        not take: order matters)."""
        direct = self._direct
        if direct is None or self._wake.is_set() or not direct(self.end):
            self._wake.set()

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
        if self.on_settled is not None:
            self.on_settled(index)

    def restore(self, first: int, frames: list[bytes]) -> None:
        """Start an empty log at index ``first`` (a session resumed from its journal), holding
        ``frames`` from there on: the ones not known to be settled, to be sent again. At
        most ``capacity`` are kept (the newest)."""
        if self._frames or self.base:
            raise RuntimeError("only an empty audio log can be restored")
        keep = frames[-self.capacity :] if frames else []
        self.base = self.safe = first + len(frames) - len(keep)
        self.evicted = len(frames) - len(keep)
        self._frames.extend(keep)

    def truncate(self, index: int) -> int:
        """Drop the frames from ``index`` on (never below ``base``); returns how many. The
        next frame appended takes the first dropped index: frames are never renumbered, so a
        caller must not cut below what a sender has read."""
        index = max(index, self.base)
        dropped = 0
        while self.end > index:
            self._frames.pop()
            dropped += 1
        return dropped

    def resend_start(self) -> int:
        """Where a new connection starts sending: the oldest frame not known to be safe."""
        return max(self.safe, self.base)

    async def wait_beyond(self, index: int, direct: Callable[[int], bool] | None = None) -> None:
        """Return once a frame at ``index`` or later exists (or when woken).

        One sender waits at a time. With ``direct``, frames appended meanwhile are first
        offered to it, in the appending task, as ``direct(end)``: the frames from ``index`` up
        to ``end`` are in. When it returns True it took them all (sent them), and the waiter
        is not woken for them.
        """
        if index < self.end:
            return
        self._wake = wake = anyio.Event()
        self._direct = direct
        try:
            await wake.wait()
        finally:
            self._direct = None

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
        on_settled: Called with the new safe point (a frame index) each time it advances,
            for the journal (sync).
    """

    def __init__(
        self,
        *,
        out_rate: int,
        frame_ms: int,
        resend_window_s: float,
        record: Callable[[UserAudio], None],
        on_overrun: Callable[[int], None] | None = None,
        on_settled: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__("audio-in", mailbox_size=MAILBOX_SIZE)
        self.out_rate = out_rate
        self.frame_ms = frame_ms
        self.frame_bytes = pcm_frame_bytes(frame_ms, out_rate)
        capacity = math.ceil(resend_window_s * 1000 / frame_ms)
        self.log = AudioLog(self.frame_bytes, capacity)
        self.log.on_settled = on_settled
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
        self._append_all(self._converter.push(pcm))

    def _append_all(self, frames: list[bytes]) -> None:
        for frame in frames:
            self._append(frame)
        if frames:
            # All of them at once: a waiting sender sends them as one message (up to the
            # provider's chunk limit), as the app handed them over.
            self.log.offer()

    def _append(self, frame: bytes) -> None:
        index = self.log.append(frame, offer=False)
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
            self._append_all(self._converter.flush(pad=pad))

    def flush(self) -> None:
        """End of input: emit the converter's tail (zero-padded) and the journal record."""
        self._flush_converter(pad=True)
        self.flush_record()

    def resume(self, *, settled: int, frames: list[bytes], next_index: int) -> None:
        """Continue a journalled session: the log starts where the journal left off, holding
        ``frames`` (the journalled frames from ``settled`` on) to send again. Frames that do
        not reach ``next_index`` without a gap are not used (the next frame still takes
        ``next_index``: an index is never reused)."""
        if frames and settled + len(frames) == next_index:
            self.log.restore(settled, frames)
        else:
            self.log.restore(next_index, [])

    def clear(self, *, sent_end: int, in_flight: int) -> int:
        """Discard the user audio not sent yet (``Session.clear_audio``); returns the frames
        dropped.

        Frames below ``sent_end`` went out: they are forgotten as if safe, so no reconnect
        re-sends them. Frames from ``sent_end + in_flight`` on are dropped, and so is the
        converter's partial frame; the ``in_flight`` frames after ``sent_end`` may be in the
        sender's hands already, and frames already journalled keep their indices (a record
        is never contradicted), so those are sent.
        """
        self._converter = None  # its partial frame goes, and the next chunk starts afresh
        self._format = (0, 0)
        log = self.log
        journalled = log.end - len(self._pending)
        cut = max(sent_end + in_flight, journalled)
        dropped = log.truncate(cut)
        if dropped and self._pending:
            del self._pending[max(0, cut - self._pending_first) :]
        log.mark_safe(sent_end)
        return dropped

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


class ResampledLog:
    """One connection's view of the audio log at another input rate (a failover provider
    whose rate is not the log's).

    Frames keep their log indices and durations, so the sender's cursor and the safe-point
    arithmetic are unchanged; each frame is resampled once, in index order, by one streaming
    resampler (no clicks at frame edges), and comes out exactly one frame long at the new
    rate, so a provider that counts the audio it was sent counts what the log holds. The
    resampler emits in blocks, not per frame: the stream starts with as much silence as it
    ever falls behind (found once, by running the same rates over silence, which takes the
    same blocks), so no frame is ever short; the tens of milliseconds still held when the
    connection ends are not sent.

    Args:
        log: The session's audio log.
        in_rate: The log's rate.
        out_rate: The connection's provider input rate.
    """

    _KEEP = 64  # converted frames kept, for a sender that reads a frame again
    _PROBE_FRAMES = 50  # 1 s of 20 ms frames: several whole cycles of the resampler's blocks

    def __init__(self, log: AudioLog, *, in_rate: int, out_rate: int) -> None:
        self._log = log
        self._resampler = Resampler(in_rate, out_rate)
        self.frame_bytes = log.frame_bytes * out_rate // in_rate
        self._lead = self._shortfall(log.frame_bytes, in_rate, out_rate)
        self._pending = b""  # resampled audio not yet cut into frames
        self._started = False
        self._converted: dict[int, bytes] = {}
        self._next = -1  # the index the resampler expects next (-1: none yet)

    @property
    def base(self) -> int:
        return self._log.base

    @property
    def end(self) -> int:
        return self._log.end

    async def wait_beyond(self, index: int, direct: Callable[[int], bool] | None = None) -> None:
        # Frames are resampled on the way out: the log's frames cannot be taken directly.
        await self._log.wait_beyond(index)

    def get(self, index: int) -> bytes | None:
        """The frame at ``index`` at the connection's rate, or None when it is not there."""
        done = self._converted.get(index)
        if done is not None:
            return done
        if self._next < 0 or index < self._next:
            self._next = index
        while self._next <= index:
            pcm = self._log.get(self._next)
            if pcm is None:
                if self._next < self._log.base:  # evicted: continue from what is there
                    self._next = self._log.base
                    continue
                return None
            self._converted[self._next] = self._cut(self._resampler.process(pcm))
            self._next += 1
        for stale in [i for i in self._converted if i < index - self._KEEP]:
            del self._converted[stale]
        return self._converted.get(index)

    def _shortfall(self, frame_bytes: int, in_rate: int, out_rate: int) -> int:
        """The most the resampler's output ever lags ``k`` whole frames (bytes, even)."""
        probe = Resampler(in_rate, out_rate)
        silence = bytes(frame_bytes)
        produced = worst = 0
        for k in range(1, self._PROBE_FRAMES + 1):
            produced += len(probe.process(silence))
            worst = max(worst, k * self.frame_bytes - produced)
        return worst + worst % 2

    def _cut(self, out: bytes) -> bytes:
        """The next frame, exactly ``frame_bytes`` long, of the resampled stream."""
        pending = self._pending + out
        if not self._started:
            self._started = True
            pending = bytes(self._lead) + pending
        size = self.frame_bytes
        if len(pending) < size:  # not expected (see _shortfall); silence rather than a gap
            pending = bytes(size - len(pending)) + pending
        self._pending = pending[size:]
        return pending[:size]
