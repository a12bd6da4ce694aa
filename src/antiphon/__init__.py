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
    Backoff,
    Intensity,
    Session,
    SessionStatistics,
    Tool,
    open_session,
    resume_session,
    tool,
)
from .errors import (
    AntiphonError,
    CodecError,
    ConnectionLostError,
    InvalidArgument,
    InvalidArgumentType,
    InvalidAudio,
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
from .events import (
    AssistantAudio,
    AssistantText,
    ProviderNotice,
    Reconnected,
    ReplyEnded,
    ReplyStarted,
    SessionEnded,
    SessionEvent,
    ToolCallFinished,
    ToolCallRequested,
    UserSpeechStarted,
    UserSpeechStopped,
    UserTranscript,
)
from .journal import Durability, FileJournal, Journal, MemoryJournal
from .protocol import ToolOutcome, ToolSpec

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
    "InvalidArgument",
    "InvalidArgumentType",
    "InvalidAudio",
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
    "ToolCallFinished",
    "ToolCallRequested",
    "ToolError",
    "ToolOutcome",
    "ToolSpec",
    "UserSpeechStarted",
    "UserSpeechStopped",
    "UserTranscript",
    "__version__",
    "open_session",
    "providers",
    "resume_session",
    "tool",
]
