"""LiveKit integration: antiphon as a LiveKit Agents realtime model, and a room bridge.

Needs the ``livekit`` extra. This package is the only part of antiphon that imports
``livekit``::

    from livekit.agents import AgentSession
    import antiphon.livekit

    session = AgentSession(llm=antiphon.livekit.RealtimeModel(antiphon.providers.NovaSonic()))

Apps that use LiveKit rooms without the Agents framework connect a session to a room with
:class:`RoomBridge` (``livekit.rtc`` only).
"""

from __future__ import annotations

from ._bridge import (
    ATTRIBUTE_AGENT_STATE,
    TRANSCRIPTION_TOPIC,
    BridgeStatistics,
    ParticipantOutput,
    RoomBridge,
    RoomOutput,
)
from ._realtime import RealtimeModel, RealtimeSession

__all__ = [
    "ATTRIBUTE_AGENT_STATE",
    "TRANSCRIPTION_TOPIC",
    "BridgeStatistics",
    "ParticipantOutput",
    "RealtimeModel",
    "RealtimeSession",
    "RoomBridge",
    "RoomOutput",
]
