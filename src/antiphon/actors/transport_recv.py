"""transport-recv: reads one provider connection (one epoch) and decodes it.

Each frame goes through the translator's pure ``decode``; the events are handed to the
recorder's synchronous ``record`` tagged with this connection's epoch. Recording
inline (rather than through a queue) means that when this connection fails, every event it
delivered is already recorded — nothing of a dead epoch is still in flight when the
connection manager records the loss. A malformed frame is recorded as a recoverable
provider error and skipped: one bad frame never ends a session that can continue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import anyio

from ..adapters import Connection, Translator
from ..errors import ProtocolError
from ..journal import WireCapture
from ..protocol import Event, ProviderErrorEvent

MALFORMED_FRAME = "malformed_frame"
"""The code of the provider error recorded for a frame the translator could not decode."""


class TransportRecv:
    """Receiver of one epoch.

    Args:
        deliver: ``deliver(events, epoch)`` records events (the tracker's ``record``).
        now: Clock reading, for the stall watchdog's ``last_frame_at``.
        capture: The session's wire capture (None: the journal captures nothing).
    """

    def __init__(
        self,
        *,
        epoch: int,
        connection: Connection,
        translator: Translator,
        deliver: Callable[[Sequence[Event], int], None],
        now: Callable[[], float],
        capture: WireCapture | None = None,
    ) -> None:
        self.epoch = epoch
        self._conn = connection
        self._translator = translator
        self._deliver = deliver
        self._now = now
        self.capture = capture  # the link captures its close sequence with it too
        self.ready = anyio.Event()  # set once the translator saw the handshake's answer
        self.last_frame_at = now()
        self.frames = 0
        self.malformed = 0

    async def run(self) -> None:
        receive = self._conn.receive
        decode = self._translator.decode
        deliver = self._deliver
        epoch = self.epoch
        translator = self._translator
        capture = self.capture
        if translator.ready:
            self.ready.set()
        while True:
            frame = await receive()
            if capture is not None:
                capture.received(epoch, frame)
            self.frames += 1
            self.last_frame_at = self._now()
            try:
                events: Sequence[Event] = decode(frame)
            except ProtocolError as exc:
                self.malformed += 1
                events = [
                    ProviderErrorEvent(code=MALFORMED_FRAME, message=str(exc), recoverable=True)
                ]
            if events:
                deliver(events, epoch)
            if not self.ready.is_set() and translator.ready:
                self.ready.set()
