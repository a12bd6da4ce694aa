"""Circuit breakers: one per provider, shared by all the sessions of a process.

How this works: a breaker counts the failures that made sessions leave its provider
(:class:`~antiphon.adapters.FailureKind` in the failover policy's ``move_on``, or a provider
that kept failing). ``failures`` of them within ``window_s`` *open* it: sessions that would
connect to the provider go to the next one at once, and sessions still dialling it give up
(:meth:`CircuitBreakers.subscribe`), instead of each paying the provider's timeout. After
``cooldown_s`` the breaker is *half open*: one connection attempt (a new session's, or a
session returning to its primary) is let through as a probe. A probe that connects closes the
breaker; one that fails opens it again, for twice the cool-down (up to ``max_cooldown_s``).

Pure: time is passed in (monotonic seconds); nothing here sleeps, reads a clock or does IO.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Callable
from dataclasses import dataclass

from ..adapters import Provider


class BreakerState(enum.StrEnum):
    CLOSED = "closed"  # the provider is used
    OPEN = "open"  # the provider is skipped
    HALF_OPEN = "half_open"  # one probe may try it


@dataclass(frozen=True, kw_only=True)
class BreakerPolicy:
    """When a breaker opens and for how long.

    Attributes:
        failures: Failures within ``window_s`` that open the breaker.
        window_s: The window failures are counted in.
        cooldown_s: How long an opened breaker stays open before it lets a probe through.
        max_cooldown_s: The cool-down doubles after each failed probe, up to this.
    """

    failures: int = 1
    window_s: float = 60.0
    cooldown_s: float = 30.0
    max_cooldown_s: float = 300.0

    def __post_init__(self) -> None:
        if self.failures < 1:
            raise ValueError("failures must be >= 1")
        if self.window_s <= 0 or self.cooldown_s < 0 or self.max_cooldown_s < self.cooldown_s:
            raise ValueError("window_s > 0 and 0 <= cooldown_s <= max_cooldown_s are required")


class CircuitBreaker:
    """One provider's breaker. See the module docstring.

    Args:
        policy: Thresholds and cool-downs.
    """

    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self._failures: collections.deque[float] = collections.deque()
        self._opened_at: float | None = None
        self._cooldown_s = policy.cooldown_s
        self._probing = False
        self.opened = 0  # times it opened

    def state(self, now: float) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if now - self._opened_at >= self._cooldown_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def reopens_at(self) -> float | None:
        """When an open breaker lets a probe through (None: it is closed)."""
        return None if self._opened_at is None else self._opened_at + self._cooldown_s

    def allows(self, now: float) -> bool:
        """Whether a connection attempt may go to the provider at ``now`` (without taking the
        half-open probe)."""
        state = self.state(now)
        return state is BreakerState.CLOSED or (
            state is BreakerState.HALF_OPEN and not self._probing
        )

    def acquire(self, now: float) -> bool:
        """Take the right to try the provider now: always when closed; the one probe when half
        open (then no other attempt is allowed until it reports); never when open."""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def succeeded(self) -> None:
        """A connection to the provider worked: close the breaker."""
        self._failures.clear()
        self._opened_at = None
        self._probing = False
        self._cooldown_s = self.policy.cooldown_s

    def failed(self, now: float) -> bool:
        """A failure that made a session leave the provider. True when it opened the breaker
        (just now: a failed probe re-opens it for a longer cool-down)."""
        if self._opened_at is not None:
            if self._probing or self.state(now) is BreakerState.HALF_OPEN:
                self._probing = False
                self._cooldown_s = min(self.policy.max_cooldown_s, self._cooldown_s * 2)
                self._opened_at = now
                self.opened += 1
                return True
            return False  # already open: a session that was dialling before it opened
        window = self.policy.window_s
        self._failures.append(now)
        while self._failures and now - self._failures[0] > window:
            self._failures.popleft()
        if len(self._failures) < self.policy.failures:
            return False
        self._failures.clear()
        self._opened_at = now
        self.opened += 1
        return True

    def released(self) -> None:
        """The probe ended without a verdict (its session closed first): another may probe."""
        self._probing = False


def provider_key(provider: Provider) -> str:
    """What identifies a provider configuration for its breaker: name, model and endpoint (a
    preset's ``url``, ``base_url`` or ``endpoint_uri``, when it has one), so two emulators or
    two regions of one provider have separate breakers."""
    endpoint = ""
    for attribute in ("url", "base_url", "endpoint_uri", "region"):
        value = getattr(provider, attribute, None)
        if isinstance(value, str) and value:
            endpoint = value
            break
    return f"{provider.name}|{provider.model}|{endpoint}"


OpenListener = Callable[[str], None]


class CircuitBreakers:
    """The breakers of a process, one per provider configuration (:func:`provider_key`).

    Every :class:`~antiphon.providers.Failover` uses the process-wide :data:`BREAKERS` unless
    given its own (tests, or an app that wants separate accounting per tenant). Sessions of one
    event loop share it; it takes no lock.

    Args:
        policy: The policy of every breaker made here.
    """

    def __init__(self, policy: BreakerPolicy | None = None) -> None:
        self.policy = policy or BreakerPolicy()
        self._breakers: dict[str, CircuitBreaker] = {}
        self._listeners: list[OpenListener] = []

    def get(self, provider: Provider) -> CircuitBreaker:
        key = provider_key(provider)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = CircuitBreaker(self.policy)
        return breaker

    def failed(self, provider: Provider, now: float) -> bool:
        """Count a failure against ``provider``; tell the subscribers when its breaker opens."""
        opened = self.get(provider).failed(now)
        if opened:
            key = provider_key(provider)
            for listener in list(self._listeners):
                listener(key)
        return opened

    def subscribe(self, listener: OpenListener) -> Callable[[], None]:
        """Call ``listener(provider_key)`` whenever a breaker opens; returns the unsubscribe."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def reset(self) -> None:
        """Forget every breaker (tests; an operator who knows the outage is over)."""
        self._breakers.clear()


BREAKERS = CircuitBreakers()
"""The process-wide breakers every :class:`~antiphon.providers.Failover` uses by default."""
