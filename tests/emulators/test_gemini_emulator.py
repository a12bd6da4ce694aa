"""The Gemini Live emulator, reached by the unmodified google-genai client over TLS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from google.genai.live import AsyncSession
from websockets.exceptions import InvalidStatus

from antiphon.emulators import ClosedBy, Fault, Trigger
from antiphon.emulators._model import (
    conversation_audio,
    reply_audio,
    user_transcript,
)
from antiphon.emulators.gemini import GeminiEmulator

pytestmark = pytest.mark.anyio

RATE = 16_000
CHUNK = RATE * 40 // 1000 * 2  # 40 ms of 16 kHz PCM16
WEATHER_TOOL = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            description="Weather for a city.",
            parameters=types.Schema(
                type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}
            ),
        )
    ]
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # google-genai is asyncio-only


def make_client(emu: GeminiEmulator) -> genai.Client:
    return genai.Client(
        api_key="test-key",
        http_options=types.HttpOptions(
            base_url=emu.base_url,
            api_version="v1beta",
            async_client_args={"ssl": emu.ssl_context_for_client(), "ping_interval": None},
        ),
    )


def config(handle: str | None = None, **extra: Any) -> types.LiveConnectConfig:
    return types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        input_audio_transcription=types.AudioTranscriptionConfig(),
        output_audio_transcription=types.AudioTranscriptionConfig(),
        session_resumption=types.SessionResumptionConfig(handle=handle),
        tools=[WEATHER_TOOL],
        **extra,
    )


@asynccontextmanager
async def live(
    emu: GeminiEmulator, handle: str | None = None, **extra: Any
) -> AsyncIterator[AsyncSession]:
    client = make_client(emu)
    async with client.aio.live.connect(
        model="gemini-2.5-flash-native-audio-preview-09-2025", config=config(handle, **extra)
    ) as session:
        yield session


async def send_audio(session: AsyncSession, pcm: bytes) -> None:
    for i in range(0, len(pcm), CHUNK):
        blob = types.Blob(data=pcm[i : i + CHUNK], mime_type=f"audio/pcm;rate={RATE}")
        await session.send_realtime_input(audio=blob)


async def messages_until(
    session: AsyncSession, stop: Any, wait: float = 5.0
) -> list[types.LiveServerMessage]:
    """Messages until ``stop(message)`` is true (the SDK's receive() stops at turnComplete,
    so loop around it)."""
    seen: list[types.LiveServerMessage] = []
    async with asyncio.timeout(wait):
        while True:
            async for message in session.receive():
                seen.append(message)
                if stop(message):
                    return seen


def collect_into(seen: list[types.LiveServerMessage]) -> Any:
    """A stop condition that never stops, keeping every message."""

    def keep(m: types.LiveServerMessage) -> bool:
        seen.append(m)
        return False

    return keep


def resumable(m: types.LiveServerMessage) -> bool:
    return bool(m.session_resumption_update and m.session_resumption_update.resumable)


def turn_complete(m: types.LiveServerMessage) -> bool:
    return bool(m.server_content and m.server_content.turn_complete)


def utterance(k: int, seed: int = 0) -> bytes:
    pcm, _ = conversation_audio([k], sample_rate=RATE, gap_s=0.4, seed=seed)
    return pcm


def texts(seen: list[types.LiveServerMessage], field: str) -> str:
    out = []
    for m in seen:
        sc = m.server_content
        tr = getattr(sc, field, None) if sc else None
        if tr is not None and tr.text:
            out.append(tr.text)
    return "".join(out)


def audio_of(seen: list[types.LiveServerMessage]) -> bytes:
    out = b""
    for m in seen:
        sc = m.server_content
        if sc and sc.model_turn and sc.model_turn.parts:
            for part in sc.model_turn.parts:
                if part.inline_data and part.inline_data.data:
                    out += part.inline_data.data
    return out


async def test_setup_over_tls_with_resumption() -> None:
    async with GeminiEmulator() as emu, live(emu) as session:
        assert session.setup_complete is not None
        record = emu.records[0]
        assert record.api_key == "test-key"
        assert record.path.endswith(
            "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
        )
        assert record.setup is not None
        assert record.setup["model"] == "models/gemini-2.5-flash-native-audio-preview-09-2025"
        assert record.setup["sessionResumption"] == {}
        assert record.setup["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"


async def test_audio_turn_gives_transcripts_and_audio() -> None:
    async with GeminiEmulator() as emu, live(emu) as session:
        pcm = utterance(0)
        await send_audio(session, pcm)
        seen = await messages_until(session, resumable)
        expected_reply = emu.script.utterances[0].reply
        assert texts(seen, "input_transcription").strip() == user_transcript(0)
        assert texts(seen, "output_transcription") == expected_reply
        assert audio_of(seen) == b"".join(reply_audio(expected_reply, sample_rate=24_000))
        kinds = [
            "gen" if m.server_content and m.server_content.generation_complete else None
            for m in seen
        ]
        assert "gen" in kinds
        assert any(turn_complete(m) and m.usage_metadata for m in seen)
        update = seen[-1].session_resumption_update
        assert update is not None
        assert update.resumable
        assert update.new_handle
        # nothing lost or duplicated on the way in
        assert emu.records[0].audio_bytes == pcm


async def test_tool_call_round() -> None:
    async with GeminiEmulator() as emu, live(emu) as session:
        await send_audio(session, utterance(1))
        seen = await messages_until(session, lambda m: m.tool_call is not None)
        assert seen[-1].tool_call is not None
        assert seen[-1].tool_call.function_calls is not None
        (call,) = seen[-1].tool_call.function_calls
        assert (call.name, call.args) == ("get_weather", {"city": "Paris"})
        await session.send_tool_response(
            function_responses=[
                types.FunctionResponse(id=call.id, name=call.name, response={"output": "sunny"})
            ]
        )
        follow = await messages_until(session, turn_complete)
        assert texts(follow, "output_transcription") == "The weather in Paris is sunny."
        assert emu.records[0].tool_responses == [
            {"id": call.id, "name": "get_weather", "response": {"output": "sunny"}}
        ]


async def test_barge_in_cancels_pending_tool_call() -> None:
    async with GeminiEmulator() as emu, live(emu) as session:
        await send_audio(session, utterance(1))
        seen = await messages_until(session, lambda m: m.tool_call is not None)
        assert seen[-1].tool_call is not None
        assert seen[-1].tool_call.function_calls is not None
        call_id = seen[-1].tool_call.function_calls[0].id
        await send_audio(session, utterance(0, seed=5))
        after = await messages_until(
            session, lambda m: bool(m.server_content and m.server_content.interrupted)
        )
        cancels = [m.tool_call_cancellation for m in after if m.tool_call_cancellation]
        assert cancels
        assert cancels[0].ids == [call_id]
        assert emu.records[0].interruptions == 1


async def test_barge_in_interrupts_a_reply() -> None:
    # Paced at 1/10 of real time so the story is still playing when the user speaks.
    async with GeminiEmulator(realtime_factor=0.1) as emu, live(emu) as session:
        await send_audio(session, utterance(2))
        first = await messages_until(session, lambda m: bool(audio_of([m])))
        assert first
        await send_audio(session, utterance(0, seed=3))
        seen = await messages_until(
            session, lambda m: bool(m.server_content and m.server_content.interrupted)
        )
        story = emu.script.utterances[2].reply
        heard = texts(first + seen, "output_transcription")
        assert story.startswith(heard)
        assert heard != story  # cut off
        # the new speech is answered afterwards
        rest: list[types.LiveServerMessage] = []
        hello = emu.script.utterances[0].reply

        def answered(m: types.LiveServerMessage) -> bool:
            rest.append(m)
            return texts(rest, "output_transcription").endswith(hello)

        await messages_until(session, answered)
        assert emu.records[0].interruptions == 1


async def _text_turn(session: AsyncSession, text: str) -> list[types.LiveServerMessage]:
    await session.send_client_content(
        turns=types.Content(role="user", parts=[types.Part(text=text)]), turn_complete=True
    )
    return await messages_until(session, resumable)


async def test_resume_with_handle_restores_history() -> None:
    async with GeminiEmulator() as emu:
        async with live(emu) as session:
            seen = await _text_turn(session, "Hello there.")
            update = seen[-1].session_resumption_update
            assert update is not None
            handle = update.new_handle
            assert handle
        first = emu.records[0]
        async with live(emu, handle=handle) as session:
            await _text_turn(session, "Tell me a story.")
        async with asyncio.timeout(2):
            await emu.wait_idle()
        second = emu.records[1]
        assert second.resume_handle == handle
        assert second.restored_history == [
            {"role": "user", "text": "Hello there."},
            {"role": "model", "text": emu.script.utterances[0].reply},
        ]
        assert first.history == second.restored_history
        assert second.history[:2] == second.restored_history
        assert second.history[2] == {"role": "user", "text": "Tell me a story."}


async def test_stale_handle_closes_1008() -> None:
    async with GeminiEmulator() as emu:
        with pytest.raises(errors.APIError) as info:
            async with live(emu, handle="no-such-handle"):
                pass
        assert info.value.code == 1008
        assert "session not found" in str(info.value.details)


async def test_go_away_then_1011() -> None:
    async with GeminiEmulator() as emu, live(emu) as session:
        emu.fault(Fault.go_away(0.2))
        seen: list[types.LiveServerMessage] = []
        with pytest.raises(errors.APIError) as info:
            await messages_until(session, collect_into(seen), wait=3)
        assert seen[0].go_away is not None
        assert seen[0].go_away.time_left is not None
        assert seen[0].go_away.time_left == "0.2s"
        assert info.value.code == 1011
        assert "Deadline expired" in str(info.value.details)


async def test_go_away_at_turn_end_expire_and_refuse_in_gemini_form() -> None:
    async with GeminiEmulator() as emu:
        emu.fault(Fault.go_away(0.2), at=Trigger.turn_end())
        async with live(emu) as session:
            await _text_turn(session, "Hello there.")
            seen: list[types.LiveServerMessage] = []
            with pytest.raises(errors.APIError) as info:
                await messages_until(session, collect_into(seen), wait=3)
            assert seen[0].go_away is not None
            assert info.value.code == 1011
        async with live(emu) as session:
            emu.fault(Fault.expire())
            with pytest.raises(errors.APIError) as info:
                await messages_until(session, lambda m: False)
            assert info.value.code == 1011
            assert "Deadline expired" in str(info.value.details)
        emu.fault(Fault.refuse())
        with pytest.raises(InvalidStatus) as refused:
            async with live(emu):
                pass
        assert refused.value.response.status_code == 503
    assert [(r.closed_by, r.close_code) for r in emu.records] == [
        (ClosedBy.FAULT, 1011),  # the goAway's deadline
        (ClosedBy.FAULT, 1011),
    ]
    assert [r.faults for r in emu.records] == [[Fault.go_away(0.2)], [Fault.expire()]]
    with pytest.raises(ValueError, match="cannot inject 'error'"):
        emu.fault(Fault.error("x"), at=Trigger.turn_end())


async def test_first_frame_must_be_setup_and_unknown_keys_close_1007() -> None:
    async with GeminiEmulator() as emu, live(emu) as session:
        await session._ws.send('{"bogusMessage": {}}')
        with pytest.raises(errors.APIError) as info:
            await messages_until(session, lambda m: False)
        assert info.value.code == 1007
        assert "Unknown name" in str(info.value.details)


async def test_manual_activity_markers() -> None:
    rid = types.RealtimeInputConfig(
        automatic_activity_detection=types.AutomaticActivityDetection(disabled=True)
    )
    async with GeminiEmulator() as emu, live(emu, realtime_input_config=rid) as session:
        await session.send_realtime_input(activity_start=types.ActivityStart())
        await send_audio(session, utterance(0))
        await session.send_realtime_input(activity_end=types.ActivityEnd())
        seen = await messages_until(session, turn_complete)
        assert texts(seen, "output_transcription") == emu.script.utterances[0].reply
        assert emu.records[0].activity == ["start", "end"]


async def test_api_key_is_checked_when_configured() -> None:
    async with GeminiEmulator(api_keys={"right-key"}) as emu:
        with pytest.raises(errors.APIError) as info:
            async with live(emu):
                pass
        assert info.value.code == 1007
        assert emu.records[0].api_key == "test-key"
