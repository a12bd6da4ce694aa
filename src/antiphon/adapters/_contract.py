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

from ..codecs import pcm_frame_bytes
from ..protocol import Command, Event, SessionState

Frame = str | bytes
"""A wire frame: a websocket text/binary message, or one event-stream event's JSON bytes."""


class Disposition(enum.StrEnum):
    """What a failure means for the session.

    A failure always ends its connection; there is no "ignore": a benign provider race
    arrives as a decoded error event, never as a connection failure.
    """

    RECOVERABLE = "recoverable"  # reconnect (new epoch), prime from SessionState
    FATAL = "fatal"  # configuration or client bug: end the session with the error


class FailureKind(enum.StrEnum):
    """What kind of failure a connection had, for deciding whether another provider could
    carry the call on (:class:`antiphon.providers.Failover`). The disposition says whether the
    *same* provider is worth another connection; the kind says why it failed.
    """

    TRANSIENT = "transient"
    """A dropped socket, a timeout, a close we did not ask for: the same provider again."""
    OUTAGE = "outage"
    """The provider's servers failed (HTTP 5xx, an internal-error close or exception)."""
    CAPACITY = "capacity"
    """The provider has no room now (overloaded, model not ready, service unavailable)."""
    QUOTA = "quota"
    """The account's quota or rate limit is used up (429, ``RESOURCE_EXHAUSTED``, too many
    concurrent sessions)."""
    AUTHENTICATION = "authentication"
    """The credentials were refused: missing, invalid, expired or revoked key; no access."""
    MODEL_UNAVAILABLE = "model_unavailable"
    """The model does not exist, was retired, or is not enabled for the account."""
    INVALID_REQUEST = "invalid_request"
    """The provider refused what we sent as malformed or unsupported (a client bug or a
    configuration the provider does not take)."""


class ErrorClass(msgspec.Struct, frozen=True, kw_only=True):
    """A translator's verdict on a failure (``Translator.classify``).

    Attributes:
        disposition: Reconnect, or end the session.
        reason: Short human-readable explanation, journalled with the loss.
        retry_after_s: Do not reconnect sooner than this (HTTP ``Retry-After``, a provider's
            documented minimum back-off); None leaves the wait to the reconnect policy.
        fresh_start: The provider's own resume state is gone: re-seed, no handle.
        kind: Why it failed (authentication, quota, ...): whether another provider could
            carry the call on.
    """

    disposition: Disposition
    reason: str = ""
    retry_after_s: float | None = None
    fresh_start: bool = False
    kind: FailureKind = FailureKind.TRANSIENT


class Capabilities(msgspec.Struct, frozen=True, kw_only=True):
    server_vad: bool = True  # the provider detects turns on the audio
    server_resume: bool = False  # a reconnect can restore the conversation server-side
    make_before_break: bool = False  # two connections may be open at once during a rotation
    truncate: bool = False  # assistant audio can be truncated to what was heard
    text_input: bool = True
    # The live conversation can be edited (``EditHistory``); without it an edit reaches the
    # provider by a rotation, whose new connection is seeded from the edited history.
    edit_history: bool = False
    clear_audio: bool = False  # the provider's uncommitted input audio can be discarded
    reply_tools: bool = False  # a reply can take its own tool choice and tools


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Per-provider limits and timeouts. All configuration: providers change them silently.

    Attributes:
        input_sample_rate: PCM16 mono rate the provider takes.
        output_sample_rate: PCM16 mono rate the provider sends.
        frame_ms: Duration of one audio frame handed to the transport.
        rotate_after_s: Connection age at which to rotate at the next turn boundary.
        rotate_deadline_s: Age at which to rotate even mid-turn.
        rotate_before_expiry_s: Rotate this long before a provider-announced expiry.
        idle_timeout_s: Provider resets a connection that takes no input for this long;
            transport-send sends a ``KeepAlive`` when nothing went out for half of it.
        max_history_messages / max_message_bytes / max_history_bytes: priming caps.
        connect_timeout_s / send_timeout_s / close_timeout_s: deadlines on connector awaits.
        resend_window_s: Audio kept since the last safe point for a reconnect to re-send.
        stall_timeout_s: A connection that sends nothing for this long while a reply is
            awaited is treated as stalled and replaced.
        min_connection_lifetime_s: An announced connection lifetime shorter than this (an
            expiry already past, a clock far off) is reported and ignored, not obeyed.
        min_rotation_interval_s: No planned rotation starts sooner than this after a
            connection opened (a floor against rotation storms).
        healthy_after_s: A connection that stayed up this long (or carried a turn) was
            healthy: its later loss starts the reconnect backoff over and does not count
            toward the session's reconnect budget.
        max_chunk_ms: Longest run of user audio sent as one ``AudioFrame``: when frames
            queued while the sender was busy, it joins up to this much into one command (one
            message for most providers); an idle sender sends each frame at once.
        safe_point_margin_ms: For a provider whose safe point says only "everything sent so
            far" (Gemini, Nova: the model answered, without a position), the audio sent within
            this margin before it is not trusted to have arrived — it may still be in flight
            when the connection dies — and is sent again on the next connection. After an
            answered turn it is the silence that ended the turn, so sending it twice is
            harmless, while losing it could cut the start of the next utterance.
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
    min_connection_lifetime_s: float = 30.0
    min_rotation_interval_s: float = 2.0
    healthy_after_s: float = 10.0
    max_chunk_ms: int = 100
    safe_point_margin_ms: int = 0

    @property
    def input_frame_bytes(self) -> int:
        """Bytes of one input frame (PCM16 mono, ``frame_ms`` at ``input_sample_rate``).

        Raises:
            antiphon.errors.CodecError: the frame is not a whole number of samples.
        """
        return pcm_frame_bytes(self.frame_ms, self.input_sample_rate)


class ConnectRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Per-connection parameters a translator wants the connector to dial with (never secrets).

    Attributes:
        query: Extra URL query parameters (e.g. xAI ``conversation_id``).
        headers: Extra non-secret headers.
    """

    query: Mapping[str, str] = {}
    headers: Mapping[str, str] = {}


class Handshake(msgspec.Struct, frozen=True, kw_only=True):
    """What ``Translator.handshake`` built for one connection.

    Attributes:
        frames: The frames that set the connection up and prime it, in order; the connector
            sends them (``Connector.connect``).
        history_truncated: Part of the history was left out to fit the provider's limits; the
            runtime then reports the reconnect with ``state_restored=False``.
        resumed: The connection continues the provider's own server-side state (a
            resumption handle was sent), so the history was not re-seeded. A provider that
            says only in its first frames whether it resumed (xAI) gets a translator that
            emits :class:`~antiphon.protocol.ProviderResumed` before it turns ``ready``;
            ``ConnectionOpened.resumed`` then follows that verdict, and a translator told
            "not resumed" sends the held-back history ahead of its first encoded frame.
    """

    frames: tuple[Frame, ...]
    history_truncated: bool = False
    resumed: bool = False


@runtime_checkable
class Translator(Protocol):
    """Pure, per-connection protocol translator. See the module docstring."""

    provider: str
    capabilities: Capabilities
    limits: Limits

    def connect_request(self, state: SessionState) -> ConnectRequest:
        """Dial parameters for a connection that continues ``state``."""
        ...

    def handshake(self, state: SessionState) -> Handshake:
        """Set up the connection and prime it from ``state``: instructions, tools, options,
        and the conversation history within the provider's limits (or a resumption handle
        where the provider keeps state itself). Says whether the history had to be cut and
        whether the provider resumes its own state.

        History comes from ``state.history()``, which leaves out tool outputs not yet
        delivered: the runtime delivers those itself right after the handshake, each exactly
        once, with ``DeliverToolResult``."""
        ...

    @property
    def ready(self) -> bool:
        """True once the provider has acknowledged the handshake (frames may flow freely)."""
        ...

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
        """What a failure (an :mod:`antiphon.errors` exception) means for the session.

        Decided from the error's typed fields (``http_status``, ``close_code``,
        ``provider_code``, ``condition``), each against its own table; sets
        ``retry_after_s`` where the provider said when to come back."""
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
class NonBlockingSend(Protocol):
    """A :class:`Connection` that can also send a frame synchronously when that cannot wait.

    The runtime then sends a user audio frame from the task that handed it over, while the
    connection's sender sits idle waiting for it: no task switch and no wake-up per frame.
    """

    def send_nowait(self, frame: Frame) -> bool:
        """Send ``frame`` now if that completes without waiting.

        Returns:
            True when it went out, exactly as if ``send`` had returned; False when nothing
            was done (the connection is busy, closing, or its buffer is full) and ``send``
            must be used instead. It never raises: a failing connection answers False and
            its ``send`` reports the failure.
        """
        ...


@runtime_checkable
class Connector(Protocol):
    """Opens provider connections: one connector per session, for all of its epochs."""

    async def connect(self, request: ConnectRequest, handshake: Sequence[Frame]) -> Connection:
        """Open a connection and send ``handshake`` (the translator's ``Handshake.frames``) on
        it (SDKs that send their own setup message build it from these frames).

        Raises:
            antiphon.errors.ProviderError: the provider refused or could not be reached.
            antiphon.errors.ProviderTimeout: connecting missed its deadline.
        """
        ...

    async def aclose(self) -> None:
        """Release whatever the connector left behind once the session is done with it: SDK
        tasks it abandoned on a deadline, clients it keeps, hooks it installed.

        The runtime calls it when the session ends, after closing its last connection.
        Bounded (within the close deadline; what still runs then is left to end by itself,
        never awaited further), never hangs, idempotent, and never raises for what it
        releases. A connector with nothing to release makes it a no-op.
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

    @property
    def handle_max_age_s(self) -> float | None:
        """Age (seconds since it arrived) after which a resumption handle is not used; None
        when handles do not expire or the provider issues none."""
        ...

    def new_translator(self) -> Translator:
        """A fresh translator for one connection."""
        ...

    def new_connector(self) -> Connector:
        """The connector (credentials are read here, from the environment)."""
        ...
