"""What a Nova Sonic failure means for the session (pure).

The connector raises :class:`~antiphon.errors.ProviderError` with ``code`` set to the SDK
exception's class name (``"ModelTimeoutException"``, ``"ValidationException"``, ...) or to one
of our own codes (``"eof"`` for a stream that ended before our ``sessionEnd``). The table below
follows PROVIDERS.md §1.8: the stream limit, the idle reset, throttling and the service's
transient faults are recoverable (a new stream primed from ``SessionState``); a validation error
is a client bug (fatal) unless its message is one of the known transient ones.
"""

from __future__ import annotations

from ...errors import ConnectionLostError, ProtocolError, ProviderError, ProviderTimeout
from .._contract import Disposition, ErrorClass

__all__ = [
    "RECOVERABLE_VALIDATION_MESSAGES",
    "THROTTLE_RETRY_AFTER_S",
    "classify_code",
    "classify_error",
]

RECOVERABLE_VALIDATION_MESSAGES: tuple[str, ...] = (
    "531::RST_STREAM",  # the ~175 s idle reset
    "System instability detected",
    "Tool Response parsing error",
)
"""Substrings that make a ``ValidationException`` transient rather than a client bug."""

THROTTLE_RETRY_AFTER_S = 1.0
"""Minimum wait suggested after a ``ThrottlingException`` (the service sends none)."""

_RECOVERABLE_CODES = frozenset(
    {
        "ModelTimeoutException",  # the ~8 min stream limit
        "ThrottlingException",
        "ModelNotReadyException",
        "ModelStreamErrorException",
        "ModelErrorException",
        "InternalServerException",
        "ServiceUnavailableException",
        "InvalidEventBytes",
        "ChecksumMismatch",
        "UnmodeledEventError",
        "EventError",
        "eof",  # receive() returned None before our own sessionEnd
        "transport",  # the SDK's OSError around a dead HTTP/2 stream
        "unknown_exception_type",  # the SDK's bare KeyError for an unmodeled :exception-type
    }
)
_FATAL_CODES = frozenset(
    {
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ServiceQuotaExceededException",
        "unsupported_async_library",
        "ConfigValidationError",  # e.g. no region or no credentials could be resolved
        "tls",  # TLS negotiation failed: wrong endpoint or CA
    }
)


def classify_code(code: str, message: str = "") -> ErrorClass:
    """Classify a Nova failure from its code (SDK class name or our own) and message."""
    if code == "ValidationException":
        for needle in RECOVERABLE_VALIDATION_MESSAGES:
            if needle in message:
                return ErrorClass(
                    disposition=Disposition.RECOVERABLE, reason=f"transient validation: {needle}"
                )
        return ErrorClass(disposition=Disposition.FATAL, reason="validation error (client bug)")
    if code == "ThrottlingException":
        # The service gives no Retry-After on the stream; back off at least this long.
        return ErrorClass(
            disposition=Disposition.RECOVERABLE, reason=code, retry_after_s=THROTTLE_RETRY_AFTER_S
        )
    if code in _RECOVERABLE_CODES:
        return ErrorClass(disposition=Disposition.RECOVERABLE, reason=code)
    if code in _FATAL_CODES:
        return ErrorClass(disposition=Disposition.FATAL, reason=code)
    # Anything unknown from a live stream: retry under the supervisor's restart budget rather
    # than kill a call for an error class we have never seen.
    return ErrorClass(disposition=Disposition.RECOVERABLE, reason=f"unclassified: {code}")


def classify_error(error: BaseException) -> ErrorClass:
    """Classify an :mod:`antiphon.errors` exception raised by the Nova connector or decoder."""
    if isinstance(error, ProviderTimeout):
        return ErrorClass(disposition=Disposition.RECOVERABLE, reason=f"timeout: {error.code}")
    if isinstance(error, ConnectionLostError):
        return ErrorClass(disposition=Disposition.RECOVERABLE, reason=error.code or "lost")
    if isinstance(error, ProviderError):
        cls = classify_code(error.code, str(error))
        if error.retry_after_s is not None:
            return ErrorClass(
                disposition=cls.disposition, reason=cls.reason, retry_after_s=error.retry_after_s
            )
        return cls
    if isinstance(error, ProtocolError):
        # One frame we cannot read: keep the stream; the frame is journalled as an error.
        return ErrorClass(disposition=Disposition.IGNORE, reason="malformed frame")
    return ErrorClass(disposition=Disposition.FATAL, reason=type(error).__name__)
