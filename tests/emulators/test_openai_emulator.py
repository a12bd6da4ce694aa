"""The OpenAI Realtime / xAI emulator, driven by a raw websocket client (asyncio only)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from antiphon.emulators import (
    ClosedBy,
    Fault,
    OpenAIEmulator,
    Script,
    Trigger,
    conversation_audio,
    silence,
    user_transcript,
)

pytestmark = pytest.mark.anyio

RATE = 24_000
FRAME = RATE * 20 // 1000 * 2  # bytes per 20 ms append

GA_TURN_ORDER = [
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "conversation.item.added",
    "conversation.item.done",
    "response.created",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
    "response.output_audio.done",
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "conversation.item.done",
    "response.output_item.done",
    "response.done",
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the emulator is built on websockets' asyncio server


@asynccontextmanager
async def client(
    emu: OpenAIEmulator, model: str = "gpt-realtime"
) -> AsyncIterator[ClientConnection]:
    async with connect(
        f"{emu.url}?model={model}", additional_headers={"Authorization": "Bearer test"}
    ) as ws:
        yield ws


async def recv(ws: ClientConnection, wait: float = 2.0) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), wait)
    event: dict[str, Any] = json.loads(raw)
    return event


async def until(
    ws: ClientConnection, kind: str, seen: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    while True:
        event = await recv(ws)
        if seen is not None:
            seen.append(event)
        if event["type"] == kind:
            return event


def append(pcm: bytes) -> str:
    return json.dumps(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}
    )


async def send_audio(ws: ClientConnection, pcm: bytes) -> None:
    for i in range(0, len(pcm), FRAME):
        await ws.send(append(pcm[i : i + FRAME]))


async def enable_transcription(ws: ClientConnection) -> None:
    await ws.send(
        json.dumps(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"transcription": {"model": "gpt-realtime-whisper"}}},
                },
            }
        )
    )
    await until(ws, "session.updated")


def _without_deltas(types: list[str]) -> list[str]:
    skip = (
        "response.output_audio.delta",
        "response.output_audio_transcript.delta",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
    )
    return [t for t in types if t not in skip]


async def test_server_vad_turn_follows_ga_order() -> None:
    async with OpenAIEmulator() as emu, client(emu) as ws:
        created = await recv(ws)
        assert created["type"] == "session.created"
        assert created["session"]["expires_at"] > 0
        await enable_transcription(ws)
        pcm, bounds = conversation_audio([0], sample_rate=RATE)
        await send_audio(ws, pcm)
        seen: list[dict[str, Any]] = []
        done = await until(ws, "response.done", seen)
        types = [e["type"] for e in seen]
        assert _without_deltas(types) == GA_TURN_ORDER
        started = seen[0]
        assert abs(started["audio_start_ms"] - bounds[0][0] * 1000 // RATE) <= 20
        completed = [
            e for e in seen if e["type"] == "conversation.item.input_audio_transcription.completed"
        ]
        assert [e["transcript"] for e in completed] == [user_transcript(0)]
        transcript = "".join(
            e["delta"] for e in seen if e["type"] == "response.output_audio_transcript.delta"
        )
        assert transcript == "Hi! How can I help you today?"
        audio = b"".join(
            base64.b64decode(e["delta"]) for e in seen if e["type"] == "response.output_audio.delta"
        )
        assert len(audio) == 7 * RATE // 4 * 2  # 7 words, 250 ms each
        assert done["response"]["status"] == "completed"
        assert done["response"]["output"][0]["content"][0]["transcript"] == transcript
    record = emu.records[0]
    assert record.headers["Authorization"] == "<present>"
    assert record.request_path == "/v1/realtime?model=gpt-realtime"
    assert [it["role"] for it in record.items] == ["user", "assistant"]
    assert record.items[0]["content"][0]["transcript"] == "Hello there."


async def test_record_holds_every_chunk_once_in_order() -> None:
    async with OpenAIEmulator() as emu, client(emu) as ws:
        pcm, _ = conversation_audio([0, 3], sample_rate=RATE, seed=5)
        chunks = [pcm[i : i + FRAME] for i in range(0, len(pcm), FRAME)]
        for chunk in chunks:
            await ws.send(append(chunk))
        await until(ws, "response.done")
        await until(ws, "response.done")
    assert emu.received_audio() == chunks
    assert emu.records[0].audio == chunks
    assert emu.records[0].audio_bytes == pcm
    appends = [f for f in emu.records[0].frames if f["type"] == "input_audio_buffer.append"]
    assert len(appends) == len(chunks)


async def test_reply_every_second_of_input_for_a_continuous_conversation() -> None:
    script = Script(utterances={}, idle_reply="one two three four")
    emu = OpenAIEmulator(script=script, chunk_ms=100, reply_every_ms=1000)
    async with emu, client(emu) as ws:
        second = silence(1.0, sample_rate=RATE, seed=3)
        for _ in range(2):
            await send_audio(ws, second)
            seen: list[dict[str, Any]] = []
            done = await until(ws, "response.done", seen)
            assert done["response"]["status"] == "completed"
            types = [e["type"] for e in seen]
            # One second of reply: ten 100 ms audio deltas, a transcript delta per word.
            assert types.count("response.output_audio.delta") == 10
            assert types.count("response.output_audio_transcript.delta") == 4
            assert "input_audio_buffer.speech_started" not in types
        await send_audio(ws, second[: len(second) // 2])  # half a second: no reply yet
        await ws.send(json.dumps({"type": "response.cancel"}))
        error = await until(ws, "error")  # nothing to cancel: no response was started
        assert error["error"]["code"] == "response_cancel_not_active"


async def test_tool_call_round_uses_the_output() -> None:
    async with OpenAIEmulator() as emu, client(emu) as ws:
        pcm, _ = conversation_audio([1], sample_rate=RATE)
        await send_audio(ws, pcm)
        seen: list[dict[str, Any]] = []
        done = await until(ws, "response.done", seen)
        args_done = next(e for e in seen if e["type"] == "response.function_call_arguments.done")
        deltas = [e for e in seen if e["type"] == "response.function_call_arguments.delta"]
        assert "".join(d["delta"] for d in deltas) == args_done["arguments"]
        assert args_done["name"] == "get_weather"
        assert json.loads(args_done["arguments"]) == {"city": "Paris"}
        assert done["response"]["status"] == "completed"
        assert done["response"]["output"][0]["type"] == "function_call"
        call_id = args_done["call_id"]
        await ws.send(
            json.dumps(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "function_call_output",
                        "call_id": call_id,
                        "output": "sunny, 22 degrees",
                    },
                }
            )
        )
        added = await until(ws, "conversation.item.added")
        assert added["item"]["type"] == "function_call_output"
        await ws.send(json.dumps({"type": "response.create"}))
        follow: list[dict[str, Any]] = []
        done2 = await until(ws, "response.done", follow)
        text = done2["response"]["output"][0]["content"][0]["transcript"]
        assert text == "The weather in Paris is sunny, 22 degrees."
    kinds = [it["type"] for it in emu.records[0].items]
    assert kinds == ["message", "function_call", "function_call_output", "message"]


async def test_history_seeding_is_recorded_and_answered() -> None:
    async with OpenAIEmulator() as emu, client(emu) as ws:
        items: list[dict[str, Any]] = [
            {"type": "message", "role": "user",
             "content": [{"type": "input_text", "text": "What's the weather in Paris?"}]},
            {"type": "function_call", "call_id": "call_prev", "name": "get_weather",
             "arguments": "{\"city\": \"Paris\"}"},
            {"type": "function_call_output", "call_id": "call_prev", "output": "rainy"},
        ]  # fmt: skip
        for item in items:
            await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
        await ws.send(json.dumps({"type": "response.create"}))
        done = await until(ws, "response.done")
        assert done["response"]["output"][0]["content"][0]["transcript"] == (
            "The weather in Paris is rainy."
        )
    record = emu.records[0]
    assert [it["type"] for it in record.items[:3]] == [i["type"] for i in items]
    assert record.items[1]["call_id"] == "call_prev"


async def test_barge_in_cancels_a_long_reply() -> None:
    async with OpenAIEmulator(reply_pacing=1.0) as emu, client(emu) as ws:
        pcm, _ = conversation_audio([2], sample_rate=RATE, gap_s=0.5)
        await send_audio(ws, pcm)
        await until(ws, "response.output_audio.delta")
        interrupt, _ = conversation_audio([0], sample_rate=RATE, gap_s=0.4, seed=1)
        await send_audio(ws, interrupt)
        seen: list[dict[str, Any]] = []
        cancelled = await until(ws, "response.done", seen)
        assert cancelled["response"]["status"] == "cancelled"
        assert cancelled["response"]["status_details"]["reason"] == "turn_detected"
        types = [e["type"] for e in seen]
        assert types.index("input_audio_buffer.speech_started") < len(types) - 1
        spoken = cancelled["response"]["output"][0]["content"][0]["transcript"]
        assert spoken
        assert len(spoken) < len("Once upon a time, a little robot lived by the sea.")
        # The interrupting utterance is answered next.
        answer = await until(ws, "response.done")
        assert answer["response"]["output"][0]["content"][0]["transcript"] == (
            "Hi! How can I help you today?"
        )
        assert emu.records[0].items[1]["status"] == "incomplete"


async def test_client_cancel_and_truncate() -> None:
    async with OpenAIEmulator(reply_pacing=1.0) as emu, client(emu) as ws:
        await ws.send(json.dumps({"type": "response.cancel"}))
        err = await until(ws, "error")
        assert err["error"]["code"] == "response_cancel_not_active"
        await ws.send(
            json.dumps(
                {"type": "conversation.item.create",
                 "item": {"type": "message", "role": "user",
                          "content": [{"type": "input_text", "text": "Tell me a story."}]}}
            )
        )  # fmt: skip
        await ws.send(json.dumps({"type": "response.create"}))
        delta = await until(ws, "response.output_audio.delta")
        for _ in range(8):  # 360 ms of audio sent
            await until(ws, "response.output_audio.delta")
        await ws.send(json.dumps({"type": "response.create"}))
        busy = await until(ws, "error")
        assert busy["error"]["code"] == "conversation_already_has_active_response"
        await ws.send(json.dumps({"type": "response.cancel"}))
        done = await until(ws, "response.done")
        assert done["response"]["status_details"]["reason"] == "client_cancelled"
        await ws.send(
            json.dumps(
                {"type": "conversation.item.truncate", "item_id": delta["item_id"],
                 "content_index": 0, "audio_end_ms": 300}
            )
        )  # fmt: skip
        truncated = await until(ws, "conversation.item.truncated")
        assert truncated["audio_end_ms"] == 300
    assert emu.records[0].items[-1]["content"][0]["transcript"] == "Once upon"


async def test_session_duration_expires_with_1001() -> None:
    async with OpenAIEmulator(session_duration_s=0.5) as emu, client(emu) as ws:
        created = await recv(ws)
        err = await until(ws, "error")
        assert err["error"]["code"] == "session_expired"
        assert created["type"] == "session.created"
        with pytest.raises(ConnectionClosed):
            await recv(ws)
        assert ws.close_code == 1001
        assert ws.close_reason == "Your session hit the maximum duration of 0.5 seconds."
    assert emu.records[0].closed_by is ClosedBy.SERVER  # the cap, not a fault
    assert emu.records[0].close_code == 1001


async def test_missing_key_is_rejected_with_401() -> None:
    async with OpenAIEmulator() as emu:
        with pytest.raises(InvalidStatus) as info:
            async with connect(emu.url + "?model=gpt-realtime"):
                pass
        assert info.value.response.status_code == 401
        assert emu.records == []


async def test_drop_is_an_abnormal_close() -> None:
    async with OpenAIEmulator() as emu, client(emu) as ws:
        await recv(ws)
        emu.fault(Fault.drop())
        with pytest.raises(ConnectionClosed):
            await recv(ws)
        assert ws.close_code == 1006
    assert emu.records[0].closed_by is ClosedBy.FAULT
    assert emu.records[0].faults == [Fault.drop()]


async def test_malformed_unknown_and_bad_client_frames() -> None:
    async with OpenAIEmulator() as emu, client(emu) as ws:
        await recv(ws)
        emu.fault(Fault.malformed())
        raw = await asyncio.wait_for(ws.recv(), 2)
        with pytest.raises(json.JSONDecodeError):
            json.loads(raw)
        emu.fault(Fault.unknown())
        unknown = await recv(ws)
        assert unknown["type"] == "emulator.unknown_event"
        # Bad frames from the client get errors; the connection stays usable.
        await ws.send("{not json")
        err = await recv(ws)
        assert err["type"] == "error"
        assert err["error"]["type"] == "invalid_request_error"
        await ws.send(json.dumps({"type": "no.such.event", "event_id": "evt_1"}))
        err = await recv(ws)
        assert (err["error"]["param"], err["error"]["event_id"]) == ("type", "evt_1")
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": "@@@"}))
        assert (await recv(ws))["type"] == "error"
        await ws.send(json.dumps({"type": "conversation.item.create", "item": {}}))
        assert (await recv(ws))["type"] == "error"
        await ws.send(json.dumps({"type": "session.update", "session": {"instructions": "x"}}))
        updated = await recv(ws)
        assert updated["session"]["instructions"] == "x"
    assert emu.records[0].frames[0] == {"_malformed": "{not json"}


async def test_stall_holds_back_every_frame() -> None:
    async with OpenAIEmulator() as emu, client(emu) as ws:
        await recv(ws)
        emu.fault(Fault.stall(0.4))
        await ws.send(json.dumps({"type": "session.update", "session": {"instructions": "y"}}))
        with pytest.raises(TimeoutError):
            await recv(ws, wait=0.25)
        assert (await recv(ws, wait=1.0))["type"] == "session.updated"
        assert emu.records[0].frames[0]["type"] == "session.update"  # received meanwhile


async def test_close_with_code() -> None:
    async with OpenAIEmulator() as emu, client(emu) as ws:
        await recv(ws)
        emu.fault(Fault.close(4000, "bye"))
        with pytest.raises(ConnectionClosed):
            await recv(ws)
        assert (ws.close_code, ws.close_reason) == (4000, "bye")


async def test_scheduled_drop_during_generation() -> None:
    pcm, _ = conversation_audio([0], sample_rate=RATE)
    async with OpenAIEmulator() as emu:
        emu.fault(Fault.drop(), at=Trigger.reply_audio(3))
        async with client(emu) as ws:
            await send_audio(ws, pcm)
            seen: list[dict[str, Any]] = []
            with pytest.raises(ConnectionClosed):
                await until(ws, "response.done", seen)
            assert ws.close_code == 1006
            assert sum(e["type"] == "response.output_audio.delta" for e in seen) == 3
        # A second connection is not affected: the fault fired once.
        async with client(emu) as ws2:
            await send_audio(ws2, pcm)
            done = await until(ws2, "response.done")
            assert done["response"]["status"] == "completed"
    assert len(emu.records) == 2
    assert emu.records[0].closed_by is ClosedBy.FAULT


async def test_scheduled_drop_during_speech_and_pending_tool_call() -> None:
    pcm, _ = conversation_audio([1], sample_rate=RATE)
    async with OpenAIEmulator() as emu:
        emu.fault(Fault.drop(), at=Trigger.user_speech())
        async with client(emu) as ws:
            with contextlib.suppress(ConnectionClosed):
                await send_audio(ws, pcm)  # may fail once the socket is gone
            with pytest.raises(ConnectionClosed):
                await until(ws, "never")
            assert ws.close_code == 1006
    record = emu.records[0]
    assert record.closed_by is ClosedBy.FAULT
    assert record.sent[-1]["type"] == "input_audio_buffer.speech_started"
    assert len(record.audio) < len(pcm) // FRAME  # the user was still speaking
    async with OpenAIEmulator() as emu:
        emu.fault(Fault.drop(), at=Trigger.tool_call())
        async with client(emu) as ws:
            await send_audio(ws, pcm)
            seen2: list[dict[str, Any]] = []
            with pytest.raises(ConnectionClosed):
                await until(ws, "never", seen2)
            assert seen2[-1]["type"] == "response.done"
            assert seen2[-1]["response"]["output"][0]["type"] == "function_call"
    assert emu.records[0].close_code == 1006


async def test_refuse_error_and_expire_faults_in_openai_form() -> None:
    pcm, _ = conversation_audio([0], sample_rate=RATE)
    async with OpenAIEmulator() as emu:
        emu.fault(Fault.refuse())
        with pytest.raises(InvalidStatus) as info:
            async with client(emu):
                pass
        assert info.value.response.status_code == 503
        assert emu.records == []  # a refused upgrade is no connection
        emu.fault(Fault.error("rate_limit_exceeded", "Slow down."), at=Trigger.connect())
        emu.fault(Fault.expire(), at=Trigger.turn_end())
        async with client(emu) as ws:
            assert (await recv(ws))["type"] == "session.created"
            error = (await recv(ws))["error"]
            assert (error["type"], error["code"], error["message"]) == (
                "server_error",
                "rate_limit_exceeded",
                "Slow down.",
            )
            await send_audio(ws, pcm)
            seen: list[dict[str, Any]] = []
            with pytest.raises(ConnectionClosed):
                await until(ws, "never", seen)
            assert [e["type"] for e in seen[-2:]] == ["response.done", "error"]
            assert seen[-1]["error"]["code"] == "session_expired"
            assert ws.close_code == 1001
    (record,) = emu.records
    assert (record.closed_by, record.close_code) == (ClosedBy.FAULT, 1001)
    assert record.faults == [Fault.error("rate_limit_exceeded", "Slow down."), Fault.expire()]
    with pytest.raises(ValueError, match="no recoverable flag"):
        emu.fault(Fault.error(recoverable=False), at=Trigger.turn_end())
    with pytest.raises(ValueError, match="cannot inject 'go_away'"):
        emu.fault(Fault.go_away(1.0), at=Trigger.turn_end())


async def test_xai_variant() -> None:
    async with OpenAIEmulator(variant="xai") as emu, client(emu, "grok-voice-latest") as ws:
        created = await recv(ws)
        assert created["session"]["turn_detection"] == {"type": None}
        assert "expires_at" not in created["session"]
        assert (await recv(ws))["type"] == "conversation.created"
        assert (await recv(ws))["type"] == "ping"
        pcm, _ = conversation_audio([0], sample_rate=RATE)
        # Manual turn detection by default: speech is not detected.
        await send_audio(ws, pcm)
        with pytest.raises(TimeoutError):
            await recv(ws, wait=0.2)
        await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
        assert (await recv(ws))["type"] == "input_audio_buffer.cleared"
        await ws.send(
            json.dumps(
                {
                    "type": "session.update",
                    "session": {
                        "turn_detection": {"type": "server_vad"},
                        "tools": [{"type": "function", "name": "get_weather", "parameters": {}}],
                    },
                }
            )
        )
        updated = await recv(ws)
        assert updated["type"] == "session.updated"
        assert updated["session"]["tools"][0]["function"]["name"] == "get_weather"
        assert updated["session"]["input_audio_format"] == "not specified"
        await send_audio(ws, pcm)
        seen: list[dict[str, Any]] = []
        done = await until(ws, "response.done", seen)
        types = [e["type"] for e in seen]
        assert "conversation.item.done" not in types
        assert types[:2] == ["input_audio_buffer.speech_started", "conversation.item.added"]
        assert all("previous_item_id" in e for e in seen)
        end = [t for t in types if t.endswith(".done")]
        assert end[-5:] == [
            "response.output_audio_transcript.done",
            "response.content_part.done",
            "response.output_audio.done",
            "response.output_item.done",
            "response.done",
        ]
        assert "usage" in done
        assert done["response_id"] == done["response"]["id"]
        final = [
            e for e in seen if e["type"] == "conversation.item.input_audio_transcription.completed"
        ]
        assert final[-1]["transcript"] == "Hello there."
        assert final[-1]["status"] == "completed"
        await ws.send(
            json.dumps({"type": "conversation.item.truncate", "item_id": "x", "audio_end_ms": 1})
        )
        assert (await recv(ws))["type"] == "error"


def test_cli_prints_url_and_stops_on_sigterm() -> None:
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "antiphon.emulators", "openai", "--port", "0", "--variant", "xai"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["url"].startswith("ws://127.0.0.1:")
        assert info["url"].endswith("/v1/realtime")
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


async def test_manual_commit_and_text_modality() -> None:
    async with OpenAIEmulator() as emu, client(emu) as ws:
        await recv(ws)
        await ws.send(
            json.dumps(
                {
                    "type": "session.update",
                    "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
                }
            )
        )
        updated = await until(ws, "session.updated")
        assert updated["session"]["audio"]["input"]["turn_detection"] is None
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        assert (await until(ws, "error"))["error"]["code"] == "input_audio_buffer_commit_empty"
        pcm, _ = conversation_audio([3], sample_rate=RATE, gap_s=0.3)
        await send_audio(ws, pcm)
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        seen: list[dict[str, Any]] = []
        await until(ws, "conversation.item.done", seen)
        assert [e["type"] for e in seen] == [
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
        ]
        await ws.send(
            json.dumps({"type": "response.create", "response": {"output_modalities": ["text"]}})
        )
        text_done = await until(ws, "response.output_text.done")
        assert text_done["text"] == "Goodbye!"
        done = await until(ws, "response.done")
        assert done["response"]["output"][0]["content"][0] == {
            "type": "output_text",
            "text": "Goodbye!",
        }
    assert emu.records[0].items[0]["content"][0]["transcript"] == "Thank you, goodbye."
