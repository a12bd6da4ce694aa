"""The Phonic emulator driven by a raw websocket client: its rules, its grace window, its
faults (asyncio only, like the emulator)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from antiphon.codecs import mulaw_decode, mulaw_encode
from antiphon.emulators._base import ClosedBy, Fault, FaultKind, Trigger
from antiphon.emulators._model import DEFAULT_SCRIPT, conversation_audio, reply_audio
from antiphon.emulators.phonic import CONVERSATION_EXPIRED, CONVERSATION_UNKNOWN, PhonicEmulator

pytestmark = pytest.mark.anyio

RATE = 16_000
FRAME = 640  # 20 ms
CONFIG = {
    "type": "config",
    "system_prompt": "Be brief.",
    "input_format": "pcm_16000",
    "output_format": "pcm_16000",
    "tools": [
        {
            "type": "custom_websocket",
            "tool_schema": {"type": "function", "function": {"name": "get_weather"}},
            "tool_call_output_timeout_ms": 10_000,
        }
    ],
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Peer:
    """A raw client: the socket and every message it received."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.closed: ConnectionClosed | None = None
        self._changed = asyncio.Event()

    async def read(self) -> None:
        while True:
            try:
                text = await self.ws.recv()  # raises on every close, 1000 and 1001 included
            except ConnectionClosed as exc:
                self.closed = exc
                self._changed.set()
                return
            try:
                self.messages.append(json.loads(text))
            except ValueError:
                self.messages.append({"type": "_malformed"})
            self._changed.set()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    async def wait(self, kind: str, count: int = 1) -> dict[str, Any]:
        async with asyncio.timeout(5.0):
            while len(self.of(kind)) < count:
                if self.closed is not None:
                    raise AssertionError(f"closed before {kind} x{count}: {self.closed}")
                self._changed.clear()
                await self._changed.wait()
        return self.of(kind)[count - 1]

    async def wait_closed(self) -> ConnectionClosed:
        async with asyncio.timeout(5.0):
            while self.closed is None:
                self._changed.clear()
                await self._changed.wait()
        return self.closed

    async def send(self, **message: Any) -> None:
        await self.ws.send(json.dumps(message))

    async def audio(self, pcm: bytes, frame: int = FRAME) -> None:
        for i in range(0, len(pcm), frame):
            await self.send(type="audio_chunk", audio=base64.b64encode(pcm[i : i + frame]).decode())


@asynccontextmanager
async def peer(emu: PhonicEmulator, query: str = "", *, config: bool = True) -> AsyncIterator[Peer]:
    url = emu.url + (f"?{query}" if query else "")
    async with connect(url, additional_headers={"Authorization": "Bearer test"}) as ws:
        p = Peer(ws)
        task = asyncio.create_task(p.read())
        if config:
            await p.send(**CONFIG)
            await p.wait("ready_to_start_conversation")
        try:
            yield p
        finally:
            task.cancel()


def turn(k: int, seed: int = 0) -> bytes:
    pcm, _ = conversation_audio([k], sample_rate=RATE, gap_s=0.5, seed=seed)
    return pcm


# --- handshake and rules ------------------------------------------------------------------


async def test_config_then_created_and_ready() -> None:
    async with PhonicEmulator(idle_audio=False) as emu, peer(emu) as p:
        created, ready = p.messages[:2]
    assert created["type"] == "conversation_created"
    assert created["conversation_id"].startswith("conv_")
    assert ready == {"type": "ready_to_start_conversation"}
    (record,) = emu.records
    assert record.config == CONFIG
    assert record.conversation_id == created["conversation_id"]


async def test_a_missing_bearer_is_refused_with_401() -> None:
    async with PhonicEmulator() as emu:
        with pytest.raises(InvalidStatus) as info:
            async with connect(emu.url):
                pass
    assert info.value.response.status_code == 401


async def test_config_must_come_first_and_once() -> None:
    async with PhonicEmulator(idle_audio=False) as emu, peer(emu, config=False) as p:
        await p.send(type="generate_reply")
        await p.audio(b"\0\0" * 320)
        await p.send(**CONFIG)
        await p.wait("ready_to_start_conversation")
        await p.send(**CONFIG)
        await p.wait("error", 3)
    assert [e["error"]["code"] for e in p.of("error")] == [
        "config_required",
        "audio_before_ready",
        "config_already_sent",
    ]
    assert emu.records[0].audio == []


async def test_no_audio_before_ready() -> None:
    async with (
        PhonicEmulator(idle_audio=False, ready_delay_s=0.2) as emu,
        peer(emu, config=False) as p,
    ):
        await p.send(**CONFIG)
        await p.wait("conversation_created")
        await p.audio(b"\0\0" * 320)
        error = await p.wait("error")
        await p.wait("ready_to_start_conversation")
        await p.audio(b"\0\0" * 320)
        await emu.wait_for(lambda: len(emu.records[0].audio) == 1)
    assert error["error"]["code"] == "audio_before_ready"
    assert emu.records[0].rejected == ["audio_before_ready"]


async def test_chunks_over_40_ms_are_rejected() -> None:
    async with PhonicEmulator(idle_audio=False) as emu, peer(emu) as p:
        await p.audio(b"\0\0" * 640, frame=1280)  # 40 ms: accepted
        await p.audio(b"\0\0" * 642, frame=1284)  # 40.125 ms: rejected
        await p.wait("error")
        await emu.wait_for(lambda: len(emu.records[0].audio) == 1)
    assert emu.records[0].rejected == ["audio_chunk_too_long"]
    assert [len(a) for a in emu.records[0].audio] == [1280]


async def test_a_turn_with_a_tool_call_and_its_follow_up() -> None:
    async with PhonicEmulator(idle_audio=False) as emu, peer(emu) as p:
        await p.audio(turn(1))
        call = await p.wait("tool_call")
        await p.send(type="tool_call_output", tool_call_id="nope", output="x")
        await p.wait("error")
        await p.send(type="tool_call_output", tool_call_id=call["tool_call_id"], output="sunny")
        await p.wait("assistant_finished_speaking")
    kinds = [m["type"] for m in p.messages if m["type"] != "audio_chunk"]
    assert kinds == [
        "conversation_created",
        "ready_to_start_conversation",
        "user_started_speaking",
        "user_finished_speaking",
        "input_text",
        "tool_call",
        "error",
        "tool_call_output_processed",
        "assistant_started_speaking",
        "assistant_finished_speaking",
    ]
    assert call["tool_name"] == "get_weather"
    assert call["parameters"] == {"city": "Paris"}
    text = "".join(m["text"] for m in p.of("audio_chunk"))
    assert text == "The weather in Paris is sunny."
    assert p.of("error")[0]["error"]["code"] == "tool_call_not_found"


async def test_an_unanswered_tool_call_times_out() -> None:
    config = json.loads(json.dumps(CONFIG))
    config["tools"][0]["tool_call_output_timeout_ms"] = 50
    async with PhonicEmulator(idle_audio=False) as emu, peer(emu, config=False) as p:
        await p.send(**config)
        await p.wait("ready_to_start_conversation")
        await p.audio(turn(1))
        call = await p.wait("tool_call")
        processed = await p.wait("tool_call_output_processed")
        await p.wait("assistant_finished_speaking")
        await p.send(type="tool_call_output", tool_call_id=call["tool_call_id"], output="late")
        await p.wait("error")
    assert processed["timed_out"] is True
    assert "did not answer" in "".join(m["text"] for m in p.of("audio_chunk"))
    assert emu.records[0].tool_outputs == []


async def test_a_barge_in_stops_the_reply_and_reports_what_was_said() -> None:
    async with PhonicEmulator(idle_audio=False, reply_pacing=0.25) as emu, peer(emu) as p:
        await p.audio(turn(2, seed=1))
        await p.wait("assistant_started_speaking")
        await p.wait("audio_chunk", 8)
        await p.audio(turn(0, seed=2))
        cut = await p.wait("interrupted_response")
        await p.wait("assistant_finished_speaking")
    story = DEFAULT_SCRIPT.utterances[2].reply
    assert cut["text"]
    assert story.startswith(cut["text"])
    assert cut["text"] != story
    kinds = [m["type"] for m in p.messages if m["type"] != "audio_chunk"]
    i = kinds.index("interrupted_response")
    assert kinds[i - 3 : i + 1] == [
        "user_started_speaking",
        "user_finished_speaking",
        "input_text",
        "interrupted_response",
    ]


async def test_a_barge_in_interrupts_a_pending_tool_call() -> None:
    async with PhonicEmulator(idle_audio=False) as emu, peer(emu) as p:
        await p.audio(turn(1, seed=3))
        call = await p.wait("tool_call")
        await p.audio(turn(0, seed=4))
        interrupted = await p.wait("tool_call_interrupted")
        await p.wait("assistant_finished_speaking")
        await p.send(type="tool_call_output", tool_call_id=call["tool_call_id"], output="late")
        await p.wait("error")
    assert interrupted == {
        "type": "tool_call_interrupted",
        "tool_call_id": call["tool_call_id"],
        "tool_name": "get_weather",
    }
    assert emu.records[0].tool_outputs == []


async def test_silent_chunks_stream_between_turns() -> None:
    async with PhonicEmulator(idle_audio=True) as emu, peer(emu) as p:
        await p.wait("audio_chunk", 3)
    silent = p.of("audio_chunk")[0]
    assert silent["text"] == ""
    assert base64.b64decode(silent["audio"]) == bytes(RATE * 40 // 1000 * 2)


async def test_mulaw_in_and_out() -> None:
    config = {**CONFIG, "input_format": "mulaw_8000", "output_format": "mulaw_8000"}
    pcm, _ = conversation_audio([0], sample_rate=8000, gap_s=0.5, seed=5)
    wire = mulaw_encode(pcm)
    async with PhonicEmulator(idle_audio=False) as emu, peer(emu, config=False) as p:
        await p.send(**config)
        await p.wait("ready_to_start_conversation")
        await p.audio(wire, frame=160)
        await p.wait("assistant_finished_speaking")
    (record,) = emu.records
    assert b"".join(record.raw_audio) == wire
    assert b"".join(record.audio) == mulaw_decode(wire)
    heard = b"".join(base64.b64decode(m["audio"]) for m in p.of("audio_chunk"))
    spoken = b"".join(reply_audio(DEFAULT_SCRIPT.utterances[0].reply, sample_rate=8000))
    assert heard == mulaw_encode(spoken)


# --- the grace window ---------------------------------------------------------------------


async def test_a_dropped_conversation_is_kept_for_a_reconnect() -> None:
    async with PhonicEmulator(idle_audio=False) as emu:
        async with peer(emu) as first:
            await first.audio(turn(0, seed=6))
            await first.wait("assistant_finished_speaking")
            emu.fault(Fault.drop())
            closed = await first.wait_closed()
        conv = emu.records[0].conversation_id
        async with peer(emu, f"reconnect_conv_id={conv}", config=False) as second:
            back = await second.wait("conversation_reconnected")
            await second.audio(turn(3, seed=7))
            await second.wait("assistant_finished_speaking")
    assert closed.rcvd is None  # no close frame: the client sees 1006
    assert emu.records[0].closed_by is ClosedBy.FAULT
    assert emu.records[0].close_code == 1006
    assert back == {"type": "conversation_reconnected", "conversation_id": conv}
    assert emu.records[1].resumed
    assert [i["text"] for i in emu.conversations[conv].items if i["role"] == "user"] == [
        DEFAULT_SCRIPT.utterances[0].user_text,
        DEFAULT_SCRIPT.utterances[3].user_text,
    ]


@pytest.mark.parametrize(
    ("fault", "code", "reason"),
    [
        (Fault.close(), 1012, "restarting"),
        (Fault.close(1001, "restarting"), 1001, "restarting"),
    ],
)
async def test_restarting_closes_keep_the_conversation(
    fault: Fault, code: int, reason: str
) -> None:
    async with PhonicEmulator(idle_audio=False) as emu:
        async with peer(emu) as first:
            emu.fault(fault)
            closed = await first.wait_closed()
        conv = emu.records[0].conversation_id
        async with peer(emu, f"reconnect_conv_id={conv}", config=False) as second:
            await second.wait("conversation_reconnected")
    assert closed.rcvd is not None
    assert (closed.rcvd.code, closed.rcvd.reason) == (code, reason)


async def test_after_the_window_a_reconnect_gets_4800() -> None:
    async with PhonicEmulator(idle_audio=False, grace_window_s=0.05) as emu:
        async with peer(emu) as first:
            emu.fault(Fault.drop())
            await first.wait_closed()
        conv = emu.records[0].conversation_id
        await emu.wait_for(lambda: emu.conversations[conv].ended)
        async with peer(emu, f"reconnect_conv_id={conv}", config=False) as late:
            closed = await late.wait_closed()
    assert closed.rcvd is not None
    assert closed.rcvd.code == CONVERSATION_EXPIRED


async def test_expire_ends_the_conversation_at_once() -> None:
    async with PhonicEmulator(idle_audio=False) as emu:
        async with peer(emu) as first:
            emu.fault(Fault.expire())
            await first.wait_closed()
        conv = emu.records[0].conversation_id
        async with peer(emu, f"reconnect_conv_id={conv}", config=False) as late:
            expired = await late.wait_closed()
        async with peer(emu, "reconnect_conv_id=conv_never", config=False) as stranger:
            unknown = await stranger.wait_closed()
    assert expired.rcvd is not None
    assert expired.rcvd.code == CONVERSATION_EXPIRED
    assert unknown.rcvd is not None
    assert unknown.rcvd.code == CONVERSATION_UNKNOWN


async def test_a_normal_close_by_the_client_ends_the_conversation() -> None:
    async with PhonicEmulator(idle_audio=False) as emu:
        async with peer(emu):
            pass
        await emu.wait_idle()
        conv = emu.records[0].conversation_id
        assert emu.conversations[conv].ended
        assert emu.records[0].closed_by is ClosedBy.CLIENT


# --- other faults -------------------------------------------------------------------------


async def test_malformed_unknown_and_error_frames() -> None:
    async with PhonicEmulator(idle_audio=False) as emu, peer(emu) as p:
        emu.fault(Fault.unknown())
        emu.fault(Fault.error("overloaded", "Try later"))
        emu.fault(Fault.malformed())
        await p.wait("_malformed")
    assert p.of("emulator_unknown_event")
    assert p.of("error")[0]["error"] == {"message": "Try later", "code": "overloaded"}
    assert [f.kind for f in emu.records[0].faults] == [
        FaultKind.UNKNOWN,
        FaultKind.ERROR,
        FaultKind.MALFORMED,
    ]


async def test_a_stall_holds_everything_back() -> None:
    async with PhonicEmulator(idle_audio=False) as emu, peer(emu) as p:
        emu.fault(Fault.stall(0.2))
        await p.audio(turn(0, seed=8))
        await emu.wait_for(lambda: emu.records[0].frames_of_type("audio_chunk") != [])
        assert p.of("user_started_speaking") == []  # held back, though already decided
        await p.wait("assistant_finished_speaking")


async def test_refuse_fails_the_upgrade_and_faults_fire_at_their_trigger() -> None:
    async with PhonicEmulator(idle_audio=False) as emu:
        emu.fault(Fault.refuse())
        with pytest.raises(InvalidStatus) as info:
            async with connect(emu.url, additional_headers={"Authorization": "Bearer t"}):
                pass
        emu.fault(Fault.close(4004, "no capacity"), at=Trigger.connect())
        async with peer(emu, config=False) as p:
            closed = await p.wait_closed()
        emu.fault(Fault.drop(), at=Trigger.reply_audio(2))
        async with peer(emu) as q:
            await q.audio(turn(0, seed=9))
            await q.wait_closed()
    assert info.value.response.status_code == 503
    assert emu.refused == 1
    assert closed.rcvd is not None
    assert closed.rcvd.code == 4004
    assert len([m for m in q.of("audio_chunk") if m["text"] or m["audio"]]) == 2
    assert emu.records[-1].close_code == 1006
