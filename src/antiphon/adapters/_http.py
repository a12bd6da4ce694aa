"""Small pure helpers for the HTTP side of connectors (a refused websocket upgrade)."""

from __future__ import annotations

import math

__all__ = ["parse_retry_after"]


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
