"""The room bridge on real ``livekit.rtc`` audio objects, without a LiveKit server.

The user's microphone is an ``rtc.AudioSource`` behind a local track, read through an
``rtc.AudioStream`` as a room would deliver a remote track; the agent's track is the bridge's
own ``rtc.AudioSource``, read back through another ``rtc.AudioStream`` (what a listener
hears). The session is a real antiphon session against the OpenAI emulator. Transcripts and
the agent state go to a recording :class:`~antiphon.livekit.RoomOutput`.

The last test joins a real LiveKit room; it runs only when ``LIVEKIT_URL``,
``LIVEKIT_API_KEY`` and ``LIVEKIT_API_SECRET`` are set.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

pytest.importorskip("livekit.rtc")

from _helpers import frames_of_type, make_provider
from _session_log import FAST, reply_text, user_text
from livekit import rtc

import antiphon
from antiphon.emulators._model import silence, utterance_audio
from antiphon.emulators.openai import OpenAIEmulator
from antiphon.livekit import ATTRIBUTE_AGENT_STATE, RoomBridge

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def anyio_backend() -> str:
    # livekit.rtc and the websockets emulator are asyncio-only.
    return "asyncio"


@dataclass
class RecordingOutput:
    """A room that keeps what the bridge published."""

    transcripts: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    states: list[str] = field(default_factory=list)

    async def publish_transcript(self, text: str, attributes: dict[str, str]) -> None:
        self.transcripts.append((text, attributes))

    async def set_agent_state(self, state: str) -> None:
        self.states.append(state)


@dataclass(kw_only=True)
class Room:
    """The rtc objects of one bridged call, and what the listener heard."""

    emu: OpenAIEmulator
    session: antiphon.Session
    bridge: RoomBridge
    mic: rtc.AudioSource
    output: RecordingOutput
    heard: bytearray = field(default_factory=bytearray)
    sent: bytearray = field(default_factory=bytearray)  # what the bridge read from the mic

    async def say(self, pcm: bytes, rate: int) -> None:
        step = rate // 100 * 2  # 10 ms frames, as a microphone delivers them
        for i in range(0, len(pcm), step):
            chunk = pcm[i : i + step]
            chunk += bytes(step - len(chunk))
            await self.mic.capture_frame(rtc.AudioFrame(chunk, rate, 1, step // 2))

    async def wait_until(self, condition: object, *, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():  # type: ignore[operator]
                await asyncio.sleep(0.005)


async def tap(
    stream: AsyncIterator[rtc.AudioFrameEvent], into: bytearray
) -> AsyncIterator[rtc.AudioFrameEvent]:
    """``stream``, keeping a copy of its audio (the rtc pipeline may reshape what went in)."""
    async for event in stream:
        into += bytes(event.frame.data)
        yield event


@asynccontextmanager
async def bridged_call(*, mic_rate: int, reply_pacing: float = 0.0) -> AsyncIterator[Room]:
    async with OpenAIEmulator(reply_pacing=reply_pacing) as emu:
        provider = make_provider("openai", emu.url)
        async with antiphon.open_session(
            provider, journal=antiphon.MemoryJournal(), backoff=FAST
        ) as session:
            # The user's side: a microphone track, read the way a room delivers it.
            mic = rtc.AudioSource(mic_rate, 1, queue_size_ms=10_000)
            mic_track = rtc.LocalAudioTrack.create_audio_track("user-mic", mic)
            user_audio = rtc.AudioStream(mic_track, sample_rate=mic_rate, num_channels=1)
            # The agent's side: the bridge's source, and a listener on its track.
            out_rate = provider.limits.output_sample_rate
            source = rtc.AudioSource(out_rate, 1, queue_size_ms=400)
            agent_track = rtc.LocalAudioTrack.create_audio_track("agent", source)
            listener = rtc.AudioStream(agent_track, sample_rate=out_rate, num_channels=1)
            output = RecordingOutput()
            bridge = RoomBridge(
                session,
                user_audio=user_audio,
                source=source,
                output=output,
                user_track_id="TR_user",
                agent_track_id="TR_agent",
            )
            room = Room(emu=emu, session=session, bridge=bridge, mic=mic, output=output)
            room.bridge.user_audio = tap(user_audio, room.sent)

            async def listen() -> None:
                async for event in listener:
                    room.heard += bytes(event.frame.data)

            tasks = [asyncio.create_task(bridge.run()), asyncio.create_task(listen())]
            try:
                yield room
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                for closable in (user_audio, listener, mic, source):
                    await closable.aclose()


async def test_a_spoken_turn_through_the_bridge() -> None:
    pcm = utterance_audio(0, sample_rate=24_000, seed=1) + silence(0.6, sample_rate=24_000, seed=2)
    async with bridged_call(mic_rate=24_000) as room:
        await room.say(pcm, 24_000)
        await room.wait_until(lambda: any(t == reply_text(0) for t, _ in room.output.transcripts))
        sent = room.bridge.statistics().frames_in
        await room.wait_until(lambda: room.session.statistics().audio["frames_in"] >= sent)
        # The listener hears the whole reply.
        await room.wait_until(lambda: len(room.heard) >= room.bridge.statistics().frames_out * 480)
    assert (
        user_text(0),
        {
            "lk.segment_id": room.output.transcripts[0][1]["lk.segment_id"],
            "lk.transcription_final": "true",
            "lk.transcribed_track_id": "TR_user",
        },
    ) in room.output.transcripts
    agent = [
        (t, a) for t, a in room.output.transcripts if a.get("lk.transcribed_track_id") == "TR_agent"
    ]
    assert [t for t, _ in agent] == [reply_text(0)]
    assert agent[0][1]["lk.transcription_final"] == "true"
    assert room.output.states[:3] == ["listening", "speaking", "listening"]
    assert room.bridge.statistics().barge_ins == 0
    # What the microphone track delivered reached the provider, in order, byte for byte (the
    # track pads silence between words, so frames are not unique: compare the bytes).
    sent = bytes(room.sent)
    received = b"".join(room.emu.records[0].audio)
    assert len(room.emu.records) == 1
    assert len(received) >= len(pcm)
    assert received[: len(sent)] == sent[: len(received)]
    assert abs(len(sent) - len(received)) < 2 * 960


async def test_barge_in_clears_the_track_and_truncates_to_what_was_heard() -> None:
    story = utterance_audio(2, sample_rate=48_000, seed=1) + silence(
        0.6, sample_rate=48_000, seed=2
    )
    bye = utterance_audio(3, sample_rate=48_000, seed=3) + silence(0.6, sample_rate=48_000, seed=4)
    async with bridged_call(mic_rate=48_000, reply_pacing=1.0) as room:
        await room.say(story, 48_000)
        # The reply plays; the listener has heard half a second of it when the user speaks.
        await room.wait_until(lambda: len(room.heard) >= 24_000)
        delivered_ms = len(room.heard) // 48
        await room.say(bye, 48_000)
        await room.wait_until(
            lambda: bool(frames_of_type(room.emu.records[0], "conversation.item.truncate"))
        )
        await room.wait_until(lambda: any(t == reply_text(3) for t, _ in room.output.transcripts))
        stats = room.bridge.statistics()
    assert stats.barge_ins == 1
    [played] = stats.played_ms
    [truncate] = frames_of_type(room.emu.records[0], "conversation.item.truncate")
    assert truncate["audio_end_ms"] == played
    # What was heard is what the source had played out by the barge-in: at least what the
    # track had delivered when the user began, less what the source still held then (its
    # queue is 400 ms), and far less than the whole story.
    assert delivered_ms - 400 - 60 <= played
    story_ms = len(reply_text(2).split()) * 250
    assert played < story_ms / 2
    assert ATTRIBUTE_AGENT_STATE == "lk.agent.state"
    assert "speaking" in room.output.states


LIVEKIT_ENV = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")


@pytest.mark.skipif(
    not all(os.environ.get(name) for name in LIVEKIT_ENV),
    reason="needs a LiveKit server: set LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET",
)
async def test_bridge_in_a_real_room() -> None:  # pragma: no cover - needs a server
    from livekit import api

    from antiphon.livekit import ParticipantOutput

    def token(identity: str) -> str:
        grant = api.VideoGrants(room_join=True, room="antiphon-bridge-test")
        return (
            api.AccessToken(os.environ["LIVEKIT_API_KEY"], os.environ["LIVEKIT_API_SECRET"])
            .with_identity(identity)
            .with_grants(grant)
            .to_jwt()
        )

    url = os.environ["LIVEKIT_URL"]
    agent_room, user_room = rtc.Room(), rtc.Room()
    await agent_room.connect(url, token("agent"))
    await user_room.connect(url, token("user"))
    try:
        async with OpenAIEmulator() as emu:
            provider = make_provider("openai", emu.url)
            async with antiphon.open_session(provider, backoff=FAST) as session:
                mic = rtc.AudioSource(48_000, 1)
                mic_track = rtc.LocalAudioTrack.create_audio_track("mic", mic)
                await user_room.local_participant.publish_track(mic_track)
                source = rtc.AudioSource(provider.limits.output_sample_rate, 1)
                agent_track = rtc.LocalAudioTrack.create_audio_track("agent", source)
                await agent_room.local_participant.publish_track(agent_track)
                async with asyncio.timeout(10):
                    while "user" not in agent_room.remote_participants:
                        await asyncio.sleep(0.05)
                stream = rtc.AudioStream.from_participant(
                    participant=agent_room.remote_participants["user"],
                    track_source=rtc.TrackSource.SOURCE_MICROPHONE,
                    sample_rate=48_000,
                )
                bridge = RoomBridge(
                    session,
                    user_audio=stream,
                    source=source,
                    output=ParticipantOutput(agent_room.local_participant),
                )
                task = asyncio.create_task(bridge.run())
                pcm = utterance_audio(0, sample_rate=48_000, seed=1)
                pcm += silence(0.6, sample_rate=48_000, seed=2)
                for i in range(0, len(pcm), 960):
                    chunk = pcm[i : i + 960].ljust(960, b"\0")
                    await mic.capture_frame(rtc.AudioFrame(chunk, 48_000, 1, 480))
                async with asyncio.timeout(30):
                    while bridge.statistics().transcripts < 2:
                        await asyncio.sleep(0.05)
                task.cancel()
    finally:
        await user_room.disconnect()
        await agent_room.disconnect()
