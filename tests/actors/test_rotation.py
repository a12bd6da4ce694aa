"""The rotation planner, table-driven: time is an input, nothing sleeps.

Each case opens a connection at t=100 s (monotonic; unix wall time 1_000_000 s), feeds
events and requests at given times, and asks ``due`` at given times.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from antiphon.actors._rotation import (
    GO_AWAY_MARGIN,
    REQUESTED_ROTATION_DEADLINE_S,
    ROTATION_RETRY_S,
    RotationDue,
    RotationPlanner,
    Urgency,
)
from antiphon.adapters import Limits
from antiphon.protocol import (
    Event,
    GenerationStarted,
    GoAwayReceived,
    ProviderSessionInfo,
    ResumptionHandleUpdated,
    UserAudioCommitted,
    UserSpeechStarted,
)

T0 = 100.0
WALL0 = 1_000_000.0


def soft(reason: str) -> RotationDue:
    return RotationDue(reason=reason, urgency=Urgency.SOFT)


def hard(reason: str) -> RotationDue:
    return RotationDue(reason=reason, urgency=Urgency.HARD)


@dataclass
class Case:
    name: str
    limits: Limits = field(default_factory=Limits)
    server_resume: bool = False
    expires_in_s: float | None = None  # announced at open
    # (time after open, events, from the active connection)
    events: list[tuple[float, list[Event], bool]] = field(default_factory=list)
    requests: list[tuple[float, str, float]] = field(default_factory=list)  # (t, reason, hard)
    failed_at: float | None = None  # a make-before-break attempt failed at this time
    # (time after open, busy, expected due)
    checks: list[tuple[float, bool, RotationDue | None]] = field(default_factory=list)


CASES = [
    Case(
        "nothing planned: never due",
        checks=[(0, False, None), (10_000, False, None)],
    ),
    Case(
        "age limit: due at the first turn boundary after rotate_after_s",
        limits=Limits(rotate_after_s=360.0),
        checks=[
            (359.9, False, None),
            (360.0, True, None),  # busy: wait for the boundary
            (400.0, False, soft("rotation:age")),
        ],
    ),
    Case(
        "hard deadline: due whatever the turn state",
        limits=Limits(rotate_after_s=360.0, rotate_deadline_s=420.0),
        checks=[(419.0, True, None), (420.0, True, hard("rotation:deadline"))],
    ),
    Case(
        "announced expiry: margin before it, at a turn boundary",
        limits=Limits(rotate_before_expiry_s=600.0),
        expires_in_s=3600.0,
        checks=[
            (2999.0, False, None),
            (3000.0, True, None),
            (3000.0, False, soft("rotation:expiry")),
        ],
    ),
    Case(
        "announced expiry: forced a little before it when the turn never ends",
        limits=Limits(rotate_before_expiry_s=600.0),
        expires_in_s=3600.0,
        checks=[(3539.0, True, None), (3540.0, True, hard("rotation:expiry"))],
    ),
    Case(
        "short-lived connection: the margin is capped at half its lifetime (no storm)",
        limits=Limits(rotate_before_expiry_s=600.0),
        expires_in_s=60.0,
        checks=[
            (0.0, False, None),
            (29.9, False, None),
            (30.0, False, soft("rotation:expiry")),
            (44.0, True, None),
            (45.0, True, hard("rotation:expiry")),
        ],
    ),
    Case(
        "expiry announced later by the active connection",
        limits=Limits(rotate_before_expiry_s=100.0),
        events=[(5.0, [ProviderSessionInfo(expires_at_s=WALL0 + 1000.0)], True)],
        checks=[(899.0, False, None), (900.0, False, soft("rotation:expiry"))],
    ),
    Case(
        "expiry of another connection (the next one, still opening) is not ours",
        limits=Limits(rotate_before_expiry_s=100.0),
        events=[(5.0, [ProviderSessionInfo(expires_at_s=WALL0 + 1000.0)], False)],
        checks=[(950.0, False, None)],
    ),
    Case(
        "goAway: at the next boundary, forced within its time left less the margin",
        events=[(10.0, [GoAwayReceived(time_left_ms=50_000)], True)],
        checks=[
            (9.0, False, None),
            (10.0, True, None),
            (10.0 + 50.0 * (1 - GO_AWAY_MARGIN) - 0.1, True, None),
            (10.0 + 50.0 * (1 - GO_AWAY_MARGIN), True, hard("go_away")),
        ],
    ),
    Case(
        "goAway at a turn boundary: at once",
        events=[(10.0, [GoAwayReceived(time_left_ms=50_000)], True)],
        checks=[(10.0, False, soft("go_away"))],
    ),
    Case(
        "app request: at the next boundary, forced after its deadline",
        requests=[(20.0, "rotation:requested", REQUESTED_ROTATION_DEADLINE_S)],
        checks=[
            (19.0, False, None),
            (20.0, True, None),
            (20.0 + REQUESTED_ROTATION_DEADLINE_S, True, hard("rotation:requested")),
        ],
    ),
    Case(
        "the first reason wins",
        limits=Limits(rotate_after_s=30.0),
        requests=[(5.0, "rotation:requested", 100.0)],
        checks=[(5.0, False, soft("rotation:requested"))],
    ),
    Case(
        "the user speaking is not a turn boundary",
        requests=[(1.0, "rotation:requested", 100.0)],
        events=[(0.5, [UserSpeechStarted()], True)],
        checks=[(2.0, False, None)],
    ),
    Case(
        "the user's turn committed: a boundary again",
        requests=[(1.0, "rotation:requested", 100.0)],
        events=[(0.5, [UserSpeechStarted()], True), (1.5, [UserAudioCommitted()], True)],
        checks=[(2.0, False, soft("rotation:requested"))],
    ),
    Case(
        "server-side resume: activity since the newest handle is not a boundary",
        server_resume=True,
        requests=[(1.0, "rotation:requested", 100.0)],
        events=[
            (0.2, [ResumptionHandleUpdated(handle="h1", resumable=True)], True),
            (0.5, [GenerationStarted(generation_id="g")], True),
        ],
        checks=[(2.0, False, None)],
    ),
    Case(
        "server-side resume: a resumable handle after the activity makes a boundary",
        server_resume=True,
        requests=[(1.0, "rotation:requested", 100.0)],
        events=[
            (0.5, [GenerationStarted(generation_id="g")], True),
            (1.5, [ResumptionHandleUpdated(handle="h2", resumable=True)], True),
        ],
        checks=[(2.0, False, soft("rotation:requested"))],
    ),
    Case(
        "server-side resume: a handle that is not resumable does not count",
        server_resume=True,
        requests=[(1.0, "rotation:requested", 100.0)],
        events=[
            (0.5, [GenerationStarted(generation_id="g")], True),
            (1.5, [ResumptionHandleUpdated(handle="h2", resumable=False)], True),
        ],
        checks=[(2.0, False, None)],
    ),
    Case(
        "an expiry already past is ignored, not a rotation storm",
        expires_in_s=-3600.0,
        checks=[(0.0, False, None), (1000.0, False, None)],
    ),
    Case(
        "an implausibly short lifetime is ignored",
        limits=Limits(min_connection_lifetime_s=30.0),
        expires_in_s=5.0,
        checks=[(0.0, False, None), (10.0, True, None)],
    ),
    Case(
        "a later announcement of an expiry already past is ignored too",
        events=[(5.0, [ProviderSessionInfo(expires_at_s=WALL0 - 1.0)], True)],
        checks=[(6.0, False, None), (500.0, True, None)],
    ),
    Case(
        "a floor between rotations, whatever the limits say",
        limits=Limits(rotate_after_s=0.1, rotate_deadline_s=0.2, min_rotation_interval_s=2.0),
        checks=[(0.5, False, None), (1.9, True, None), (2.0, True, hard("rotation:deadline"))],
    ),
    Case(
        "the provider's goAway is not held back by the floor",
        limits=Limits(min_rotation_interval_s=2.0),
        events=[(0.5, [GoAwayReceived(time_left_ms=1000)], True)],
        checks=[(0.5, False, soft("go_away"))],
    ),
    Case(
        "a failed make-before-break attempt is retried later, even past the deadline",
        limits=Limits(rotate_after_s=10.0, rotate_deadline_s=12.0),
        failed_at=10.0,
        checks=[
            (10.0 + ROTATION_RETRY_S - 0.1, True, None),
            (10.0 + ROTATION_RETRY_S, True, hard("rotation:deadline")),
        ],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rotation_planner(case: Case) -> None:
    planner = RotationPlanner(case.limits, server_resume=case.server_resume)
    expires = WALL0 + case.expires_in_s if case.expires_in_s is not None else None
    planner.connection_opened(T0, wall_s=WALL0, expires_at_s=expires)
    inputs: list[tuple[float, int, object]] = []
    inputs += [(t, 0, (events, active)) for t, events, active in case.events]
    inputs += [(t, 1, (reason, hard_s)) for t, reason, hard_s in case.requests]
    if case.failed_at is not None:
        inputs.append((case.failed_at, 2, None))
    inputs.sort(key=lambda item: (item[0], item[1]))
    pending = list(inputs)
    for at, busy, expected in case.checks:
        while pending and pending[0][0] <= at:
            t, kind, payload = pending.pop(0)
            if kind == 0:
                events, active = payload  # type: ignore[misc]
                planner.on_events(events, T0 + t, active=active)
            elif kind == 1:
                reason, hard_s = payload  # type: ignore[misc]
                planner.request(reason, T0 + t, hard_after_s=hard_s)
            else:
                planner.attempt_failed(T0 + t)
        assert planner.due(T0 + at, busy=busy) == expected, f"at +{at} s, busy={busy}"


def test_next_deadline_is_the_next_time_the_answer_can_change() -> None:
    planner = RotationPlanner(
        Limits(rotate_after_s=360.0, rotate_deadline_s=420.0), server_resume=False
    )
    planner.connection_opened(T0, wall_s=WALL0)
    assert planner.next_deadline(T0) == T0 + 360.0
    # Past the soft time, busy: only the hard deadline can change the answer by itself.
    assert planner.due(T0 + 361.0, busy=True) is None
    assert planner.next_deadline(T0 + 361.0) == T0 + 420.0
    assert planner.next_deadline(T0 + 421.0) is None


def test_an_ignored_expiry_is_returned_for_reporting() -> None:
    planner = RotationPlanner(Limits(), server_resume=False)
    assert planner.connection_opened(T0, wall_s=WALL0, expires_at_s=WALL0) is False
    ignored = planner.on_events(
        [ProviderSessionInfo(expires_at_s=WALL0 + 1.0)], T0 + 1.0, active=True
    )
    assert ignored == [WALL0 + 1.0]
    assert (
        planner.on_events([ProviderSessionInfo(expires_at_s=WALL0 + 3600.0)], T0, active=True) == []
    )


def test_nothing_planned_has_no_deadline() -> None:
    planner = RotationPlanner(Limits(), server_resume=False)
    planner.connection_opened(T0, wall_s=WALL0)
    assert planner.next_deadline(T0) is None


def test_a_new_connection_plans_from_scratch() -> None:
    planner = RotationPlanner(Limits(rotate_after_s=60.0), server_resume=False)
    planner.connection_opened(T0, wall_s=WALL0)
    planner.request("rotation:requested", T0 + 1.0, hard_after_s=5.0)
    assert planner.due(T0 + 1.0, busy=False) == soft("rotation:requested")
    planner.connection_opened(T0 + 2.0, wall_s=WALL0 + 2.0)
    assert planner.due(T0 + 10.0, busy=False) is None
    assert planner.due(T0 + 62.0, busy=False) == soft("rotation:age")
