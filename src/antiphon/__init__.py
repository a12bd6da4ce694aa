"""antiphon: a supervised, journalled runtime for realtime speech-to-speech voice sessions.

::

    async with antiphon.open_session(
        antiphon.providers.OpenAIRealtime(voice="marin"),
        instructions="You are a helpful agent.",
        tools=[get_weather],
        journal=antiphon.FileJournal("calls/"),
    ) as session:
        await session.send_audio(pcm, sample_rate=48_000)
        async for event in session.events():
            ...
"""

from __future__ import annotations

from . import providers
from .actors import (
    AssistantAudio,
    AssistantText,
    Backoff,
    Intensity,
    ProviderNotice,
    Reconnected,
    ReplyEnded,
    ReplyStarted,
    Session,
    SessionEnded,
    SessionEvent,
    SessionStatistics,
    Tool,
    ToolCallEnded,
    ToolCallStarted,
    UserSpeechStarted,
    UserSpeechStopped,
    UserTranscript,
    open_session,
    resume_session,
    tool,
)
from .errors import (
    AntiphonError,
    CodecError,
    ConnectionLostError,
    JournalConflict,
    JournalCorrupt,
    JournalError,
    NotAJournal,
    ProtocolError,
    ProviderError,
    ProviderTimeout,
    SessionClosedError,
    SupervisorEscalation,
    ToolError,
)
from .journal import Durability, FileJournal, Journal, MemoryJournal

__version__ = "0.1.0"

__all__ = [
    "AntiphonError",
    "AssistantAudio",
    "AssistantText",
    "Backoff",
    "CodecError",
    "ConnectionLostError",
    "Durability",
    "FileJournal",
    "Intensity",
    "Journal",
    "JournalConflict",
    "JournalCorrupt",
    "JournalError",
    "MemoryJournal",
    "NotAJournal",
    "ProtocolError",
    "ProviderError",
    "ProviderNotice",
    "ProviderTimeout",
    "Reconnected",
    "ReplyEnded",
    "ReplyStarted",
    "Session",
    "SessionClosedError",
    "SessionEnded",
    "SessionEvent",
    "SessionStatistics",
    "SupervisorEscalation",
    "Tool",
    "ToolCallEnded",
    "ToolCallStarted",
    "ToolError",
    "UserSpeechStarted",
    "UserSpeechStopped",
    "UserTranscript",
    "__version__",
    "open_session",
    "providers",
    "resume_session",
    "tool",
]
