"""The runtime: the only layer that owns tasks and IO.

One module per actor — :mod:`.audio_in`, :mod:`.transport_send`, :mod:`.transport_recv`,
:mod:`.tool_executor` — plus the synchronous recorder every state change goes through
(:mod:`.recorder`), the connection manager that runs one link per epoch (:mod:`.connection`,
with :mod:`._link`, the pure rotation planner :mod:`._rotation`, tool-result delivery
:mod:`._delivery` and the reconnect report :mod:`._reconnect`), the supervisor
(:mod:`._supervisor`), the public session (:mod:`.session`) and the fleet's hook for sessions
whose worker died (:mod:`.fleet`). The app's events are defined,
purely, in :mod:`antiphon.events`.
"""

from __future__ import annotations

from ._actor import Actor, ActorStats, Envelope
from ._clock import Clock, ManualClock, SystemClock
from ._supervisor import Backoff, ChildSpec, Intensity, RestartType, Strategy, Supervisor
from ._tools import Progress, Tool, tool
from .fleet import watch_expired
from .session import Session, SessionStatistics, open_session, resume_session

__all__ = [
    "Actor",
    "ActorStats",
    "Backoff",
    "ChildSpec",
    "Clock",
    "Envelope",
    "Intensity",
    "ManualClock",
    "Progress",
    "RestartType",
    "Session",
    "SessionStatistics",
    "Strategy",
    "Supervisor",
    "SystemClock",
    "Tool",
    "open_session",
    "resume_session",
    "tool",
    "watch_expired",
]
