"""What a Nova Sonic failure means for the session (pure).

The connector raises :class:`~antiphon.errors.ProviderError` with typed fields:
``provider_code`` is the service's error name (the SDK's modeled exception class, e.g.
``"ModelTimeoutException"``, or an unmodeled event error's ``:error-code``), ``http_status``
the status of a refused stream when the SDK reports one, and ``condition`` a failure the
connector detected itself (``"eof"`` for a stream that ended before our ``sessionEnd``).
Each kind has its own table below, following PROVIDERS.md §1.8: the stream limit, the idle
reset, throttling and the service's transient faults are recoverable (a new stream primed from
``SessionState``); a validation error is a client bug (fatal) unless its message is one of the
known transient ones; access, quota and configuration problems are fatal. The same tables
say why it failed (``ErrorClass.kind``): throttling and service quotas are ``QUOTA``, a model
not ready or a service unavailable ``CAPACITY``, the service's internal faults ``OUTAGE``,
refused credentials ``AUTHENTICATION``, a model that is not there (or not enabled for the
account) ``MODEL_UNAVAILABLE``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from ...errors import ConnectionLostError, ProtocolError, ProviderError, ProviderTimeout
from .._contract import Disposition, ErrorClass, FailureKind
from .._http import http_status_kind

__all__ = [
    "FATAL_CONDITIONS",
    "FATAL_PROVIDER_CODES",
    "MODEL_MESSAGES",
    "PROVIDER_CODES",
    "RECOVERABLE_PROVIDER_CODES",
    "RECOVERABLE_VALIDATION_MESSAGES",
    "RETRYABLE_HTTP_STATUSES",
    "THROTTLE_RETRY_AFTER_S",
    "classify_error",
]

_FATAL, _AGAIN = Disposition.FATAL, Disposition.RECOVERABLE

RECOVERABLE_VALIDATION_MESSAGES: Final[tuple[str, ...]] = (
    "531::RST_STREAM",  # the ~175 s idle reset
    "System instability detected",
    "Tool Response parsing error",
)
"""Substrings that make a ``ValidationException`` transient rather than a client bug."""

THROTTLE_RETRY_AFTER_S: Final = 1.0
"""Minimum wait after a ``ThrottlingException``, the documented minimum back-off (the service
sends no Retry-After on the stream)."""

PROVIDER_CODES: Final[Mapping[str, tuple[Disposition, FailureKind]]] = {
    "ModelTimeoutException": (_AGAIN, FailureKind.TRANSIENT),  # the ~8 min stream limit
    "ThrottlingException": (_AGAIN, FailureKind.QUOTA),
    "ModelNotReadyException": (_AGAIN, FailureKind.CAPACITY),
    "ModelStreamErrorException": (_AGAIN, FailureKind.OUTAGE),
    "ModelErrorException": (_AGAIN, FailureKind.OUTAGE),
    "InternalServerException": (_AGAIN, FailureKind.OUTAGE),
    "ServiceUnavailableException": (_AGAIN, FailureKind.CAPACITY),
    "AccessDeniedException": (_FATAL, FailureKind.AUTHENTICATION),
    "UnrecognizedClientException": (_FATAL, FailureKind.AUTHENTICATION),  # unknown access key
    "ResourceNotFoundException": (_FATAL, FailureKind.MODEL_UNAVAILABLE),
    "ServiceQuotaExceededException": (_FATAL, FailureKind.QUOTA),
}
"""The service's error names (the SDK's exception classes): whether a new stream gets past
them, and why they happened. ``ValidationException`` is decided apart: fatal unless its
message is in :data:`RECOVERABLE_VALIDATION_MESSAGES`."""

RECOVERABLE_PROVIDER_CODES: Final = frozenset(
    code for code, (disposition, _) in PROVIDER_CODES.items() if disposition is _AGAIN
)
"""Service errors that a new stream gets past."""

FATAL_PROVIDER_CODES: Final = frozenset(
    code for code, (disposition, _) in PROVIDER_CODES.items() if disposition is _FATAL
)
"""Service errors no new stream can fix (besides ``ValidationException``, which is fatal unless
its message is in :data:`RECOVERABLE_VALIDATION_MESSAGES`)."""

MODEL_MESSAGES: Final[tuple[str, ...]] = (
    "model identifier",  # "The provided model identifier is invalid."
    "specified model id",  # "You don't have access to the model with the specified model ID."
    "on-demand throughput",  # "Invocation of model ID ... with on-demand throughput isn't ..."
    "end of its life",  # a retired model version
)
"""Substrings (lower case) that make a ``ValidationException`` or an
``AccessDeniedException`` about the model: the model id is wrong, retired or not enabled for
the account (``MODEL_UNAVAILABLE``), not the request or the credentials."""

RETRYABLE_HTTP_STATUSES: Final = frozenset({408, 424, 429})
"""Statuses of a refused stream that a later attempt may pass, besides any 5xx (400, 403 and
404 are configuration problems)."""

FATAL_CONDITIONS: Final[Mapping[str, FailureKind]] = {
    "unsupported_event_loop": FailureKind.INVALID_REQUEST,  # the SDK is asyncio-only
    "config": FailureKind.AUTHENTICATION,  # no credentials (or no region) could be resolved
    "tls": FailureKind.INVALID_REQUEST,  # TLS negotiation failed: wrong endpoint or CA
}
"""Failures the connector detects itself that no new stream can fix. Its other conditions
(``eof``, ``transport``, ``event_stream``, ``unknown_exception_type``, timeouts) are
recoverable."""


def _recoverable(
    reason: str, retry_after_s: float | None = None, kind: FailureKind = FailureKind.TRANSIENT
) -> ErrorClass:
    return ErrorClass(
        disposition=Disposition.RECOVERABLE, reason=reason, retry_after_s=retry_after_s, kind=kind
    )


def _fatal(reason: str, kind: FailureKind = FailureKind.INVALID_REQUEST) -> ErrorClass:
    return ErrorClass(disposition=Disposition.FATAL, reason=reason, kind=kind)


# The connector names an exception type the SDK does not model in its message
# ("unmodeled exception type 'serviceQuotaExceededException'"): its only trace.
_UNMODELED_NAME: Final = re.compile(r"unmodeled exception type '(\w+)'")


def _unmodeled_kind(message: str) -> FailureKind:
    """The kind of an exception the SDK could not read, by the name it carried."""
    found = _UNMODELED_NAME.search(message)
    if found is None:
        return FailureKind.TRANSIENT
    name = found.group(1)
    named = PROVIDER_CODES.get(name[:1].upper() + name[1:])
    return FailureKind.TRANSIENT if named is None else named[1]


def _about_the_model(message: str) -> bool:
    lowered = message.lower()
    return any(needle in lowered for needle in MODEL_MESSAGES)


def _classify_provider_error(error: ProviderError) -> ErrorClass:
    code = error.provider_code
    if code == "ValidationException":
        message = str(error)
        for needle in RECOVERABLE_VALIDATION_MESSAGES:
            if needle in message:
                return _recoverable(f"transient validation: {needle}", error.retry_after_s)
        if _about_the_model(message):
            return _fatal("validation error (the model id)", FailureKind.MODEL_UNAVAILABLE)
        return _fatal("validation error (client bug)")
    named = PROVIDER_CODES.get(code)
    if named is not None:
        disposition, kind = named
        if code == "AccessDeniedException" and _about_the_model(str(error)):
            kind = FailureKind.MODEL_UNAVAILABLE  # model access not enabled for the account
        if disposition is _FATAL:
            return _fatal(code, kind)
        wait = error.retry_after_s
        if code == "ThrottlingException":
            wait = max(wait or 0.0, THROTTLE_RETRY_AFTER_S)
        return _recoverable(code, wait, kind)
    status = error.http_status
    if status is not None:
        if status in RETRYABLE_HTTP_STATUSES or status >= 500:
            return _recoverable(f"HTTP {status}", error.retry_after_s, http_status_kind(status))
        return _fatal(f"HTTP {status}", http_status_kind(status))
    condition_kind = FATAL_CONDITIONS.get(error.condition)
    if condition_kind is not None:
        return _fatal(error.condition, condition_kind)
    if isinstance(error, ConnectionLostError):
        return _recoverable(error.condition or "lost")
    # Anything unknown from a live stream: retry under the supervisor's restart budget rather
    # than kill a call for an error class we have never seen (its name, when the SDK did not
    # model it, still says why it came).
    kind = FailureKind.TRANSIENT
    if error.condition == "unknown_exception_type":
        kind = _unmodeled_kind(str(error))
    return _recoverable(f"unclassified: {code or error.condition}", error.retry_after_s, kind)


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
