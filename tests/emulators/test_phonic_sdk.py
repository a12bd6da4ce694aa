"""The Phonic emulator checked by a client nobody here wrote: the official ``phonic`` SDK.

``AsyncPhonic`` is pointed at the emulator (``PhonicEnvironment(base=..., production=...)``)
and drives whole conversations — audio, a tool call, a barge-in; and the SDK's own
reconnect after a 1012 close — while the test asserts what the emulator recorded. Where the
SDK and the emulator disagree, the SDK is right: these tests are the emulator's contract.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import pytest

from antiphon.emulators._base import ClosedBy, Fault, Trigger
from antiphon.emulators._model import DEFAULT_SCRIPT, conversation_audio, silence, utterance_audio
from antiphon.emulators.phonic import PhonicEmulator

phonic = pytest.importorskip("phonic")
from phonic import AsyncPhonic, PhonicEnvironment  # noqa: E402
from phonic.types import (  # noqa: E402
    AudioChunkPayload,
    ConfigPayload,
    InlineWebSocketTool,
    ToolCallOutputPayload,
)

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.e2e,
    # The SDK dials with websockets' legacy client.
    pytest.mark.filterwarnings("ignore:websockets.legacy is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:websockets.exceptions.InvalidStatusCode:DeprecationWarning"),
]


@pytest.fixture
def anyio_backend() -> str:
    # The SDK and the emulator are asyncio-only.
    return "asyncio"


RATE = 16_000
FRAME = 640  # 20 ms of 16 kHz PCM16 mono
WEATHER_TOOL = InlineWebSocketTool(
    type="custom_websocket",
    tool_schema={
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    execution_mode="sync",
    tool_call_output_timeout_ms=10_000,
)


class Client:
    """An SDK socket, every message it yielded, and the audio sent through it."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.messages: list[Any] = []
        self.sent: list[bytes] = []
        self._changed = asyncio.Event()

    def of(self, kind: str) -> list[Any]:
        return [m for m in self.messages if getattr(m, "type", None) == kind]

    async def read(self, on_tool_call: Callable[[Any], Any] | None = None) -> None:
        async for message in self.sock:
            self.messages.append(message)
            self._changed.set()
            if on_tool_call is not None and getattr(message, "type", None) == "tool_call":
                await on_tool_call(message)

    async def wait(self, kind: str, count: int = 1) -> Any:
        async with asyncio.timeout(10.0):  # a guard against hangs; the wait is on the message
            while len(self.of(kind)) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.of(kind)[count - 1]

    async def speak(self, pcm: bytes) -> None:
        for i in range(0, len(pcm), FRAME):
            frame = pcm[i : i + FRAME]
            # No iso_date_time: the SDK (0.32.42) cannot serialise the datetime it types it as.
            payload = AudioChunkPayload(audio=base64.b64encode(frame).decode())
            await self.sock.send_audio_chunk(payload)
            self.sent.append(frame)
            await asyncio.sleep(0)


def utterance(k: int, seed: int) -> bytes:
    return utterance_audio(k, sample_rate=RATE, seed=seed) + silence(
        0.5, sample_rate=RATE, seed=seed + 1
    )


async def test_a_whole_conversation_through_the_official_sdk() -> None:
    async with PhonicEmulator(reply_pacing=0.25) as emu:
        client = AsyncPhonic(
            api_key="test",
            environment=PhonicEnvironment(base=emu.base_url, production=emu.ws_base),
        )
        async with client.conversations.connect() as sock:
            c = Client(sock)

            async def answer(call: Any) -> None:
                await sock.send_tool_call_output(
                    ToolCallOutputPayload(tool_call_id=call.tool_call_id, output={"sky": "clear"})
                )

            reader = asyncio.create_task(c.read(answer))
            await sock.send_config(
                ConfigPayload(
                    system_prompt="Be brief.",
                    voice_id="sabrina",
                    input_format="pcm_16000",
                    output_format="pcm_16000",
                    tools=[WEATHER_TOOL],
                )
            )
            await c.wait("ready_to_start_conversation")
            # 1. An audio turn and its reply.
            await c.speak(utterance(0, seed=1))
            await c.wait("assistant_finished_speaking", 1)
            # 2. A tool call, answered through the SDK, and the spoken follow-up.
            await c.speak(utterance(1, seed=3))
            call = await c.wait("tool_call")
            await c.wait("assistant_finished_speaking", 2)
            # 3. A long reply, barged into after its fifth audio chunk.
            await c.speak(utterance(2, seed=5))
            started = len(c.messages)
            await c.wait("assistant_started_speaking", 3)

            def story_chunks() -> int:
                return len([m for m in c.messages[started:] if m.type == "audio_chunk" and m.text])

            async with asyncio.timeout(10.0):
                while story_chunks() < 5:
                    c._changed.clear()
                    await c._changed.wait()
            await c.speak(utterance(0, seed=7))
            cut = await c.wait("interrupted_response")
            await c.wait("assistant_finished_speaking", 3)
            reader.cancel()
        await emu.wait_idle()

    (record,) = emu.records
    # What the SDK sent, as the emulator received it.
    assert record.headers["Authorization"] == "<present>"
    assert record.request_path == "/v1/sts/ws"
    assert record.rejected == []
    assert record.config is not None
    assert record.config["system_prompt"] == "Be brief."
    assert record.config["voice_id"] == "sabrina"
    (tool,) = record.config["tools"]
    assert tool["tool_schema"]["function"]["name"] == "get_weather"
    assert record.audio == c.sent  # every chunk, in order, none rejected
    assert record.tool_outputs == [
        {"type": "tool_call_output", "tool_call_id": call.tool_call_id, "output": {"sky": "clear"}}
    ]
    assert call.tool_name == "get_weather"
    assert call.parameters == {"city": "Paris"}
    # The barge-in: the story was cut, and what had been said came back afterwards.
    story = DEFAULT_SCRIPT.utterances[2].reply
    assert cut.text
    assert story.startswith(cut.text)
    assert cut.text != story
    assert [m.text for m in c.of("input_text")] == [
        DEFAULT_SCRIPT.utterances[k].user_text for k in (0, 1, 2, 0)
    ]
    conversation = emu.conversations[record.conversation_id]
    assert {"role": "assistant", "text": cut.text, "interrupted": True} in conversation.items
    assert record.closed_by is ClosedBy.CLIENT
    assert record.close_code == 1000


async def test_the_sdk_reconnects_inside_the_grace_window() -> None:
    pcm, _ = conversation_audio([0, 3], sample_rate=RATE, gap_s=0.6, seed=11)
    async with PhonicEmulator(reply_pacing=0.0) as emu:
        # The edge proxy restarts after the first reply: close 1012 "restarting".
        emu.fault(Fault.close(1012, "restarting"), at=Trigger.turn_end())
        client = AsyncPhonic(
            api_key="test",
            environment=PhonicEnvironment(base=emu.base_url, production=emu.ws_base),
            reconnect_conversation_on_abnormal_disconnect=True,
        )
        async with client.conversations.connect() as sock:
            c = Client(sock)
            reader = asyncio.create_task(c.read())
            await sock.send_config(
                ConfigPayload(
                    system_prompt="Be brief.", input_format="pcm_16000", output_format="pcm_16000"
                )
            )
            await c.wait("ready_to_start_conversation")
            half = len(pcm) // 2 // FRAME * FRAME
            await c.speak(pcm[:half])
            await c.wait("assistant_finished_speaking", 1)
            await emu.wait_for(lambda: len(emu.records) == 2)
            await c.wait("conversation_reconnected")
            await c.speak(pcm[half:])
            await c.wait("assistant_finished_speaking", 2)
            reader.cancel()
        await emu.wait_idle()

    first, second = emu.records
    assert (first.close_code, first.close_reason) == (1012, "restarting")
    assert first.closed_by is ClosedBy.FAULT
    # The SDK dialled again with the conversation id, and the conversation went on.
    assert second.reconnect_conv_id == first.conversation_id
    assert second.resumed
    assert second.conversation_id == first.conversation_id
    assert second.frames_of_type("config") == []
    texts = [m.text for m in c.of("input_text")]
    assert texts == [DEFAULT_SCRIPT.utterances[k].user_text for k in (0, 3)]
