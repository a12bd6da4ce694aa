"""What a Nova Sonic failure means for the session (pure).

The connector raises :class:`~antiphon.errors.ProviderError` with typed fields:
``provider_code`` is the service's error name (the SDK's modeled exception class, e.g.
``"ModelTimeoutException"``, or an unmodeled event error's ``:error-code``), ``http_status``
the status of a refused stream when the SDK reports one, and ``condition`` a failure the
connector detected itself (``"eof"`` for a stream that ended before our ``sessionEnd``).
Each kind has its own table below, following PROVIDERS.md §1.8: the stream limit, the idle
reset, throttling and the service's transient faults are recoverable (a new stream primed from
``SessionState``); a validation error is a client bug (fatal) unless its message is one of the
known transient ones; access, quota and configuration problems are fatal.
"""

from __future__ import annotations

from typing import Final

from ...errors import ConnectionLostError, ProtocolError, ProviderError, ProviderTimeout
from .._contract import Disposition, ErrorClass

__all__ = [
    "FATAL_CONDITIONS",
    "FATAL_PROVIDER_CODES",
    "RECOVERABLE_PROVIDER_CODES",
    "RECOVERABLE_VALIDATION_MESSAGES",
    "RETRYABLE_HTTP_STATUSES",
    "THROTTLE_RETRY_AFTER_S",
    "classify_error",
]

RECOVERABLE_VALIDATION_MESSAGES: Final[tuple[str, ...]] = (
    "531::RST_STREAM",  # the ~175 s idle reset
    "System instability detected",
    "Tool Response parsing error",
)
"""Substrings that make a ``ValidationException`` transient rather than a client bug."""

THROTTLE_RETRY_AFTER_S: Final = 1.0
"""Minimum wait after a ``ThrottlingException``, the documented minimum back-off (the service
sends no Retry-After on the stream)."""

RECOVERABLE_PROVIDER_CODES: Final = frozenset(
    {
        "ModelTimeoutException",  # the ~8 min stream limit
        "ThrottlingException",
        "ModelNotReadyException",
        "ModelStreamErrorException",
        "ModelErrorException",
        "InternalServerException",
        "ServiceUnavailableException",
    }
)
"""Service errors that a new stream gets past."""

FATAL_PROVIDER_CODES: Final = frozenset(
    {"AccessDeniedException", "ResourceNotFoundException", "ServiceQuotaExceededException"}
)
"""Service errors no new stream can fix (besides ``ValidationException``, which is fatal unless
its message is in :data:`RECOVERABLE_VALIDATION_MESSAGES`)."""

RETRYABLE_HTTP_STATUSES: Final = frozenset({408, 424, 429})
"""Statuses of a refused stream that a later attempt may pass, besides any 5xx (400, 403 and
404 are configuration problems)."""

FATAL_CONDITIONS: Final = frozenset(
    {
        "unsupported_event_loop",  # the SDK is asyncio-only
        "config",  # no region or no credentials could be resolved
        "tls",  # TLS negotiation failed: wrong endpoint or CA
    }
)
"""Failures the connector detects itself that no new stream can fix. Its other conditions
(``eof``, ``transport``, ``event_stream``, ``unknown_exception_type``, timeouts) are
recoverable."""


def _recoverable(reason: str, retry_after_s: float | None = None) -> ErrorClass:
    return ErrorClass(
        disposition=Disposition.RECOVERABLE, reason=reason, retry_after_s=retry_after_s
    )


def _fatal(reason: str) -> ErrorClass:
    return ErrorClass(disposition=Disposition.FATAL, reason=reason)


def _classify_provider_error(error: ProviderError) -> ErrorClass:
    code = error.provider_code
    if code == "ValidationException":
        message = str(error)
        for needle in RECOVERABLE_VALIDATION_MESSAGES:
            if needle in message:
                return _recoverable(f"transient validation: {needle}", error.retry_after_s)
        return _fatal("validation error (client bug)")
    if code == "ThrottlingException":
        wait = max(error.retry_after_s or 0.0, THROTTLE_RETRY_AFTER_S)
        return _recoverable(code, wait)
    if code in RECOVERABLE_PROVIDER_CODES:
        return _recoverable(code, error.retry_after_s)
    if code in FATAL_PROVIDER_CODES:
        return _fatal(code)
    status = error.http_status
    if status is not None:
        if status in RETRYABLE_HTTP_STATUSES or status >= 500:
            return _recoverable(f"HTTP {status}", error.retry_after_s)
        return _fatal(f"HTTP {status}")
    if error.condition in FATAL_CONDITIONS:
        return _fatal(error.condition)
    if isinstance(error, ConnectionLostError):
        return _recoverable(error.condition or "lost")
    # Anything unknown from a live stream: retry under the supervisor's restart budget rather
    # than kill a call for an error class we have never seen.
    return _recoverable(f"unclassified: {code or error.condition}", error.retry_after_s)


def classify_error(error: BaseException) -> ErrorClass:
    """Classify an :mod:`antiphon.errors` exception raised by the Nova connector or decoder,
    from its typed fields (see the module docstring)."""
    if isinstance(error, ProviderTimeout):
        return _recoverable(f"timeout: {error.condition}")
    if isinstance(error, ProviderError):
        return _classify_provider_error(error)
    if isinstance(error, ProtocolError):
        # One frame we cannot read; if it ever ends a stream, a new one is the way on.
        return _recoverable("malformed frame")
    return _fatal(type(error).__name__)
