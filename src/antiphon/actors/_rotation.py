"""The rotation planner: when to move a session to a fresh provider connection. Pure.

How this works: limits known in advance are handled before they bite. A rotation is *wanted*
when the connection reaches ``limits.rotate_after_s``, nears a provider-announced expiry,
gets a ``goAway``, or the app asks; it happens at the next turn boundary (a *soft* rotation)
— or at once, whatever the turn state, at its hard deadline (``limits.rotate_deadline_s``,
the expiry itself less a margin, the ``goAway``'s time left less a margin, or the app's
deadline). A make-before-break rotation whose next connection failed to open is retried a
little later.

The planner reads no clock and does no IO: the connection manager feeds it the recorded
events and ``now`` and asks :meth:`RotationPlanner.due`; :meth:`RotationPlanner.next_deadline`
says when asking again could change the answer (like ``aioquic``'s ``get_timer()``). It also
keeps the turn facts that only events tell (the user is speaking; the newest resumable handle
covers everything since), so the turn boundary is decided here too, from what the manager
knows (``busy``: a reply open or due, tool calls or results outstanding, commands queued).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence

import msgspec

from ..adapters import Limits
from ..protocol import (
    Event,
    GenerationStarted,
    GoAwayReceived,
    ProviderSessionInfo,
    ResumptionHandleUpdated,
    ToolCallRequested,
    ToolResultDelivered,
    UserAudioCommitted,
    UserSpeechStarted,
    UserSpeechStopped,
)

# A goAway's time left is a budget, not a promise: rotate with this share of it to spare.
GO_AWAY_MARGIN = 0.2
# An app-requested rotation waits this long for a turn boundary before forcing it.
REQUESTED_ROTATION_DEADLINE_S = 10.0
# After a failed attempt to open the next connection of a make-before-break rotation, keep
# the old one and try again this much later.
ROTATION_RETRY_S = 5.0
# However a provider's expiry is announced, be gone at least this long before it when the
# turn never ends (capped at half the expiry margin for short-lived connections).
EXPIRY_HARD_MARGIN_S = 60.0

_ACTIVITY = (
    UserSpeechStarted,
    UserAudioCommitted,
    GenerationStarted,
    ToolCallRequested,
    ToolResultDelivered,
)
"""Events after which a provider's older resumption handle no longer covers the session."""


class Urgency(enum.StrEnum):
    """How a due rotation may cut the conversation."""

    SOFT = "soft"  # at a turn boundary: nothing is cut
    HARD = "hard"  # the deadline passed: an open reply may be cut


class RotationDue(msgspec.Struct, frozen=True, kw_only=True):
    """A rotation to do now: why (the reconnect cause, e.g. ``rotation:age``) and how."""

    reason: str
    urgency: Urgency


class RotationPlanner:
    """Decides when a rotation is due. See the module docstring.

    Args:
        limits: The provider's limits (rotation ages and the expiry margin).
        server_resume: The provider resumes server-side from a handle: a turn boundary then
            also needs a resumable handle newer than the last activity.
    """

    def __init__(self, limits: Limits, *, server_resume: bool) -> None:
        self._limits = limits
        self._server_resume = server_resume
        self._reason = ""
        self._soft_at = math.inf  # rotate at the first turn boundary after this
        self._hard_at = math.inf  # rotate at this time whatever the turn state
        self._retry_at = -math.inf  # no rotation before this (a failed attempt's back-off)
        self._opened_at = 0.0
        self._opened_wall_s = 0.0
        self.user_speaking = False
        self.handle_current = True  # no activity since the newest resumable handle

    # -- inputs ------------------------------------------------------------------------------

    def connection_opened(
        self, now: float, *, wall_s: float, expires_at_s: float | None = None
    ) -> bool:
        """A new connection became the active one at ``now`` (monotonic) / ``wall_s`` (unix):
        plan its rotations from scratch.

        Returns:
            False when ``expires_at_s`` was implausible and ignored (see :meth:`expires_at`).
        """
        self._reason = ""
        self._opened_at = now
        self._opened_wall_s = wall_s
        age, deadline = self._limits.rotate_after_s, self._limits.rotate_deadline_s
        self._soft_at = self._not_before_floor(now + age if age is not None else math.inf)
        self._hard_at = self._not_before_floor(now + deadline if deadline is not None else math.inf)
        return self.expires_at(expires_at_s)

    def _not_before_floor(self, t: float) -> float:
        """Planned rotations start no sooner than ``limits.min_rotation_interval_s`` after the
        connection opened (requests and ``goAway`` are the app's and provider's own call)."""
        return max(t, self._opened_at + self._limits.min_rotation_interval_s)

    def expires_at(self, expires_at_s: float | None) -> bool:
        """The provider announced that the active connection ends at ``expires_at_s`` (unix).

        Rotate ``limits.rotate_before_expiry_s`` before it at a turn boundary, but never more
        than half the connection's lifetime before it: a provider whose sessions are shorter
        than the margin must not make every new connection rotate at once (a rotation
        storm). Whatever the turn state, be gone a little before the provider cuts us off.

        Returns:
            False when the announced lifetime is shorter than
            ``limits.min_connection_lifetime_s`` (an expiry in the past, a clock far off): it
            is ignored, and the caller reports it. An ignored expiry cannot start a rotation
            storm; ``limits.min_rotation_interval_s`` is a floor between rotations anyway.
        """
        if expires_at_s is None:
            return True
        lifetime = expires_at_s - self._opened_wall_s
        if lifetime < self._limits.min_connection_lifetime_s:
            return False
        margin = min(self._limits.rotate_before_expiry_s, lifetime / 2)
        soft = self._not_before_floor(self._opened_at + lifetime - margin)
        if soft < self._soft_at:
            self._soft_at = soft
            self._reason = self._reason or "rotation:expiry"
        hard = self._opened_at + lifetime - min(EXPIRY_HARD_MARGIN_S, margin / 2)
        self._hard_at = min(self._hard_at, self._not_before_floor(hard))
        return True

    def request(self, reason: str, now: float, *, hard_after_s: float) -> None:
        """Rotate at the next turn boundary, and at the latest ``hard_after_s`` from ``now``."""
        self._reason = self._reason or reason
        self._soft_at = min(self._soft_at, now)
        self._hard_at = min(self._hard_at, now + hard_after_s)

    def on_events(self, events: Sequence[Event], now: float, *, active: bool) -> list[float]:
        """Take recorded ``events``; ``active``: they came from the active connection, so what
        they say about *the* connection applies.

        Returns:
            The announced expiries that were implausible and ignored (to be reported).
        """
        ignored: list[float] = []
        for event in events:
            if isinstance(event, _ACTIVITY):
                self.handle_current = False
            match event:
                case ResumptionHandleUpdated(resumable=True, handle=handle) if handle:
                    self.handle_current = True
                case UserSpeechStarted():
                    self.user_speaking = True
                case UserSpeechStopped() | UserAudioCommitted():
                    self.user_speaking = False
                case GoAwayReceived():
                    budget = event.time_left_ms / 1000.0
                    self.request("go_away", now, hard_after_s=budget * (1 - GO_AWAY_MARGIN))
                case ProviderSessionInfo() if active:
                    if not self.expires_at(event.expires_at_s) and event.expires_at_s is not None:
                        ignored.append(event.expires_at_s)
                case _:
                    pass
        return ignored

    def attempt_failed(self, now: float) -> None:
        """Opening the next connection failed: keep the old one, try again later."""
        self._retry_at = now + ROTATION_RETRY_S

    # -- outputs -----------------------------------------------------------------------------

    def at_turn_boundary(self, *, busy: bool) -> bool:
        """Nothing would be cut by a rotation now: the manager says nothing is ``busy`` (no
        reply open or due, no tool call or result outstanding, nothing queued), the user is
        not mid-utterance, and where the provider resumes server-side, the newest resumable
        handle covers the session (PROVIDERS 5.5)."""
        if busy or self.user_speaking:
            return False
        return self.handle_current or not self._server_resume

    def due(self, now: float, *, busy: bool) -> RotationDue | None:
        """The rotation to do at ``now``, if any."""
        if now < self._retry_at:
            return None
        if now >= self._hard_at:
            return RotationDue(reason=self._reason or "rotation:deadline", urgency=Urgency.HARD)
        if now >= self._soft_at and self.at_turn_boundary(busy=busy):
            return RotationDue(reason=self._reason or "rotation:age", urgency=Urgency.SOFT)
        return None

    def hard_deadline_passed(self, now: float) -> bool:
        """A rotation may no longer wait for a turn boundary."""
        return now >= self._hard_at

    def next_deadline(self, now: float) -> float | None:
        """The next time after ``now`` at which :meth:`due` may change its answer without a
        new event; None when only an event can change it."""
        times = [t for t in (self._soft_at, self._hard_at, self._retry_at) if now < t < math.inf]
        return min(times) if times else None
