"""The runtime: the only layer that owns tasks and IO.

One module per actor — :mod:`.audio_in`, :mod:`.transport_send`, :mod:`.transport_recv`,
:mod:`.generation_tracker`, :mod:`.tool_executor` — plus the connection manager that runs the
transport pair of each epoch (:mod:`.connection`), the supervisor (:mod:`._supervisor`) and
the public session (:mod:`.session`).
"""

from __future__ import annotations

from ._actor import Actor, ActorStats, Envelope
from ._clock import Clock, ManualClock, SystemClock
from ._session_events import (
    AssistantAudio,
    AssistantText,
    ProviderNotice,
    Reconnected,
    ReplyEnded,
    ReplyStarted,
    SessionEnded,
    SessionEvent,
    ToolCallEnded,
    ToolCallStarted,
    UserSpeechStarted,
    UserSpeechStopped,
    UserTranscript,
)
from ._supervisor import Backoff, ChildSpec, Intensity, RestartType, Strategy, Supervisor
from ._tools import Tool, tool
from .session import Session, SessionStatistics, open_session, resume_session

__all__ = [
    "Actor",
    "ActorStats",
    "AssistantAudio",
    "AssistantText",
    "Backoff",
    "ChildSpec",
    "Clock",
    "Envelope",
    "Intensity",
    "ManualClock",
    "ProviderNotice",
    "Reconnected",
    "ReplyEnded",
    "ReplyStarted",
    "RestartType",
    "Session",
    "SessionEnded",
    "SessionEvent",
    "SessionStatistics",
    "Strategy",
    "Supervisor",
    "SystemClock",
    "Tool",
    "ToolCallEnded",
    "ToolCallStarted",
    "UserSpeechStarted",
    "UserSpeechStopped",
    "UserTranscript",
    "open_session",
    "resume_session",
    "tool",
]
