"""The failover preset: one session, several providers in order of preference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from msgspec.structs import replace

from ..adapters import Connector, FailureKind, Limits, Provider, Translator
from ..errors import CodecError
from ._breaker import BREAKERS, CircuitBreakers

DEFAULT_MOVE_ON = frozenset(
    {
        FailureKind.AUTHENTICATION,
        FailureKind.QUOTA,
        FailureKind.CAPACITY,
        FailureKind.MODEL_UNAVAILABLE,
    }
)


@dataclass(frozen=True, kw_only=True)
class FailoverPolicy:
    """When a session leaves its provider, and whether it comes back.

    Attributes:
        move_on: Failure kinds after which the session moves to the next provider at once
            (whatever the provider's own disposition: a quota refusal it would retry later
            is still a reason to leave it now).
        attempts: Consecutive failures on one provider, none after a healthy connection,
            after which any other failure moves on too (an outage that outlasts the retries:
            5xx answers, refused or stalled connections). A fatal failure of a kind not in
            ``move_on`` (e.g. ``INVALID_REQUEST``: what the app sent is wrong, and would be
            wrong anywhere) ends the call.
        return_after_s: Go back to the first provider this long after leaving it, at the
            next turn boundary, if its breaker lets a connection through; the new connection
            is opened and primed before the old one is closed, so a failed return costs the
            call nothing. None: stay.
    """

    move_on: frozenset[FailureKind] = DEFAULT_MOVE_ON
    attempts: int = 3
    return_after_s: float | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")
        if self.return_after_s is not None and self.return_after_s < 0:
            raise ValueError("return_after_s must be >= 0 (None: never return)")


@dataclass(frozen=True, kw_only=True, init=False)
class Failover:
    """Providers in order of preference, as one provider preset.

    The session runs on the first provider whose circuit breaker is closed. When a failure
    is fatal for that provider (by the policy), it continues on the next one, in a new epoch
    primed from the session's state like any reconnect: instructions, tools, the conversation
    within the new provider's limits, undelivered tool results (each exactly once) and the
    user audio since the last safe point, resampled to the new provider's input rate.

    Voices: each preset keeps its own voice (``OpenAIRealtime(voice=...)``,
    ``GeminiLive(voice=...)``); ``voices`` maps a provider name to the voice to use there
    instead. A session-level ``voice`` option (``open_session(options={"voice": ...})``)
    is sent to the first provider only, since voice names are per provider.

    Args:
        providers: Two or more provider presets, the preferred first.
        policy: Which failures move on; whether to return to the first.
        voices: Provider name -> voice, overriding the presets' and the session's voice.
        breakers: The circuit breakers (default: the process-wide
            :data:`antiphon.failover.BREAKERS`).

    Raises:
        ValueError: fewer than two providers, or a provider that is itself a ``Failover``.
    """

    providers: tuple[Provider, ...]
    policy: FailoverPolicy
    voices: Mapping[str, str]
    breakers: CircuitBreakers = field(repr=False, compare=False)

    def __init__(
        self,
        providers: Sequence[Provider],
        *,
        policy: FailoverPolicy | None = None,
        voices: Mapping[str, str] | None = None,
        breakers: CircuitBreakers | None = None,
    ) -> None:
        members = tuple(providers)
        if len(members) < 2:
            raise ValueError("Failover needs at least two providers")
        if any(isinstance(p, Failover) for p in members):
            raise ValueError("a Failover cannot contain another Failover")
        object.__setattr__(self, "providers", members)
        object.__setattr__(self, "policy", policy or FailoverPolicy())
        object.__setattr__(self, "voices", dict(voices or {}))
        object.__setattr__(self, "breakers", breakers or BREAKERS)

    @property
    def name(self) -> str:
        """The first provider's name (the journal records each switch after that)."""
        return self.providers[0].name

    @property
    def model(self) -> str:
        return self.providers[0].model

    @property
    def limits(self) -> Limits:
        """The first provider's limits, with an audio format every provider can be fed
        from: the highest input rate among them (the others get it resampled down) and the
        shortest frame, and the longest resend window and close deadline."""
        first = self.providers[0].limits
        limits = [p.limits for p in self.providers]
        merged = replace(
            first,
            input_sample_rate=max(x.input_sample_rate for x in limits),
            frame_ms=min(x.frame_ms for x in limits),
            resend_window_s=max(x.resend_window_s for x in limits),
            close_timeout_s=max(x.close_timeout_s for x in limits),
        )
        try:
            merged.input_frame_bytes  # noqa: B018 - a whole number of samples per frame
        except CodecError:
            merged = replace(merged, frame_ms=first.frame_ms)
        return merged

    @property
    def handle_max_age_s(self) -> float | None:
        return self.providers[0].handle_max_age_s

    def new_translator(self) -> Translator:
        """A translator of the first provider (option checks at ``open_session``)."""
        return self.providers[0].new_translator()

    def new_connector(self) -> Connector:
        """A connector of the first provider; the runtime makes each provider's own."""
        return self.providers[0].new_connector()


def members(provider: Provider) -> tuple[Provider, ...]:
    """The providers a session may run on: a ``Failover``'s, or the one given."""
    return provider.providers if isinstance(provider, Failover) else (provider,)
