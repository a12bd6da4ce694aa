"""The room bridge: an antiphon session in a LiveKit room, without the Agents framework.

How this works: :class:`RoomBridge` runs three tasks over one open antiphon session. *mic*
reads the user's audio (an ``rtc.AudioStream``, any rate and channel count) into
``Session.send_audio``. *events* reads the session's events: assistant audio goes to the
playout queue, the transcripts go out as LiveKit text streams on the ``lk.transcription``
topic with LiveKit's attributes, and the agent state is kept in the ``lk.agent.state``
participant attribute, so LiveKit's own front-ends show both. *playout* moves the queued
audio into the ``rtc.AudioSource`` of the published track, at the pace the source plays it.

Barge-in: when the user starts speaking over a reply, the bridge drops what is queued (its
own queue and the source's), and tells the session how much of the reply was heard: the
audio handed to the source minus what the source still held. That is ``played_ms``, so the
provider's truncation matches what the user really heard.

Only ``livekit.rtc`` is used here. What goes to the room goes through a :class:`RoomOutput`
(the default, :class:`ParticipantOutput`, is a room's local participant), so the bridge runs,
and is tested, on real ``rtc`` audio objects without a LiveKit server.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Literal, Protocol

import anyio
from livekit import rtc

from ..actors import Session
from ..errors import SessionClosedError
from ..events import (
    AssistantAudio,
    AssistantText,
    ReplyEnded,
    ReplyStarted,
    SessionEnded,
    UserSpeechStarted,
    UserTranscript,
)

logger = logging.getLogger("antiphon.livekit")

TRANSCRIPTION_TOPIC = "lk.transcription"
"""The text-stream topic LiveKit's front-ends read transcripts from."""
ATTRIBUTE_SEGMENT_ID = "lk.segment_id"
ATTRIBUTE_TRACK_ID = "lk.transcribed_track_id"
ATTRIBUTE_FINAL = "lk.transcription_final"
ATTRIBUTE_AGENT_STATE = "lk.agent.state"

AgentState = Literal["initializing", "listening", "thinking", "speaking"]


class RoomOutput(Protocol):
    """Where the bridge's transcripts and agent state go."""

    async def publish_transcript(self, text: str, attributes: dict[str, str]) -> None:
        """Send one transcript segment on the ``lk.transcription`` topic."""
        ...

    async def set_agent_state(self, state: AgentState) -> None:
        """Set the ``lk.agent.state`` attribute of the agent's participant."""
        ...


class ParticipantOutput:
    """A room's local participant as the bridge's :class:`RoomOutput`."""

    def __init__(self, participant: rtc.LocalParticipant) -> None:
        self.participant = participant

    async def publish_transcript(self, text: str, attributes: dict[str, str]) -> None:
        await self.participant.send_text(text, topic=TRANSCRIPTION_TOPIC, attributes=attributes)

    async def set_agent_state(self, state: AgentState) -> None:
        await self.participant.set_attributes({ATTRIBUTE_AGENT_STATE: state})


@dataclass
class BridgeStatistics:
    """What :meth:`RoomBridge.statistics` reports."""

    frames_in: int
    frames_out: int
    barge_ins: int
    transcripts: int
    played_ms: list[int]  # what each barge-in told the session was heard


class RoomBridge:
    """Connects one user's audio track and one agent track to an antiphon session.

    Args:
        session: An open antiphon session (``antiphon.open_session``).
        user_audio: The user's audio, e.g. ``rtc.AudioStream.from_participant(...)``.
        source: The ``rtc.AudioSource`` of the agent's published track, at the provider's
            output rate (``session.provider.limits.output_sample_rate``), mono.
        output: Where transcripts and the agent state go (default: none).
        user_track_id: The user's track sid, for the user's transcript attributes.
        agent_track_id: The agent's track sid, for the agent's transcript attributes.
    """

    def __init__(
        self,
        session: Session,
        *,
        user_audio: AsyncIterable[rtc.AudioFrameEvent],
        source: rtc.AudioSource,
        output: RoomOutput | None = None,
        user_track_id: str = "",
        agent_track_id: str = "",
    ) -> None:
        self.session = session
        self.user_audio = user_audio
        self.source = source
        self.output = output
        self.user_track_id = user_track_id
        self.agent_track_id = agent_track_id
        # Unbounded on purpose: it holds reply audio the session already has in memory, and
        # the playout task drains it at the source's real-time pace; a barge-in empties it.
        self._playout: deque[tuple[str, rtc.AudioFrame]] = deque()
        self._wake = anyio.Event()
        self._reply = ""  # the reply being played
        self._handed_ms: dict[str, float] = {}  # reply id -> ms handed to the source
        self._text: dict[str, list[str]] = {}
        self._cut: set[str] = set()  # replies a barge-in cut off
        self._stats = BridgeStatistics(
            frames_in=0, frames_out=0, barge_ins=0, transcripts=0, played_ms=[]
        )

    def statistics(self) -> BridgeStatistics:
        return self._stats

    async def run(self) -> None:
        """Run until the session ends (or the caller cancels)."""
        await self._set_state("listening")
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._mic)
            tg.start_soon(self._play)
            await self._events()
            tg.cancel_scope.cancel()

    # -- tasks -----------------------------------------------------------------------------------

    async def _mic(self) -> None:
        async for event in self.user_audio:
            frame = event.frame
            try:
                await self.session.send_audio(
                    bytes(frame.data), sample_rate=frame.sample_rate, channels=frame.num_channels
                )
            except SessionClosedError:
                return  # the session ended: the events task ends the bridge
            self._stats.frames_in += 1

    async def _play(self) -> None:
        while True:
            while self._playout:
                reply, frame = self._playout.popleft()
                await self.source.capture_frame(frame)
                if reply in self._cut:
                    # A barge-in cleared the source while this frame was being handed over.
                    self.source.clear_queue()
                    continue
                self._handed_ms[reply] = self._handed_ms.get(reply, 0.0) + frame.duration * 1000
                self._stats.frames_out += 1
            self._wake = anyio.Event()
            await self._wake.wait()

    async def _events(self) -> None:
        async for event in self.session.events():
            match event:
                case ReplyStarted():
                    self._reply = event.generation_id
                    await self._set_state("speaking")
                case AssistantAudio():
                    samples = len(event.pcm) // 2
                    frame = rtc.AudioFrame(event.pcm, event.sample_rate, 1, samples)
                    self._playout.append((event.generation_id, frame))
                    self._wake.set()
                case AssistantText():
                    self._text.setdefault(event.generation_id, []).append(event.text)
                case ReplyEnded():
                    text = "".join(self._text.pop(event.generation_id, ())) or event.text
                    if text:
                        await self._transcript(
                            text, event.generation_id, self.agent_track_id, final=True
                        )
                    await self._set_state("listening")
                case UserSpeechStarted():
                    await self._barge_in()
                case UserTranscript():
                    await self._transcript(
                        event.text, event.item_id, self.user_track_id, final=event.final
                    )
                case SessionEnded():
                    return
                case _:
                    pass

    # -- helpers ---------------------------------------------------------------------------------

    async def _barge_in(self) -> None:
        reply = self._reply
        queued_s = self.source.queued_duration
        if not reply or (not self._playout and queued_s <= 0.0):
            return  # nothing is playing: no barge-in
        self._playout.clear()
        self._cut.add(reply)
        handed = self._handed_ms.get(reply, 0.0)
        played = max(0, round(handed - queued_s * 1000))
        self.source.clear_queue()
        self._reply = ""
        self._stats.barge_ins += 1
        self._stats.played_ms.append(played)
        with contextlib.suppress(SessionClosedError):  # an ended session has nothing to cut
            await self.session.interrupt(played_ms=played)
        await self._set_state("listening")

    async def _transcript(self, text: str, segment_id: str, track_id: str, *, final: bool) -> None:
        if self.output is None or not text:
            return
        attributes = {
            ATTRIBUTE_SEGMENT_ID: segment_id,
            ATTRIBUTE_FINAL: "true" if final else "false",
        }
        if track_id:
            attributes[ATTRIBUTE_TRACK_ID] = track_id
        await self.output.publish_transcript(text, attributes)
        self._stats.transcripts += 1

    async def _set_state(self, state: AgentState) -> None:
        if self.output is not None:
            await self.output.set_agent_state(state)
