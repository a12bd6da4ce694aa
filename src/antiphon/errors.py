"""The one exception tree of antiphon.

::

    AntiphonError
    ├── CodecError                 bad audio input: odd byte count, unsupported rate/width
    ├── ProtocolError              a provider frame we cannot decode (malformed JSON, wrong shape)
    ├── JournalError
    │   ├── JournalConflict        append(expected_seq=...) did not match the stream's next seq
    │   ├── JournalCorrupt         a damaged record in the middle of a journal (offset given)
    │   └── NotAJournal            the path holds no journal
    ├── ToolError                  a tool definition or its arguments are unusable
    ├── ProviderError              the provider failed; carries provider, code, recoverable
    │   ├── ConnectionLostError    the socket/stream ended without our asking
    │   └── ProviderTimeout        connect/send/close missed its deadline
    ├── SessionClosedError         a call on a session that has ended
    └── SupervisorEscalation       a supervised child exceeded its restart intensity

Foreign exceptions (SDKs, websockets, OS) are translated once, at the edge where they are
raised, with ``raise ... from exc``. This module imports nothing, so every layer (the pure
ones included) may use it.
"""

from __future__ import annotations

__all__ = [
    "AntiphonError",
    "CodecError",
    "ConnectionLostError",
    "JournalConflict",
    "JournalCorrupt",
    "JournalError",
    "NotAJournal",
    "ProtocolError",
    "ProviderError",
    "ProviderTimeout",
    "SessionClosedError",
    "SupervisorEscalation",
    "ToolError",
]


class AntiphonError(Exception):
    """Base class of every error antiphon raises on purpose."""


class CodecError(AntiphonError, ValueError):
    """Audio input that the codecs cannot take (odd byte count, unsupported rate or width)."""


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


class JournalConflict(JournalError):
    """``append`` was called with an ``expected_seq`` that is not the stream's next seq."""

    def __init__(self, session_id: str, expected_seq: int, actual_seq: int) -> None:
        super().__init__(
            f"journal {session_id!r}: expected next seq {expected_seq}, stream is at {actual_seq}"
        )
        self.session_id = session_id
        self.expected_seq = expected_seq
        self.actual_seq = actual_seq


class JournalCorrupt(JournalError):
    """A damaged record that is not at the tail, so it cannot be repaired by truncation."""

    def __init__(self, message: str, *, path: str = "", offset: int = -1) -> None:
        super().__init__(f"{message} ({path} at byte {offset})" if path else message)
        self.path = path
        self.offset = offset


class NotAJournal(JournalError):
    """The given path does not hold an antiphon journal."""


class ToolError(AntiphonError):
    """A tool definition or a tool call's arguments that cannot be used."""


class ProviderError(AntiphonError):
    """The provider reported or caused a failure.

    Attributes:
        provider: Provider name.
        code: Provider error code or websocket close code, as a string.
        recoverable: True when a new connection may continue the session.
        retry_after_s: Suggested wait before reconnecting, if the provider gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        code: str = "",
        recoverable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.code = code
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
