"""Harness for LiveKit end-to-end tests: a headless ``AgentSession`` (no room, no server).

LiveKit's ``AgentSession`` runs without a room when it is given its own audio input and
output (``voice.io.AudioInput`` / ``AudioOutput``): :class:`FrameInput` yields the test's
``rtc.AudioFrame``s, :class:`PlayoutOutput` plays what the model says instantly (each segment
counts as fully played when it is flushed) and keeps every frame. The session's ``error`` and
``close`` events are recorded, so a test can assert that nothing unrecoverable was emitted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from livekit import rtc
from livekit.agents import Agent, AgentSession, llm
from livekit.agents.voice import io
from livekit.agents.voice.events import CloseEvent, ErrorEvent

FRAME_MS = 10  # LiveKit's own frame size for microphone audio


def audio_frames(pcm: bytes, sample_rate: int) -> list[rtc.AudioFrame]:
    """``pcm`` (PCM16 mono) as 10 ms ``rtc.AudioFrame``s (the tail zero-padded)."""
    step = sample_rate * FRAME_MS // 1000 * 2
    frames = []
    for i in range(0, len(pcm), step):
        chunk = pcm[i : i + step]
        chunk += bytes(step - len(chunk))
        frames.append(rtc.AudioFrame(chunk, sample_rate, 1, step // 2))
    return frames


class FrameInput(io.AudioInput):
    """The user's microphone: frames the test puts in, in order."""

    def __init__(self) -> None:
        super().__init__(label="test-input")
        self.queue: asyncio.Queue[rtc.AudioFrame] = asyncio.Queue()

    async def __anext__(self) -> rtc.AudioFrame:
        return await self.queue.get()

    def put(self, frames: list[rtc.AudioFrame]) -> None:
        for frame in frames:
            self.queue.put_nowait(frame)


class PlayoutOutput(io.AudioOutput):
    """A speaker that plays everything at once: a segment is fully heard when flushed.

    Setting ``heard_s`` models a speaker still playing: from then on a flushed segment stays
    open until the barge-in's ``clear_buffer``, which reports ``heard_s`` as played.
    """

    def __init__(self) -> None:
        super().__init__(label="test-output", capabilities=io.AudioOutputCapabilities(pause=False))
        self.frames: list[rtc.AudioFrame] = []
        self.segment_s = 0.0
        self.heard_s: float | None = None
        self.cleared = 0

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if self.segment_s == 0.0:
            self.on_playback_started(created_at=0.0)
        self.frames.append(frame)
        self.segment_s += frame.duration

    def flush(self) -> None:
        super().flush()
        if self.heard_s is not None:
            return  # still playing: the barge-in ends it
        played, self.segment_s = self.segment_s, 0.0
        self.on_playback_finished(playback_position=played, interrupted=False)

    def clear_buffer(self) -> None:
        if self._pending_playback_count == 0:
            return  # nothing captured since the last flush: no segment to finish
        self.cleared += 1
        played = self.segment_s if self.heard_s is None else min(self.heard_s, self.segment_s)
        self.segment_s, self.heard_s = 0.0, None
        self.on_playback_finished(playback_position=played, interrupted=True)


@dataclass(kw_only=True)
class AgentRun:
    """A running headless ``AgentSession`` and what it emitted."""

    session: AgentSession[Any]
    mic: FrameInput
    speaker: PlayoutOutput
    errors: list[llm.RealtimeModelError] = field(default_factory=list)
    closes: list[CloseEvent] = field(default_factory=list)

    async def wait_until(self, condition: Callable[[], bool], *, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.005)

    def unrecoverable(self) -> list[llm.RealtimeModelError]:
        return [e for e in self.errors if not e.recoverable]

    def assistant_texts(self) -> list[str]:
        return [
            m.text_content or ""
            for m in self.session.history.items
            if isinstance(m, llm.ChatMessage) and m.role == "assistant"
        ]


@asynccontextmanager
async def run_agent(model: llm.RealtimeModel, agent: Agent) -> AsyncIterator[AgentRun]:
    """Start ``agent`` in a headless ``AgentSession`` over ``model``; close it on exit."""
    session: AgentSession[Any] = AgentSession(
        llm=model,
        vad=None,
        # The realtime model detects turns; LiveKit's own detector would need a VAD model.
        turn_handling={"turn_detection": "realtime_llm"},
        # LiveKit mutes the microphone for a while when the agent first speaks (echo
        # cancellation warm-up): a test's audio is all real, and all of it must arrive.
        aec_warmup_duration=None,
    )
    mic, speaker = FrameInput(), PlayoutOutput()
    session.input.audio = mic
    session.output.audio = speaker
    run = AgentRun(session=session, mic=mic, speaker=speaker)

    def on_error(ev: ErrorEvent) -> None:
        if isinstance(ev.error, llm.RealtimeModelError):
            run.errors.append(ev.error)

    session.on("error", on_error)
    session.on("close", run.closes.append)
    await session.start(agent, record=False)
    try:
        yield run
    finally:
        await session.aclose()
        await model.aclose()
