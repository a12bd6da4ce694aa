"""The one exception tree of antiphon.

::

    AntiphonError
    ├── CodecError                 bad audio input: odd byte count, unsupported rate/width
    ├── InvalidArgument            (a ValueError) a public call got an argument it cannot take;
    │   │                          raised before anything was queued or journalled
    │   ├── InvalidArgumentType    (also a TypeError) the argument has the wrong type
    │   └── InvalidAudio           (also a CodecError) send_audio's audio or its format
    ├── ProtocolError              a provider frame we cannot decode (malformed JSON, wrong shape)
    ├── JournalError
    │   ├── JournalBusy            a writer holds the stream (check --repair refuses to run)
    │   ├── JournalConflict        append(expected_seq=...) did not match the stream's next seq
    │   │   └── LeaseLost          the writer's lease expired or was claimed: it is fenced off
    │   ├── JournalCorrupt         a damaged record in the middle of a journal (offset given)
    │   └── NotAJournal            the path holds no journal
    ├── ToolError                  a tool definition or its arguments are unusable, or the
    │                              app answered a call not waiting for it (submit_tool_result)
    ├── ProviderError              the provider failed or refused; typed fields: provider,
    │   │                          http_status, close_code, provider_code, condition,
    │   │                          recoverable, retry_after_s
    │   ├── ConnectionLostError    the socket/stream ended without our asking (close_code)
    │   └── ProviderTimeout        connect/send/close missed its deadline (condition)
    ├── SessionClosedError         a call on a session that has ended
    └── SupervisorEscalation       a supervised child exceeded its restart intensity

Foreign exceptions (SDKs, websockets, OS) are translated once, at the edge where they are
raised, with ``raise ... from exc``. This module imports nothing, so every layer (the pure
ones included) may use it.

A :class:`ProviderError` says what went wrong in fields of one kind each, never in one string
with per-provider conventions: ``http_status`` (a refused websocket upgrade or HTTP request),
``close_code`` (the websocket close code), ``provider_code`` (the provider's own error code or
name, e.g. ``session_expired`` or ``ModelTimeoutException``) and ``condition`` (antiphon's name
for a failure it detected itself, e.g. ``connect_timeout`` or ``eof``). :func:`cause_code`
turns them into the short cause the runtime journals for a reconnect.
"""

from __future__ import annotations

__all__ = [
    "AntiphonError",
    "CodecError",
    "ConnectionLostError",
    "InvalidArgument",
    "InvalidArgumentType",
    "InvalidAudio",
    "JournalBusy",
    "JournalConflict",
    "JournalCorrupt",
    "JournalError",
    "LeaseLost",
    "NotAJournal",
    "ProtocolError",
    "ProviderError",
    "ProviderTimeout",
    "SessionClosedError",
    "SupervisorEscalation",
    "ToolError",
    "cause_code",
]


class AntiphonError(Exception):
    """Base class of every error antiphon raises on purpose."""


class CodecError(AntiphonError, ValueError):
    """Audio input that the codecs cannot take (odd byte count, unsupported rate or width)."""


class InvalidArgument(AntiphonError, ValueError):
    """A public call got an argument it cannot take.

    Raised in the caller before anything was queued, journalled or sent: the session is
    exactly as it was, and the call may be retried with a good argument.

    Attributes:
        argument: Name of the offending argument (``"sample_rate"``, ``"tools"``, ...).
    """

    def __init__(self, message: str, *, argument: str = "") -> None:
        super().__init__(message)
        self.argument = argument


class InvalidArgumentType(InvalidArgument, TypeError):
    """A public call got an argument of the wrong type (also a :class:`TypeError`)."""


class InvalidAudio(InvalidArgument, CodecError):
    """``send_audio`` got audio that is not PCM16 in the stated format, or a format the codecs
    do not support (also a :class:`CodecError`)."""


class ProtocolError(AntiphonError):
    """A provider frame that cannot be decoded.

    Attributes:
        provider: Provider name, e.g. ``"openai"``.
        frame: The offending frame, cut to 200 characters for messages and logs.
    """

    def __init__(self, message: str, *, provider: str = "", frame: str | bytes = b"") -> None:
        super().__init__(message)
        self.provider = provider
        self.frame = frame[:200]


class JournalError(AntiphonError):
    """Base class of journal errors."""


class JournalBusy(JournalError):
    """A writer holds the stream, so an operation that needs it idle (a repair) refused."""


class JournalConflict(JournalError):
    """``append`` was called with an ``expected_seq`` that is not the stream's next seq."""

    def __init__(self, session_id: str, expected_seq: int, actual_seq: int) -> None:
        super().__init__(
            f"journal {session_id!r}: expected next seq {expected_seq}, stream is at {actual_seq}"
        )
        self.session_id = session_id
        self.expected_seq = expected_seq
        self.actual_seq = actual_seq


class LeaseLost(JournalConflict):
    """The writer's lease on the stream expired or another writer claimed the stream: a backend
    with fencing (the Redis journal) refuses every further write of that writer, whatever its
    ``expected_seq``. Its owner must stop; whoever holds the lease now continues the session."""

    def __init__(self, session_id: str, expected_seq: int, actual_seq: int) -> None:
        super().__init__(session_id, expected_seq, actual_seq)
        self.args = (
            f"journal {session_id!r}: this writer's lease expired or was claimed by another"
            f" writer (stream at seq {actual_seq}); it may not write any more",
        )


class JournalCorrupt(JournalError):
    """A damaged record that is not at the tail, so it cannot be repaired by truncation."""

    def __init__(self, message: str, *, path: str = "", offset: int = -1) -> None:
        super().__init__(f"{message} ({path} at byte {offset})" if path else message)
        self.path = path
        self.offset = offset


class NotAJournal(JournalError):
    """The given path does not hold an antiphon journal."""


class ToolError(AntiphonError):
    """A tool definition or a tool call's arguments that cannot be used, or an app's result
    (``Session.submit_tool_result``) for a call that is not waiting for one from the app."""


class ProviderError(AntiphonError):
    """The provider reported or caused a failure.

    Each field holds one kind of code; a field that does not apply is ``None`` or ``""``.

    Attributes:
        provider: Provider name.
        http_status: HTTP status of a refused websocket upgrade or request (e.g. ``401``).
        close_code: Websocket close code of a connection that ended (e.g. ``1011``); ``1006``
            when the socket ended without a close frame.
        provider_code: The provider's own error code or name, as it sent it
            (``"session_expired"``, ``"invalid_api_key"``, ``"ModelTimeoutException"``).
        condition: antiphon's name for a failure it detected itself rather than was told
            (``"connect_timeout"``, ``"send_timeout"``, ``"stalled"``, ``"eof"``,
            ``"unsupported_event_loop"``, ...).
        recoverable: True when a new connection may continue the session.
        retry_after_s: Wait before reconnecting, when the provider said (HTTP ``Retry-After``).
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        http_status: int | None = None,
        close_code: int | None = None,
        provider_code: str = "",
        condition: str = "",
        recoverable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.http_status = http_status
        self.close_code = close_code
        self.provider_code = provider_code
        self.condition = condition
        self.recoverable = recoverable
        self.retry_after_s = retry_after_s


class ConnectionLostError(ProviderError):
    """The provider connection ended without our asking (drop, EOF, abnormal close)."""


class ProviderTimeout(ProviderError):
    """A connect, send or close with the provider missed its deadline."""


class SessionClosedError(AntiphonError):
    """The session has ended; no further commands are accepted."""


class SupervisorEscalation(AntiphonError):
    """A child exceeded its restart intensity; the original error is ``__cause__``.

    Attributes:
        child: Name of the child that failed.
        restarts: Restarts counted inside the intensity window.
    """

    def __init__(self, child: str, restarts: int, error: BaseException) -> None:
        super().__init__(f"child {child!r} failed {restarts} times within its window: {error!r}")
        self.child = child
        self.restarts = restarts
        self.error = error


def cause_code(error: BaseException) -> str:
    """The short cause code of a failure, as journalled in ``ConnectionLost.cause`` and shown
    in ``Reconnected.cause``.

    * a connection that ended: ``closed:<close code>`` (``closed:1006``), or
      ``closed:<condition>`` when there was no close code (``closed:eof``);
    * a missed deadline: ``timeout:<condition>`` (``timeout:stalled``);
    * any other provider error: the provider's code (``session_expired``), else
      ``http:<status>`` for a refused upgrade, else the condition;
    * anything else: the exception's class name.

    Pure, like the rest of this module.
    """
    if isinstance(error, ConnectionLostError):
        what = str(error.close_code) if error.close_code is not None else error.condition
        if what:
            return f"closed:{what}"
    elif isinstance(error, ProviderTimeout) and error.condition:
        return f"timeout:{error.condition}"
    if isinstance(error, ProviderError):
        if error.provider_code:
            return error.provider_code
        if error.http_status is not None:
            return f"http:{error.http_status}"
        if error.condition:
            return error.condition
    return type(error).__name__
