"""The adapter contract: what every provider fills in.

A provider is two parts:

* a **translator** — pure and sans-IO (no awaits, no clock reads, no sockets), one instance per
  connection (epoch). It turns wire frames into protocol events (``decode``), commands into
  wire frames (``encode``), builds the frames that set up and prime a fresh or resumed
  connection (``handshake``), and classifies failures (``classify``). It may keep per-connection
  state, like ``h11.Connection`` does.
* a **connector** — opens one real connection with the provider's own client (websockets,
  google-genai, aws-sdk-bedrock-runtime) and moves raw frames. Every await it does has a
  deadline. It translates foreign exceptions into :mod:`antiphon.errors` at the edge.

The actors layer drives both; nothing here owns a task.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import msgspec

from ..protocol import Command, Event, SessionState

Frame = str | bytes
"""A wire frame: a websocket text/binary message, or one event-stream event's JSON bytes."""


class Disposition(enum.StrEnum):
    """What a failure means for the session."""

    RECOVERABLE = "recoverable"  # reconnect (new epoch), prime from SessionState
    FATAL = "fatal"  # configuration or client bug: end the session with the error
    IGNORE = "ignore"  # benign race; carry on with the same connection


class ErrorClass(msgspec.Struct, frozen=True, kw_only=True):
    disposition: Disposition
    reason: str = ""
    retry_after_s: float | None = None
    fresh_start: bool = False  # the provider's own resume state is gone: re-seed, no handle


class Capabilities(msgspec.Struct, frozen=True, kw_only=True):
    server_vad: bool = True  # the provider detects turns on the audio
    server_resume: bool = False  # a reconnect can restore the conversation server-side
    make_before_break: bool = False  # two connections may be open at once during a rotation
    truncate: bool = False  # assistant audio can be truncated to what was heard
    text_input: bool = True


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Per-provider limits and timeouts. All configuration: providers change them silently.

    Attributes:
        input_sample_rate: PCM16 mono rate the provider takes.
        output_sample_rate: PCM16 mono rate the provider sends.
        frame_ms: Duration of one audio frame handed to the transport.
        rotate_after_s: Connection age at which to rotate at the next turn boundary.
        rotate_deadline_s: Age at which to rotate even mid-turn.
        rotate_before_expiry_s: Rotate this long before a provider-announced expiry.
        idle_timeout_s: Provider resets a connection after this much user silence.
        max_history_messages / max_message_bytes / max_history_bytes: priming caps.
        connect_timeout_s / send_timeout_s / close_timeout_s: deadlines on connector awaits.
        resend_window_s: Audio kept since the last safe point for a reconnect to re-send.
        stall_timeout_s: A connection that sends nothing for this long while a reply is
            awaited is treated as stalled and replaced.
    """

    input_sample_rate: int = 24_000
    output_sample_rate: int = 24_000
    frame_ms: int = 20
    rotate_after_s: float | None = None
    rotate_deadline_s: float | None = None
    rotate_before_expiry_s: float = 600.0
    idle_timeout_s: float | None = None
    max_history_messages: int | None = None
    max_message_bytes: int | None = None
    max_history_bytes: int | None = None
    connect_timeout_s: float = 10.0
    send_timeout_s: float = 5.0
    close_timeout_s: float = 2.0
    resend_window_s: float = 30.0
    stall_timeout_s: float = 15.0

    @property
    def input_frame_bytes(self) -> int:
        return self.input_sample_rate * self.frame_ms // 1000 * 2


class ConnectRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Per-connection parameters a translator wants the connector to dial with (never secrets).

    Attributes:
        query: Extra URL query parameters (e.g. xAI ``conversation_id``).
        headers: Extra non-secret headers.
    """

    query: Mapping[str, str] = {}
    headers: Mapping[str, str] = {}


@runtime_checkable
class Translator(Protocol):
    """Pure, per-connection protocol translator. See the module docstring."""

    provider: str
    capabilities: Capabilities
    limits: Limits

    def connect_request(self, state: SessionState) -> ConnectRequest:
        """Dial parameters for a connection that continues ``state``."""
        ...

    def handshake(self, state: SessionState) -> list[Frame]:
        """Frames that set up the connection and prime it from ``state``: instructions, tools,
        options, and the conversation history within the provider's limits (or a resumption
        handle where the provider keeps state itself).

        History comes from ``state.history()``, which leaves out tool outputs not yet
        delivered: the runtime delivers those itself right after the handshake, each exactly
        once, with ``DeliverToolResult``."""
        ...

    @property
    def ready(self) -> bool:
        """True once the provider has acknowledged the handshake (frames may flow freely)."""
        ...

    # Optional: a translator whose ``handshake`` had to leave part of the history out (to fit
    # the provider's limits) sets ``history_truncated = True``; the runtime then reports the
    # reconnect with ``state_restored=False``. Read with ``getattr(..., False)``.

    def decode(self, frame: Frame) -> list[Event]:
        """Events carried by one wire frame.

        Raises:
            antiphon.errors.ProtocolError: the frame is malformed. Unknown event types are not
                errors: they become ``UnknownProviderEvent``.
        """
        ...

    def encode(self, command: Command, state: SessionState) -> list[Frame]:
        """Frames that carry out ``command``; [] when the provider needs none."""
        ...

    def classify(self, error: BaseException) -> ErrorClass:
        """What a failure (an :mod:`antiphon.errors` exception) means for the session."""
        ...


@runtime_checkable
class Connection(Protocol):
    """One open provider connection (one epoch)."""

    async def send(self, frame: Frame) -> None:
        """Send one frame.

        Raises:
            antiphon.errors.ConnectionLostError: the connection is gone.
            antiphon.errors.ProviderTimeout: the send missed its deadline.
        """
        ...

    async def receive(self) -> Frame:
        """The next frame from the provider.

        Raises:
            antiphon.errors.ConnectionLostError: the connection ended (with its close code),
                including an end that looks graceful but that we did not ask for.
        """
        ...

    async def aclose(self) -> None:
        """Close the connection, within the close deadline; never hangs."""
        ...


@runtime_checkable
class Connector(Protocol):
    """Opens provider connections."""

    async def connect(self, request: ConnectRequest, handshake: Sequence[Frame]) -> Connection:
        """Open a connection and send ``handshake`` on it (SDKs that send their own setup
        message build it from these frames).

        Raises:
            antiphon.errors.ProviderError: the provider refused or could not be reached.
            antiphon.errors.ProviderTimeout: connecting missed its deadline.
        """
        ...


@runtime_checkable
class Provider(Protocol):
    """A configured provider: what ``open_session`` takes. Presets are configuration."""

    @property
    def name(self) -> str:
        """Provider name, as journalled (``"openai"``, ``"xai"``, ``"gemini"``, ``"nova"``)."""
        ...

    @property
    def model(self) -> str: ...

    @property
    def limits(self) -> Limits: ...

    def new_translator(self) -> Translator:
        """A fresh translator for one connection."""
        ...

    def new_connector(self) -> Connector:
        """The connector (credentials are read here, from the environment)."""
        ...


def decode_all(translator: Translator, frames: Sequence[Frame]) -> list[Event]:
    """Decode many frames in order (convenience for tests and journal verification)."""
    events: list[Event] = []
    for frame in frames:
        events.extend(translator.decode(frame))
    return events
