"""Small pure helpers for the HTTP side of connectors (a refused websocket upgrade)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

from ._contract import FailureKind

__all__ = ["HTTP_STATUS_KINDS", "http_status_kind", "parse_retry_after"]

HTTP_STATUS_KINDS: Final[Mapping[int, FailureKind]] = {
    400: FailureKind.INVALID_REQUEST,
    401: FailureKind.AUTHENTICATION,  # no key, a bad, expired or revoked key
    402: FailureKind.QUOTA,  # payment required: the account's credit is spent
    403: FailureKind.AUTHENTICATION,  # the key may not use this service, region or model
    404: FailureKind.MODEL_UNAVAILABLE,  # the endpoint exists: the model or deployment does not
    408: FailureKind.TRANSIENT,
    410: FailureKind.MODEL_UNAVAILABLE,  # retired
    424: FailureKind.OUTAGE,  # a failed dependency: the model behind the endpoint
    429: FailureKind.QUOTA,  # rate limit or quota
    500: FailureKind.OUTAGE,
    502: FailureKind.OUTAGE,
    503: FailureKind.CAPACITY,  # overloaded, try later
    504: FailureKind.OUTAGE,
}
"""What the HTTP status of a refused websocket upgrade (or a refused stream) says about the
failure, as every provider uses these statuses. Not listed: any other 5xx is an outage, any
other status a request the provider does not take (:func:`http_status_kind`)."""


def http_status_kind(status: int) -> FailureKind:
    """The kind of failure an HTTP refusal with ``status`` is (:data:`HTTP_STATUS_KINDS`)."""
    kind = HTTP_STATUS_KINDS.get(status)
    if kind is not None:
        return kind
    return FailureKind.OUTAGE if status >= 500 else FailureKind.INVALID_REQUEST


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` header's delta-seconds form.

    The HTTP-date form, a negative or non-finite number, or no header gives None: the
    reconnect policy then decides alone (a date would need a clock, and these servers send
    seconds).
    """
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds
