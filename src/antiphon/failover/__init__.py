"""Provider failover: the same call carries on with another provider when one is down.

:class:`Failover` is a provider preset made of other presets, in order of preference;
:class:`FailoverPolicy` says which failures move a session on and whether it returns;
:class:`CircuitBreakers` (:data:`BREAKERS` for the whole process) remember which providers
are down, so new sessions start on the next one at once. The connection manager
(``actors/connection.py``) carries the switch out.
"""

from __future__ import annotations

from ._breaker import (
    BREAKERS,
    BreakerPolicy,
    BreakerState,
    CircuitBreaker,
    CircuitBreakers,
    provider_key,
)
from ._preset import DEFAULT_MOVE_ON, Failover, FailoverPolicy, members

__all__ = [
    "BREAKERS",
    "DEFAULT_MOVE_ON",
    "BreakerPolicy",
    "BreakerState",
    "CircuitBreaker",
    "CircuitBreakers",
    "Failover",
    "FailoverPolicy",
    "members",
    "provider_key",
]
