"""The google-genai connector against the Gemini emulator: raw frames, deadlines, errors."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from msgspec.structs import replace
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from antiphon.adapters import Connection, Connector, Disposition
from antiphon.adapters.gemini import DEFAULT_LIMITS, GeminiLive, GeminiTranslator
from antiphon.adapters.gemini._connector import GeminiConnection, translate_error
from antiphon.emulators import Fault, Trigger
from antiphon.emulators._model import conversation_audio
from antiphon.emulators.gemini import GeminiEmulator
from antiphon.errors import ConnectionLostError, ProtocolError, ProviderError, ProviderTimeout
from antiphon.protocol import (
    AssistantMessage,
    AudioFrame,
    DeliverToolResult,
    Event,
    GenerationEnded,
    GenerationEndReason,
    InputTranscriptFinal,
    ResumptionHandleUpdated,
    SendText,
    SessionState,
    ToolCallRequested,
    ToolSpec,
    UnknownProviderEvent,
    UserMessage,
)

pytestmark = pytest.mark.anyio

FAST = replace(DEFAULT_LIMITS, connect_timeout_s=2.0, send_timeout_s=1.0, close_timeout_s=1.0)
WEATHER = ToolSpec(
    name="get_weather",
    description="Weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def provider(emu: GeminiEmulator, **kw: Any) -> GeminiLive:
    options: dict[str, Any] = {
        "api_key": "test-key",
        "base_url": emu.base_url,
        "ca_file": emu.ca_pem_path,
        "limits": FAST,
    }
    options.update(kw)
    return GeminiLive(**options)


@asynccontextmanager
async def opened(
    emu: GeminiEmulator, state: SessionState, **kw: Any
) -> AsyncIterator[tuple[GeminiTranslator, GeminiConnection]]:
    p = provider(emu, **kw)
    translator = p.new_translator()
    connector = p.new_connector()
    assert isinstance(connector, Connector)
    handshake = translator.handshake(state)
    conn = await connector.connect(translator.connect_request(state), handshake.frames)
    assert isinstance(conn, Connection)
    try:
        yield translator, conn
    finally:
        await conn.aclose()


async def events_until(
    translator: GeminiTranslator, conn: GeminiConnection, stop: Any, wait: float = 5.0
) -> list[Event]:
    events: list[Event] = []
    async with asyncio.timeout(wait):
        while True:
            batch = translator.decode(await conn.receive())
            events.extend(batch)
            if any(stop(e) for e in batch):
                return events


def normalise(obj: Any) -> Any:
    """Keys to camelCase (ProtoJSON's two spellings are one field)."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            head, *rest = key.split("_")
            out[head + "".join(r.title() for r in rest)] = normalise(value)
        return out
    if isinstance(obj, list):
        return [normalise(v) for v in obj]
    return obj


async def test_setup_and_seeding_reach_the_server_as_the_translator_built_them() -> None:
    history = (
        UserMessage(id="u1", text="Hello there."),
        AssistantMessage(id="a1", text="Hi!"),
    )
    state = SessionState(instructions="Be brief.", tools=(WEATHER,), items=history)
    async with GeminiEmulator() as emu, opened(emu, state, voice="Puck") as (translator, conn):
        first = translator.decode(await conn.receive())
        assert translator.ready
        assert [type(e).__name__ for e in first] == ["ProviderSessionInfo"]
        # The seeding leaves the turn open (turnComplete false): the live turn that follows
        # starts the answer, as with Google's own client.
        for frame in translator.encode(SendText(text="And now?"), state):
            await conn.send(frame)
        await events_until(translator, conn, lambda e: isinstance(e, GenerationEnded))
        record = emu.records[0]
        assert record.frames[1]["clientContent"]["turnComplete"] is False
        ours = [json.loads(f) for f in translator.handshake(state).frames]
        sent_setup = normalise(record.setup)
        expected = normalise(ours[0]["setup"])
        # The SDK's Schema upper-cases OpenAPI type names; everything else is ours verbatim.
        decl = sent_setup["tools"][0]["functionDeclarations"][0]
        assert decl["parameters"] == {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}}
        decl["parameters"] = expected["tools"][0]["functionDeclarations"][0]["parameters"]
        assert sent_setup == expected
        assert record.frames[1] == ours[1]  # the seeding went raw, after setupComplete
        assert record.history[:2] == [
            {"role": "user", "text": "Hello there."},
            {"role": "model", "text": "Hi!"},
        ]


async def test_schema_the_sdk_cannot_hold_goes_as_json_schema() -> None:
    # A recursive type keeps its $ref (it has no finite inline form), which the SDK's Schema
    # cannot hold; a type list, which it cannot hold either, the translator makes `nullable`.
    node = {
        "type": "object",
        "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
    }
    tool = ToolSpec(
        name="f",
        parameters={
            "type": "object",
            "properties": {"root": {"$ref": "#/$defs/Node"}},
            "$defs": {"Node": node},
        },
    )
    async with GeminiEmulator() as emu, opened(emu, SessionState(tools=(tool,))):
        record = await emu.wait_connections(1)
        assert record.setup is not None
        (decl,) = record.setup["tools"][0]["functionDeclarations"]
        assert decl["parameters_json_schema"] == tool.parameters


async def test_audio_turn_and_tool_round_move_raw_frames_both_ways() -> None:
    state = SessionState(tools=(WEATHER,))
    async with GeminiEmulator() as emu, opened(emu, state) as (translator, conn):
        translator.decode(await conn.receive())
        pcm, _ = conversation_audio([1], sample_rate=16_000, gap_s=0.4)
        frame_bytes = translator.limits.input_frame_bytes
        sent = []
        for index, i in enumerate(range(0, len(pcm), frame_bytes)):
            for frame in translator.encode(
                AudioFrame(pcm=pcm[i : i + frame_bytes], index=index), state
            ):
                sent.append(json.loads(frame))
                await conn.send(frame)
        events = await events_until(translator, conn, lambda e: isinstance(e, ToolCallRequested))
        finals = [e for e in events if isinstance(e, InputTranscriptFinal)]
        assert [f.text.strip() for f in finals] == ["What's the weather in Paris?"]
        call = next(e for e in events if isinstance(e, ToolCallRequested))
        assert json.loads(call.arguments) == {"city": "Paris"}
        result = DeliverToolResult(call_id=call.call_id, name=call.name, output='"sunny"')
        for frame in translator.encode(result, state):
            await conn.send(frame)
        follow = await events_until(
            translator,
            conn,
            lambda e: isinstance(e, GenerationEnded) and e.reason is GenerationEndReason.COMPLETED,
        )
        text = "".join(
            getattr(e, "text", "") for e in follow if type(e).__name__ == "GenerationTextDelta"
        )
        assert text == "The weather in Paris is sunny."
        record = emu.records[0]
        assert record.frames[1:] == [*sent, record.frames[-1]]  # byte-for-byte our frames
        assert record.audio_bytes == pcm
        assert record.tool_responses == [
            {"id": call.call_id, "name": "get_weather", "response": {"output": "sunny"}}
        ]


async def test_unknown_frames_reach_the_translator() -> None:
    """The SDK's receive() raises on an unknown top-level key; the raw path keeps it."""
    async with GeminiEmulator() as emu, opened(emu, SessionState()) as (translator, conn):
        translator.decode(await conn.receive())
        emu.fault(Fault.unknown())
        events = translator.decode(await conn.receive())
        assert [e.provider_type for e in events if isinstance(e, UnknownProviderEvent)] == [
            "futureServerMessage"
        ]


async def test_resume_with_handle() -> None:
    async with GeminiEmulator() as emu:
        async with opened(emu, SessionState()) as (translator, conn):
            translator.decode(await conn.receive())
            for frame in translator.encode(SendText(text="Hello there."), SessionState()):
                await conn.send(frame)
            events = await events_until(
                translator, conn, lambda e: isinstance(e, ResumptionHandleUpdated)
            )
            handle = next(e for e in events if isinstance(e, ResumptionHandleUpdated)).handle
        state = SessionState(
            resumption_handle=handle, epoch=2, items=(UserMessage(id="x", text="y"),)
        )
        assert provider(emu).new_translator().handshake(state).resumed
        async with opened(emu, state) as (translator, conn):
            translator.decode(await conn.receive())
        record = emu.records[1]
        assert record.resume_handle == handle
        assert record.restored_history[0] == {"role": "user", "text": "Hello there."}
        assert len(record.frames) == 1  # no re-seeding on a resume


async def test_stale_handle_is_1008_and_classified_fresh_start() -> None:
    async with GeminiEmulator() as emu:
        p = provider(emu)
        translator = p.new_translator()
        state = SessionState(resumption_handle="stale")
        with pytest.raises(ConnectionLostError) as info:
            await p.new_connector().connect(
                translator.connect_request(state), translator.handshake(state).frames
            )
        assert info.value.close_code == 1008
        assert (info.value.http_status, info.value.provider_code) == (None, "")
        assert info.value.recoverable  # as the translator classifies it
        verdict = translator.classify(info.value)
        assert verdict.disposition is Disposition.RECOVERABLE
        assert verdict.fresh_start


@pytest.mark.parametrize(
    ("fault", "code", "disposition"),
    [
        (Fault.close(1011), 1011, Disposition.RECOVERABLE),
        (Fault.drop(), 1006, Disposition.RECOVERABLE),
    ],
)
async def test_mid_generation_faults_surface_with_close_codes(
    fault: Fault, code: int, disposition: Disposition
) -> None:
    async with GeminiEmulator() as emu, opened(emu, SessionState()) as (translator, conn):
        translator.decode(await conn.receive())
        emu.fault(fault, at=Trigger.reply_audio(2))
        for frame in translator.encode(SendText(text="Tell me a story."), SessionState()):
            await conn.send(frame)
        with pytest.raises(ConnectionLostError) as info:
            await events_until(translator, conn, lambda e: False)
        assert info.value.close_code == code
        assert translator.classify(info.value).disposition is disposition
        with pytest.raises(ConnectionLostError):
            await conn.send('{"realtimeInput": {"text": "late"}}')


async def test_malformed_and_unknown_frames_mid_generation() -> None:
    async with GeminiEmulator() as emu, opened(emu, SessionState()) as (translator, conn):
        translator.decode(await conn.receive())
        emu.fault(Fault.malformed(), at=Trigger.reply_audio())
        for frame in translator.encode(SendText(text="Hello there."), SessionState()):
            await conn.send(frame)
        with pytest.raises(ProtocolError):
            await events_until(translator, conn, lambda e: False)
        # the connection is still usable: the reply carries on after the bad frame (the
        # runtime journals the frame as a provider error and keeps the connection)
        events = await events_until(translator, conn, lambda e: isinstance(e, GenerationEnded))
        assert any(isinstance(e, GenerationEnded) for e in events)
        emu.fault(Fault.unknown(), at=Trigger.reply_audio())
        for frame in translator.encode(SendText(text="Hello there."), SessionState()):
            await conn.send(frame)
        events = await events_until(translator, conn, lambda e: isinstance(e, UnknownProviderEvent))
        assert [e for e in events if isinstance(e, UnknownProviderEvent)]


async def test_go_away_then_deadline_close() -> None:
    async with GeminiEmulator() as emu, opened(emu, SessionState()) as (translator, conn):
        translator.decode(await conn.receive())
        emu.fault(Fault.go_away(0.1))
        events = translator.decode(await conn.receive())
        assert [getattr(e, "time_left_ms", None) for e in events] == [100]
        with pytest.raises(ConnectionLostError) as info:
            await conn.receive()
        assert info.value.close_code == 1011
        assert "Deadline expired" in str(info.value)


async def test_send_deadline() -> None:
    limits = replace(FAST, send_timeout_s=0.3, close_timeout_s=0.3)
    async with (
        GeminiEmulator() as emu,
        opened(emu, SessionState(), limits=limits) as (translator, conn),
    ):
        translator.decode(await conn.receive())
        emu.fault(Fault.stall(3.0))  # the server stops reading: the socket backs up
        # Incompressible audio (permessage-deflate would shrink silence to nothing).
        pcm = random.Random(0).randbytes(2**16)
        frame = translator.encode(AudioFrame(pcm=pcm, index=0), SessionState())[0]

        async def flood() -> None:
            async with asyncio.timeout(5):
                while True:
                    await conn.send(frame)

        with pytest.raises(ProviderTimeout) as info:
            await flood()
        assert translator.classify(info.value).disposition is Disposition.RECOVERABLE


async def test_connect_deadline() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)  # accept TCP, never answer the TLS handshake
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        limits = replace(FAST, connect_timeout_s=0.3)
        p = GeminiLive(api_key="k", base_url=f"https://127.0.0.1:{port}", limits=limits)
        translator = p.new_translator()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ProviderTimeout) as info:
            await p.new_connector().connect(
                translator.connect_request(SessionState()),
                translator.handshake(SessionState()).frames,
            )
        assert loop.time() - started < 2.0
        assert info.value.condition == "connect_timeout"
    finally:
        server.close()


async def test_refused_upgrade_is_an_http_error() -> None:
    async with GeminiEmulator() as emu:
        p = provider(emu, api_version="nonsense")  # the path no longer matches: 404
        translator = p.new_translator()
        with pytest.raises(ProviderError) as info:
            await p.new_connector().connect(
                translator.connect_request(SessionState()),
                translator.handshake(SessionState()).frames,
            )
        assert info.value.http_status == 404
        assert (info.value.close_code, info.value.provider_code) == (None, "")
        assert not info.value.recoverable
        assert translator.classify(info.value).disposition is Disposition.FATAL


@pytest.mark.parametrize(
    ("status", "retry_after", "recoverable", "retry_after_s"),
    [
        (429, "3", True, 3.0),
        (503, "0.5", True, 0.5),
        (503, None, True, None),
        (401, "3", False, None),
    ],
)
def test_refused_upgrade_carries_status_and_retry_after(
    status: int, retry_after: str | None, recoverable: bool, retry_after_s: float | None
) -> None:
    headers = Headers({"Retry-After": retry_after} if retry_after is not None else {})
    refused = InvalidStatus(Response(status, "refused", headers))
    error = translate_error(refused)
    assert (error.http_status, error.close_code, error.recoverable) == (status, None, recoverable)
    verdict = GeminiTranslator().classify(error)
    assert verdict.disposition is (Disposition.RECOVERABLE if recoverable else Disposition.FATAL)
    assert verdict.retry_after_s == retry_after_s


@pytest.mark.parametrize(
    ("code", "reason", "recoverable"),
    [
        (1008, "models/x is not found for API version v1beta", False),
        (1008, "BidiGenerateContent session not found", True),
        (1011, "The service is currently unavailable.", True),
    ],
)
def test_sdk_close_errors_carry_the_close_code(code: int, reason: str, recoverable: bool) -> None:
    from google.genai import errors as genai_errors

    error = translate_error(genai_errors.APIError(code, reason))
    assert isinstance(error, ConnectionLostError)
    assert (error.close_code, error.http_status, error.recoverable) == (code, None, recoverable)
    assert reason in str(error)


async def test_our_close_is_clean() -> None:
    async with GeminiEmulator() as emu:
        async with opened(emu, SessionState()) as (translator, conn):
            translator.decode(await conn.receive())
        await conn.aclose()  # twice is fine
        async with asyncio.timeout(2):
            await emu.wait_idle()
        assert emu.records[0].close_code == 1000


async def test_closing_the_connector_is_bounded_and_idempotent() -> None:
    # What the runtime does when a session ends, after its last connection closed.
    async with GeminiEmulator() as emu:
        p = provider(emu)
        connector = p.new_connector()
        translator = p.new_translator()
        state = SessionState()
        request, handshake = translator.connect_request(state), translator.handshake(state)
        conn = await connector.connect(request, handshake.frames)
        await conn.aclose()
        async with asyncio.timeout(FAST.close_timeout_s + 1.0):
            await connector.aclose()
            await connector.aclose()


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_closing_a_connector_on_trio_is_a_no_op() -> None:
    # connect() refuses to run on trio, so the client never opened anything there.
    await GeminiLive(api_key="k", base_url="https://127.0.0.1:9").new_connector().aclose()


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_is_refused_clearly() -> None:
    p = GeminiLive(api_key="k", base_url="https://127.0.0.1:9")
    translator = p.new_translator()
    with pytest.raises(ProviderError, match="asyncio") as info:
        await p.new_connector().connect(
            translator.connect_request(SessionState()), translator.handshake(SessionState()).frames
        )
    assert info.value.condition == "unsupported_event_loop"
    assert translator.classify(info.value).disposition is Disposition.FATAL


def test_api_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(ProviderError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        GeminiLive().new_connector()
    monkeypatch.setenv("GOOGLE_API_KEY", "from-env")
    assert GeminiLive().new_connector()._client._api_client.api_key == "from-env"
    monkeypatch.setenv("GEMINI_API_KEY", "preferred")
    assert GeminiLive().new_connector()._client._api_client.api_key == "preferred"
    assert "preferred" not in repr(GeminiLive(api_key="preferred"))


def test_vertex_model_resource() -> None:
    p = GeminiLive(vertex=True, project="p", location="us-central1", model="m")
    assert p.model_resource == "projects/p/locations/us-central1/publishers/google/models/m"
    assert GeminiLive(model="m").model_resource == "models/m"
