"""The circuit breaker and the failover preset: pure, so plain table-driven and property tests."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from antiphon.adapters import FailureKind
from antiphon.failover import (
    BreakerPolicy,
    BreakerState,
    CircuitBreaker,
    CircuitBreakers,
    Failover,
    FailoverPolicy,
    members,
    provider_key,
)
from antiphon.providers import OpenAIRealtime, Phonic
from antiphon.testing import ScriptedProvider

POLICY = BreakerPolicy(failures=2, window_s=10.0, cooldown_s=5.0, max_cooldown_s=20.0)
FAILED_PROBE = [("fail", 0.0), ("fail", 1.0), ("probe", 6.0), ("fail", 6.5)]


@pytest.mark.parametrize(
    ("steps", "at", "state"),
    [
        # (what happened, when), then the state asked for at ``at``
        ([], 0.0, BreakerState.CLOSED),
        ([("fail", 0.0)], 1.0, BreakerState.CLOSED),  # one failure of two
        ([("fail", 0.0), ("fail", 1.0)], 2.0, BreakerState.OPEN),
        ([("fail", 0.0), ("fail", 11.0)], 11.5, BreakerState.CLOSED),  # outside the window
        ([("fail", 0.0), ("fail", 1.0)], 6.0, BreakerState.HALF_OPEN),  # cool-down over
        ([("fail", 0.0), ("fail", 1.0), ("ok", 6.0)], 6.5, BreakerState.CLOSED),
        # a failed probe re-opens it for twice the cool-down
        ([("fail", 0.0), ("fail", 1.0), ("probe", 6.0), ("fail", 6.5)], 15.0, BreakerState.OPEN),
        (
            [("fail", 0.0), ("fail", 1.0), ("probe", 6.0), ("fail", 6.5)],
            16.5,
            BreakerState.HALF_OPEN,
        ),
    ],
)
def test_breaker_states(steps: list[tuple[str, float]], at: float, state: BreakerState) -> None:
    breaker = CircuitBreaker(POLICY)
    for what, t in steps:
        if what == "fail":
            breaker.failed(t)
        elif what == "probe":
            assert breaker.acquire(t)
        else:
            breaker.succeeded()
    assert breaker.state(at) is state


def test_half_open_lets_one_probe_through_until_it_reports() -> None:
    breaker = CircuitBreaker(BreakerPolicy(failures=1, cooldown_s=1.0))
    assert breaker.failed(0.0)  # opened
    assert not breaker.acquire(0.5)
    assert breaker.acquire(1.0)  # the probe
    assert not breaker.acquire(1.0)
    assert not breaker.allows(1.0)
    breaker.released()  # its session went away without a verdict
    assert breaker.acquire(1.1)
    breaker.succeeded()
    assert breaker.state(1.2) is BreakerState.CLOSED
    assert breaker.acquire(1.2)


def test_cool_down_doubles_up_to_the_maximum() -> None:
    breaker = CircuitBreaker(BreakerPolicy(failures=1, cooldown_s=1.0, max_cooldown_s=3.0))
    t = 0.0
    breaker.failed(t)
    waits = []
    for _ in range(4):
        reopens = breaker.reopens_at()
        assert reopens is not None
        waits.append(reopens - t)
        t = reopens
        assert breaker.acquire(t)
        assert breaker.failed(t)  # the probe failed: open again
    assert waits == [1.0, 2.0, 3.0, 3.0]


@given(st.lists(st.tuples(st.sampled_from(["fail", "ok", "probe"]), st.floats(0, 5)), max_size=40))
def test_breaker_properties(steps: list[tuple[str, float]]) -> None:
    """Whatever happens: a closed breaker allows; an open one does not; at most one probe is
    out at a time; a success always closes it."""
    breaker = CircuitBreaker(POLICY)
    now = 0.0
    probes_out = 0
    for what, dt in steps:
        now += dt
        state = breaker.state(now)
        if state is BreakerState.CLOSED:
            assert breaker.allows(now)
        if state is BreakerState.OPEN:
            assert not breaker.allows(now)
            assert not breaker.acquire(now)
        if what == "fail":
            breaker.failed(now)
            probes_out = 0
        elif what == "ok":
            breaker.succeeded()
            probes_out = 0
            assert breaker.state(now) is BreakerState.CLOSED
        elif breaker.acquire(now) and breaker.state(now) is BreakerState.HALF_OPEN:
            probes_out += 1
        assert probes_out <= 1


def test_registry_keys_by_configuration_and_tells_subscribers_when_one_opens() -> None:
    breakers = CircuitBreakers(BreakerPolicy(failures=1))
    one = OpenAIRealtime(url="ws://127.0.0.1:1/v1/realtime", api_key="sk-secret")
    same = OpenAIRealtime(url="ws://127.0.0.1:1/v1/realtime", api_key="sk-other")
    other = OpenAIRealtime(url="ws://127.0.0.1:2/v1/realtime", api_key="sk-secret")
    assert provider_key(one) == provider_key(same) != provider_key(other)
    assert "secret" not in provider_key(one)  # no credential in a key
    opened: list[str] = []
    unsubscribe = breakers.subscribe(opened.append)
    assert breakers.failed(one, 0.0)
    assert not breakers.get(same).allows(0.0)  # the same configuration: the same breaker
    assert breakers.get(other).allows(0.0)
    assert opened == [provider_key(one)]
    unsubscribe()
    breakers.failed(other, 0.0)
    assert opened == [provider_key(one)]
    assert provider_key(ScriptedProvider()) != provider_key(ScriptedProvider())


def test_failover_preset_merges_the_audio_format_and_checks_its_arguments() -> None:
    a = ScriptedProvider(input_sample_rate=16_000, frame_ms=40, resend_window_s=10.0)
    b = ScriptedProvider(input_sample_rate=24_000, frame_ms=20, resend_window_s=30.0)
    failover = Failover([a, b])
    assert (failover.name, failover.model) == (a.name, a.model)
    limits = failover.limits
    assert (limits.input_sample_rate, limits.frame_ms, limits.resend_window_s) == (24_000, 20, 30.0)
    assert limits.connect_timeout_s == a.limits.connect_timeout_s  # the first's, otherwise
    assert members(failover) == (a, b)
    assert members(a) == (a,)
    assert FailureKind.AUTHENTICATION in failover.policy.move_on
    assert FailureKind.INVALID_REQUEST not in failover.policy.move_on
    with pytest.raises(ValueError, match="at least two"):
        Failover([a])
    with pytest.raises(ValueError, match="another Failover"):
        Failover([a, failover])
    with pytest.raises(ValueError, match="attempts"):
        FailoverPolicy(attempts=0)
    with pytest.raises(ValueError, match="failures"):
        BreakerPolicy(failures=0)


def test_failover_preset_takes_real_presets() -> None:
    phonic = Phonic(api_key="sk-phonic-secret")
    openai = OpenAIRealtime(api_key="sk-openai-secret")
    failover = Failover([phonic, openai])
    limits = failover.limits
    assert limits.input_sample_rate == max(
        phonic.limits.input_sample_rate, openai.limits.input_sample_rate
    )
    assert msgspec.structs.asdict(limits)["frame_ms"] == 20
    assert "secret" not in repr(failover)
