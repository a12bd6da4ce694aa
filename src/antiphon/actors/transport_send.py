"""transport-send: moves commands and user audio onto one provider connection (one epoch).

How this works: one loop, so frames go out in a single order. Queued commands go first (they
are few and control the conversation), then user audio frames, read from the audio log by
index starting at the resend point the connection manager chose. The loop sleeps on the log
when there is nothing to send; a new frame or a queued command wakes it. Encoding is the
translator's pure ``encode``; the connection's ``send`` has its own deadline.

Coalescing: a sender that is idle sends each new frame at once (no added latency). When
several frames queued while it was busy (a send, a command, or an event loop running late), it
joins them, up to ``limits.max_chunk_ms``, into one ``AudioFrame`` whose ``index`` is its first
frame: one message instead of several, so batching appears under load by itself and the cost
per frame falls as the load rises. The log is read only through ``get``, ``base``, ``end`` and
``wait_beyond``, so a view of the log with that interface serves as well.

Keep-alive: a provider that resets a connection after ``limits.idle_timeout_s`` without input
(Nova) gets a ``KeepAlive`` command once nothing went out for a share of that limit
(:class:`KeepAliveTimer`, pure). The translator decides what carries it (Nova: a few frames
of silent audio); a provider without an idle limit never gets one, and a translator that has
nothing to send for it returns [].
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from ..adapters import Connection, Frame, NonBlockingSend, Translator
from ..journal import WireCapture
from ..protocol import AudioFrame, Command, KeepAlive, SessionState
from ._outbox import Outbox
from .audio_in import FrameSource

# A keep-alive goes out once nothing was sent for this share of the provider's idle limit:
# half the limit leaves room for a slow send or a busy event loop before the limit bites.
KEEPALIVE_SHARE = 0.5


class KeepAliveTimer:
    """When a connection needs a keep-alive. Pure: time is passed in.

    Args:
        idle_timeout_s: The provider's idle limit (``Limits.idle_timeout_s``); None (or not
            positive): the provider has none and a keep-alive is never due.
        now: When the connection last sent something (its setup).
    """

    def __init__(self, idle_timeout_s: float | None, *, now: float) -> None:
        self.interval = (
            idle_timeout_s * KEEPALIVE_SHARE
            if idle_timeout_s is not None and idle_timeout_s > 0
            else None
        )
        self.last_sent_at = now

    def on_sent(self, now: float) -> None:
        """Something went out to the provider at ``now``."""
        self.last_sent_at = now

    def next_deadline(self) -> float | None:
        """When a keep-alive is due unless something is sent before; None: never."""
        if self.interval is None:
            return None
        return self.last_sent_at + self.interval

    def due(self, now: float) -> bool:
        """A keep-alive should go out at ``now``."""
        deadline = self.next_deadline()
        return deadline is not None and now >= deadline


class TransportSend:
    """Sender of one epoch.

    Args:
        epoch: The connection's epoch.
        start_index: First audio frame to send (frames before it are safe or already taken).
        frame_ms: Duration of one audio frame (the provider's input frame).
        high_water: Frames below this were sent on an earlier connection: counted as re-sent.
        state: Returns the current session state (for ``encode``).
        on_sent: Called with (command, epoch, frame count) after a command went out.
        on_unencodable: Called with (command, error) when the translator cannot encode a
            command (e.g. an option value the provider does not take): the command is dropped
            and the connection carries on — an encode failure is not a connection failure.
        now: Monotonic seconds, the clock of the keep-alive timer (default: the event loop's).
        capture: The session's wire capture (None: the journal captures nothing).
    """

    def __init__(
        self,
        *,
        epoch: int,
        connection: Connection,
        translator: Translator,
        log: FrameSource,
        outbox: Outbox,
        start_index: int,
        frame_ms: int,
        high_water: int,
        state: Callable[[], SessionState],
        on_sent: Callable[[Command, int, int], None],
        on_unencodable: Callable[[Command, Exception], None],
        now: Callable[[], float] = anyio.current_time,
        capture: WireCapture | None = None,
    ) -> None:
        self.epoch = epoch
        self._conn = connection
        self._translator = translator
        self._capture = capture
        # Without capture the loop calls the connection's send directly: no work per frame.
        self._send: Callable[[Frame], Awaitable[None]] = (
            connection.send if capture is None else self._send_captured
        )
        self._send_audio: Callable[[Frame], Awaitable[None]] = (
            connection.send if capture is None else self._send_captured_audio
        )
        self._log = log
        self._outbox = outbox
        self.start_index = start_index
        self.cursor = start_index
        self.frame_ms = frame_ms
        self.high_water = high_water
        self._state = state
        self._on_sent = on_sent
        self._on_unencodable = on_unencodable
        self.frames_sent = 0
        self.frames_resent = 0
        self.frames_skipped = 0  # evicted from the log before they could be sent
        self.commands_sent = 0
        self._now = now
        self.keepalive = KeepAliveTimer(translator.limits.idle_timeout_s, now=0.0)
        self.keepalives_sent = 0
        # Frames joined into one AudioFrame at most (1: every frame its own message).
        self.max_frames = max(1, translator.limits.max_chunk_ms // frame_ms)
        self.audio_commands = 0  # AudioFrame commands encoded: frames_sent / this = batching
        self._batch = 1  # frames in the AudioFrame being sent (for the wire capture)
        # Frames sent from the appending task while this sender waited (see send_at_once).
        self.frames_sent_at_once = 0
        self._send_nowait: Callable[[Frame], bool] | None = (
            connection.send_nowait if isinstance(connection, NonBlockingSend) else None
        )
        self._direct = None if self._send_nowait is None else self.send_at_once
        # What send_at_once encoded but could not send: (messages, first frame, frame count).
        self._encoded: tuple[list[Frame], int, int] | None = None

    def safe_index(self, audio_end_ms: int | None) -> int:
        """The audio log index up to which a provider safe point covers user audio.

        A provider reports its safe point (``UserAudioCommitted.audio_end_ms``) in ms of *this
        connection's* input, which began at ``start_index``; None means everything sent so
        far. Never beyond what this sender actually sent, and for a provider whose safe
        points carry no position, ``limits.safe_point_margin_ms`` short of it: that audio may
        still have been in flight.
        """
        if audio_end_ms is None:
            index = self.cursor
        else:
            index = min(self.cursor, self.start_index + max(0, audio_end_ms) // self.frame_ms)
        margin_ms = self._translator.limits.safe_point_margin_ms
        if margin_ms > 0:
            index = max(self.start_index, index - margin_ms // self.frame_ms)
        return index

    async def run(self) -> None:
        log = self._log
        outbox = self._outbox
        encode = self._translator.encode
        send = self._send
        send_audio = self._send_audio
        now = self._now
        keepalive = self.keepalive
        max_frames = self.max_frames
        keepalive.on_sent(now())  # the handshake just went out
        # Whether anything went out since the keep-alive timer last heard of it. The timer only
        # matters once the sender goes idle, so it is told then, not once per audio frame.
        sent = False
        while True:
            if self._encoded is not None:
                # Encoded by send_at_once, which could not send it all: the translator has
                # counted it, so it goes out as it was encoded, before anything else.
                frames, cursor, count = self._encoded
                self._batch = count
                for frame in frames:
                    await send_audio(frame)
                self._encoded = None
                sent = True
                self._sent_audio(cursor, count)
                continue
            command = outbox.peek()
            if command is not None:
                try:
                    frames = encode(command, self._state())
                except Exception as exc:  # a translator's refusal, not the connection's
                    outbox.pop()
                    self._on_unencodable(command, exc)
                    continue
                for frame in frames:
                    await send(frame)
                sent = sent or bool(frames)
                outbox.pop()
                self.commands_sent += 1
                self._on_sent(command, self.epoch, len(frames))
                continue
            cursor = self.cursor
            pcm = log.get(cursor)
            if pcm is None:
                if cursor < log.base:
                    self.frames_skipped += log.base - cursor
                    self.cursor = log.base
                    continue
                if sent and keepalive.interval is not None:
                    keepalive.on_sent(now())
                sent = False
                deadline = keepalive.next_deadline()
                if deadline is None:
                    await log.wait_beyond(cursor, self._direct)
                    continue
                with anyio.move_on_after(max(0.0, deadline - now())):
                    await log.wait_beyond(cursor, self._direct)
                if keepalive.due(now()):
                    await self._keep_alive()
                continue
            # Frames that queued while this sender was busy: one message for all of them.
            pcm, count = self._joined(pcm, cursor, max_frames)
            self._batch = count
            for frame in encode(AudioFrame(pcm=pcm, index=cursor), self._state()):
                await send_audio(frame)
            sent = True
            self._sent_audio(cursor, count)

    def _joined(self, pcm: bytes, cursor: int, limit: int) -> tuple[bytes, int]:
        """``pcm`` (the frame at ``cursor``) joined with the frames after it that the log
        holds, ``limit`` frames at most: the audio of one ``AudioFrame``, and how many frames
        it is."""
        if limit <= 1:
            return pcm, 1
        parts = [pcm]
        get = self._log.get
        while len(parts) < limit:
            more = get(cursor + len(parts))
            if more is None:
                break
            parts.append(more)
        return (b"".join(parts) if len(parts) > 1 else pcm), len(parts)

    def _sent_audio(self, cursor: int, count: int) -> None:
        """The ``count`` frames from ``cursor`` went out (as one ``AudioFrame``)."""
        self.cursor = cursor + count
        self.frames_sent += count
        self.audio_commands += 1
        if cursor < self.high_water:
            self.frames_resent += min(count, self.high_water - cursor)

    def stop_sending_at_once(self) -> None:
        """Take no more frames in the appending task: this sender is being stopped, and
        nothing may go out on its connection once that was asked (its cursor is final)."""
        self._send_nowait = None

    def send_at_once(self, end: int) -> bool:
        """Send the frames just appended to the log (up to ``end``), in the appending task,
        while this sender waits idle for them: no wake-up and no task switch per frame.

        Offered by the log (``wait_beyond``'s ``direct``) only while this sender waits and
        nothing woke it (a queued command wakes it: commands go first). The frames are joined
        as the run loop joins frames that queued, up to ``limits.max_chunk_ms`` an
        ``AudioFrame``, and each one's messages go out while the connection sends them without
        waiting (:class:`~antiphon.adapters.NonBlockingSend`). Once the translator encoded an
        ``AudioFrame`` it has counted that audio (Gemini and Phonic count what they sent), so
        its messages go out exactly as encoded: the ones the connection did not take are left
        to the run loop, which sends them before anything else. Returns False when anything
        is left (the sender is woken for it), True when all went out. The cursor, counters,
        keep-alive timer and capture move exactly as in :meth:`run`.
        """
        send_nowait = self._send_nowait
        if send_nowait is None:
            return False
        log = self._log
        cursor = self.cursor
        while cursor < end:
            pcm = log.get(cursor)
            if pcm is None:
                return False  # evicted meanwhile: the run loop counts it as skipped
            pcm, count = self._joined(pcm, cursor, min(end - cursor, self.max_frames))
            try:
                frames = self._translator.encode(AudioFrame(pcm=pcm, index=cursor), self._state())
            except Exception:  # nothing was counted: the run loop meets it and reports it
                return False
            for taken, frame in enumerate(frames):
                try:
                    went = send_nowait(frame)
                except Exception:  # the run loop's send meets it, in its own task
                    went = False
                if not went:
                    self._encoded = (frames[taken:], cursor, count)
                    return False
                if self._capture is not None:
                    self._capture.sent(self.epoch, frame, audio_index=cursor, audio_frames=count)
            self._sent_audio(cursor, count)
            self.frames_sent_at_once += count
            if self.keepalive.interval is not None:
                self.keepalive.on_sent(self._now())
            cursor += count
        return True

    async def _send_captured(self, frame: Frame) -> None:
        await self._conn.send(frame)
        assert self._capture is not None
        self._capture.sent(self.epoch, frame)  # once it went out

    async def _send_captured_audio(self, frame: Frame) -> None:
        await self._conn.send(frame)
        assert self._capture is not None
        # The cursor moves on only after the frame's last wire frame went out.
        self._capture.sent(self.epoch, frame, audio_index=self.cursor, audio_frames=self._batch)

    async def _keep_alive(self) -> None:
        frames = self._translator.encode(KeepAlive(), self._state())
        for frame in frames:
            await self._send(frame)
        # Counted as a send even when the translator had nothing to send, so a provider
        # without a keep-alive is asked once per interval, not in a loop.
        self.keepalive.on_sent(self._now())
        if frames:
            self.keepalives_sent += 1
