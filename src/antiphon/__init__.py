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
    Progress,
    Session,
    SessionStatistics,
    Tool,
    open_session,
    resume_session,
    tool,
    watch_expired,
)
from .errors import (
    AntiphonError,
    CodecError,
    ConnectionLostError,
    InvalidArgument,
    InvalidArgumentType,
    InvalidAudio,
    JournalBusy,
    JournalConflict,
    JournalCorrupt,
    JournalError,
    LeaseLost,
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
    AudioOverrun,
    ProviderNotice,
    RateLimitsUpdated,
    Reconnected,
    ReplyEnded,
    ReplyStarted,
    SessionEnded,
    SessionEvent,
    ToolApprovalDenied,
    ToolApprovalGranted,
    ToolApprovalRequested,
    ToolCallFinished,
    ToolCallProgress,
    ToolCallRequested,
    UserSpeechStarted,
    UserSpeechStopped,
    UserTranscript,
)
from .journal import Durability, FileJournal, Journal, MemoryJournal, RedisJournal
from .protocol import ToolOutcome, ToolSpec

__version__ = "0.1.0"

__all__ = [
    "AntiphonError",
    "AssistantAudio",
    "AssistantText",
    "AudioOverrun",
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
    "JournalBusy",
    "JournalConflict",
    "JournalCorrupt",
    "JournalError",
    "LeaseLost",
    "MemoryJournal",
    "NotAJournal",
    "Progress",
    "ProtocolError",
    "ProviderError",
    "ProviderNotice",
    "ProviderTimeout",
    "RateLimitsUpdated",
    "Reconnected",
    "RedisJournal",
    "ReplyEnded",
    "ReplyStarted",
    "Session",
    "SessionClosedError",
    "SessionEnded",
    "SessionEvent",
    "SessionStatistics",
    "SupervisorEscalation",
    "Tool",
    "ToolApprovalDenied",
    "ToolApprovalGranted",
    "ToolApprovalRequested",
    "ToolCallFinished",
    "ToolCallProgress",
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
    "watch_expired",
]
