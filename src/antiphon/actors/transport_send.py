"""transport-send: moves commands and user audio onto one provider connection (one epoch).

How this works: one loop, so frames go out in a single order. Queued commands go first (they
are few and control the conversation), then user audio frames, read from the audio log by
index starting at the resend point the connection manager chose. The loop sleeps on the log
when there is nothing to send; a new frame or a queued command wakes it. Encoding is the
translator's pure ``encode``; the connection's ``send`` has its own deadline.
"""

from __future__ import annotations

from collections.abc import Callable

from ..adapters import Connection, Translator
from ..protocol import AudioFrame, Command, SessionState
from ._outbox import Outbox
from .audio_in import AudioLog


class TransportSend:
    """Sender of one epoch.

    Args:
        epoch: The connection's epoch.
        start_index: First audio frame to send (frames before it are safe or already taken).
        high_water: Frames below this were sent on an earlier connection: counted as re-sent.
        state: Returns the current session state (for ``encode``).
        on_sent: Called with (command, epoch, frame count) after a command went out.
    """

    def __init__(
        self,
        *,
        epoch: int,
        connection: Connection,
        translator: Translator,
        log: AudioLog,
        outbox: Outbox,
        start_index: int,
        high_water: int,
        state: Callable[[], SessionState],
        on_sent: Callable[[Command, int, int], None],
    ) -> None:
        self.epoch = epoch
        self._conn = connection
        self._translator = translator
        self._log = log
        self._outbox = outbox
        self.start_index = start_index
        self.cursor = start_index
        self.high_water = high_water
        self._state = state
        self._on_sent = on_sent
        self.frames_sent = 0
        self.frames_resent = 0
        self.frames_skipped = 0  # evicted from the log before they could be sent
        self.commands_sent = 0

    async def run(self) -> None:
        log = self._log
        outbox = self._outbox
        encode = self._translator.encode
        send = self._conn.send
        while True:
            command = outbox.peek()
            if command is not None:
                frames = encode(command, self._state())
                for frame in frames:
                    await send(frame)
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
                await log.wait_beyond(cursor)
                continue
            for frame in encode(AudioFrame(pcm=pcm, index=cursor), self._state()):
                await send(frame)
            self.cursor = cursor + 1
            self.frames_sent += 1
            if cursor < self.high_water:
                self.frames_resent += 1
