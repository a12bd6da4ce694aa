"""The unmodified aws-sdk-bedrock-runtime, through the Nova connector and translator, against
the Nova emulator over TLS + HTTP/2 on 127.0.0.1. The SDK is asyncio-only, so these tests run
on asyncio (one checks the clear failure on trio)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from antiphon.adapters import Disposition
from antiphon.adapters.nova import (
    DEFAULT_LIMITS,
    NovaConnection,
    NovaCredentials,
    NovaSonic,
    NovaTranslator,
)
from antiphon.adapters.nova._leftovers import error_filter_installed
from antiphon.emulators import ClosedBy, Fault, Trigger
from antiphon.emulators._model import conversation_audio, silence, utterance_audio
from antiphon.emulators.nova import IDLE_RESET_MESSAGE, MODEL_TIMEOUT_MESSAGE, NovaEmulator
from antiphon.errors import ConnectionLostError, ProtocolError, ProviderError, ProviderTimeout
from antiphon.protocol import (
    AssistantMessage,
    AudioFrame,
    CloseSession,
    DeliverToolResult,
    Event,
    GenerationAudioDelta,
    GenerationEnded,
    GenerationEndReason,
    GenerationTextDelta,
    InputTranscriptFinal,
    SessionState,
    ToolCallRequested,
    ToolSpec,
    Usage,
    UserAudioCommitted,
    UserMessage,
)

pytestmark = pytest.mark.anyio

RATE = 16_000
FRAME = 1024 * 4  # 128 ms per send keeps the tests quick; the emulator does not care


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def provider(emu: NovaEmulator) -> NovaSonic:
    return NovaSonic(
        endpoint_uri=emu.endpoint_uri,
        ca_file=emu.ca_pem_path,
        region="us-east-1",
        credentials=NovaCredentials(access_key_id="AKIDTEST", secret_access_key="test-secret"),
        config_file_path="/nonexistent/aws-config",
        credentials_file_path="/nonexistent/aws-credentials",
    )


class Client:
    """One connection: a receive task that decodes into ``events`` and keeps the error."""

    def __init__(self, conn: NovaConnection, tr: NovaTranslator, state: SessionState) -> None:
        self.conn = conn
        self.tr = tr
        self.state = state
        self.events: list[Event] = []
        self.error: BaseException | None = None
        self.task = asyncio.ensure_future(self._rx())

    async def _rx(self) -> None:
        try:
            while True:
                self.events += self.tr.decode(await self.conn.receive())
        except ProviderError as exc:
            self.error = exc

    async def send_audio(self, pcm: bytes) -> None:
        for i in range(0, len(pcm), FRAME):
            for frame in self.tr.encode(AudioFrame(pcm=pcm[i : i + FRAME], index=i), self.state):
                await self.conn.send(frame)
            await asyncio.sleep(0)  # let output flow, as a real-time sender would

    async def send(self, command: Any) -> None:
        for frame in self.tr.encode(command, self.state):
            await self.conn.send(frame)

    async def wait_for(self, predicate: Any, within_s: float = 5.0) -> None:
        async with asyncio.timeout(within_s):
            while not predicate():  # events arrive from another task
                await asyncio.sleep(0.005)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def close(self) -> None:
        await self.send(CloseSession())
        await self.conn.aclose()
        self.task.cancel()


async def open_client(emu: NovaEmulator, state: SessionState | None = None) -> Client:
    p = provider(emu)
    tr = p.new_translator()
    state = state or SessionState(session_id="sess", epoch=1, instructions="Be brief.")
    conn = await p.new_connector().connect(tr.connect_request(state), tr.handshake(state).frames)
    return Client(conn, tr, state)


@pytest.fixture
async def emu() -> AsyncIterator[NovaEmulator]:
    async with NovaEmulator(reply_speed=None) as e:
        yield e


def _ended(client: Client) -> list[GenerationEndReason]:
    return [e.reason for e in client.of(GenerationEnded)]


async def test_audio_turn_transcript_audio_and_final_text(emu: NovaEmulator) -> None:
    client = await open_client(emu)
    audio, _ = conversation_audio([0], sample_rate=RATE, gap_s=0.5)
    await client.send_audio(audio)
    # The reply's FINAL text and its usage come after its audio ended it: wait for them too.
    await client.wait_for(lambda: _ended(client) and any(u.output_tokens for u in client.of(Usage)))
    transcript = client.of(InputTranscriptFinal)
    assert [t.text for t in transcript] == ["Hello there."]
    assert client.of(UserAudioCommitted)[0].item_id == transcript[0].item_id
    texts = "".join(e.text for e in client.of(GenerationTextDelta))
    assert texts == "Hi! How can I help you today?"  # FINAL only: not doubled
    pcm = b"".join(e.audio for e in client.of(GenerationAudioDelta))
    assert len(pcm) == 7 * 6000 * 2  # 7 words x 250 ms at 24 kHz
    assert _ended(client) == [GenerationEndReason.COMPLETED]
    assert sum(u.output_tokens for u in client.of(Usage)) > 0
    record = emu.records[0]
    assert record.system == "Be brief."
    assert record.audio_bytes == audio  # every byte arrived, in order
    assert record.model_id == "amazon.nova-2-sonic-v1:0"
    await client.close()
    await emu.wait_until(lambda: record.closed_cleanly)
    assert record.event_names[-3:] == ["contentEnd", "promptEnd", "sessionEnd"]
    assert record.errors == []


async def test_tool_use_round(emu: NovaEmulator) -> None:
    tool = ToolSpec(name="get_weather", parameters={"type": "object", "properties": {}})
    state = SessionState(session_id="sess", epoch=1, tools=(tool,))
    client = await open_client(emu, state)
    audio, _ = conversation_audio([1], sample_rate=RATE, gap_s=0.5)
    await client.send_audio(audio)
    await client.wait_for(lambda: client.of(ToolCallRequested))
    [call] = client.of(ToolCallRequested)
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert _ended(client) == [GenerationEndReason.TOOL_CALL]
    await client.send(DeliverToolResult(call_id=call.call_id, name=call.name, output='"sunny"'))
    await client.wait_for(lambda: len(_ended(client)) == 2)
    texts = "".join(e.text for e in client.of(GenerationTextDelta))
    assert texts == 'The weather in Paris is "sunny".'
    assert emu.records[0].tool_results == [(call.call_id, '"sunny"')]
    await client.close()


async def test_barge_in_interrupts_the_reply_once() -> None:
    async with NovaEmulator(reply_speed=4.0) as emu:  # Nova generates faster than real time
        client = await open_client(emu)
        story = utterance_audio(2, sample_rate=RATE) + silence(0.5, sample_rate=RATE, seed=1)
        await client.send_audio(story)
        await client.wait_for(lambda: client.of(GenerationAudioDelta))
        assert not _ended(client)  # the long reply is still being released
        await client.send_audio(
            utterance_audio(0, sample_rate=RATE) + silence(0.5, sample_rate=RATE, seed=2)
        )
        await client.wait_for(lambda: len(_ended(client)) == 2)
        assert _ended(client) == [GenerationEndReason.INTERRUPTED, GenerationEndReason.COMPLETED]
        assert emu.records[0].interrupted == ["reply_1"]
        assert [t.text for t in client.of(InputTranscriptFinal)] == [
            "Tell me a story.",
            "Hello there.",
        ]
        await client.close()


async def test_model_timeout_after_stream_limit_is_recoverable() -> None:
    async with NovaEmulator(stream_limit_s=0.3) as emu:
        client = await open_client(emu)
        await client.wait_for(lambda: client.error is not None)
        error = client.error
        assert isinstance(error, ProviderError)
        assert error.provider_code == "ModelTimeoutException"
        assert str(error) == MODEL_TIMEOUT_MESSAGE
        assert error.recoverable
        assert client.tr.classify(error).disposition is Disposition.RECOVERABLE
        # the input side still takes the close sequence that frees the service's resources
        await client.close()
        await emu.wait_until(lambda: emu.records[0].closed_cleanly)


async def test_idle_reset_531_is_recoverable() -> None:
    async with NovaEmulator(idle_reset_s=0.3) as emu:
        client = await open_client(emu)
        await client.send_audio(silence(0.2, sample_rate=RATE, seed=3))  # not speech
        await client.wait_for(lambda: client.error is not None)
        error = client.error
        assert isinstance(error, ProviderError)
        assert error.provider_code == "ValidationException"
        assert str(error) == IDLE_RESET_MESSAGE
        assert error.recoverable
        assert client.tr.classify(error).disposition is Disposition.RECOVERABLE
        await client.conn.aclose()


@pytest.mark.parametrize("fault", [Fault.drop(), Fault.close()], ids=["drop", "rst_stream"])
async def test_drop_or_reset_is_eof_and_connection_lost(emu: NovaEmulator, fault: Fault) -> None:
    client = await open_client(emu)
    await client.send_audio(silence(0.1, sample_rate=RATE, seed=4))
    await emu.wait_until(lambda: emu.active_streams == 1)
    emu.fault(fault)
    await client.wait_for(lambda: client.error is not None)
    error = client.error
    assert isinstance(error, ConnectionLostError)
    assert error.condition == "eof"
    assert error.recoverable
    # after the failure the connection never awaits a send again: it fails fast
    with pytest.raises(ConnectionLostError):
        await client.conn.send(client.tr.encode(CloseSession(), client.state)[0])
    await asyncio.wait_for(client.conn.aclose(), 5)
    assert emu.records[0].closed_by is ClosedBy.FAULT
    assert emu.records[0].close_code == (0 if fault.kind == "close" else None)


async def test_throttled_stream_then_next_one_works() -> None:
    async with NovaEmulator(reply_speed=None) as emu:
        emu.fault(Fault.refuse())  # the next stream
        first = await open_client(emu)
        await first.wait_for(lambda: first.error is not None)
        assert isinstance(first.error, ProviderError)
        assert first.error.provider_code == "ThrottlingException"
        assert first.error.recoverable
        assert first.error.retry_after_s
        await first.conn.aclose()
        second = await open_client(emu)
        audio, _ = conversation_audio([3], sample_rate=RATE, gap_s=0.5)
        await second.send_audio(audio)
        await second.wait_for(lambda: _ended(second))
        assert "".join(e.text for e in second.of(GenerationTextDelta)) == "Goodbye!"
        await second.close()


async def test_injected_exception_reaches_the_client(emu: NovaEmulator) -> None:
    client = await open_client(emu)
    await emu.wait_until(lambda: emu.active_streams == 1)
    emu.fault(Fault.error("ModelStreamErrorException", "boom"))
    await client.wait_for(lambda: client.error is not None)
    assert isinstance(client.error, ProviderError)
    assert client.error.provider_code == "ModelStreamErrorException"
    assert client.error.recoverable
    await client.conn.aclose()


async def test_history_is_primed_within_the_rules(emu: NovaEmulator) -> None:
    items = (
        AssistantMessage(id="a0", text="Welcome!"),
        UserMessage(id="u1", text="héllo " * 300),
        AssistantMessage(id="a1", text="Hi."),
        UserMessage(id="u2", text="Tell me more."),
    )
    state = SessionState(session_id="sess", epoch=2, instructions="sys", items=items)
    client = await open_client(emu, state)
    await emu.wait_until(lambda: emu.records[0].event_names[-1:] == ["contentStart"])
    await client.send_audio(silence(0.1, sample_rate=RATE, seed=5))
    await emu.wait_until(lambda: bool(emu.records[0].audio))
    history = emu.records[0].history
    assert [role for role, _ in history] == ["USER", "ASSISTANT", "USER"]
    assert len(history[0][1].encode()) <= 1000
    assert history[0][1].startswith("héllo")
    assert emu.records[0].errors == []
    await client.close()


async def test_protocol_violations_get_the_real_error_shapes(emu: NovaEmulator) -> None:
    tr = provider(emu).new_translator()
    frames = tr.handshake(SessionState(session_id="s", instructions="sys")).frames
    # an open TEXT history block, then audio: the service's own message
    prompt = tr.prompt_name
    bad = [
        *frames[:2],
        json.dumps(
            {
                "event": {
                    "contentStart": {
                        "promptName": prompt,
                        "contentName": "h1",
                        "type": "TEXT",
                        "interactive": False,
                        "role": "USER",
                        "textInputConfiguration": {"mediaType": "text/plain"},
                    }
                }
            }
        ).encode(),
        json.dumps(
            {"event": {"audioInput": {"promptName": prompt, "contentName": "h1", "content": ""}}}
        ).encode(),
    ]
    conn = await provider(emu).new_connector().connect(tr.connect_request(SessionState()), bad)
    with pytest.raises(ProviderError) as info:
        await conn.receive()
    assert info.value.provider_code == "ValidationException"
    assert str(info.value) == "Chat history should be sent completely before streaming audio."
    assert not info.value.recoverable
    await conn.aclose()


async def test_history_starting_with_assistant_is_rejected(emu: NovaEmulator) -> None:
    tr = provider(emu).new_translator()
    frames = tr.handshake(
        SessionState(session_id="s", items=(UserMessage(id="u", text="hi"),))
    ).frames
    # rewrite the one history block's role to ASSISTANT
    events = [json.loads(f) for f in frames]
    for event in events:
        start = event["event"].get("contentStart", {})
        if start.get("role") == "USER" and start.get("type") == "TEXT":
            start["role"] = "ASSISTANT"
    frames = [json.dumps(e).encode() for e in events]
    conn = await provider(emu).new_connector().connect(tr.connect_request(SessionState()), frames)
    with pytest.raises(ProviderError) as info:
        await conn.receive()
    assert info.value.provider_code == "ValidationException"
    assert "must start with a USER message" in str(info.value)
    assert not info.value.recoverable
    await conn.aclose()


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_fails_with_a_clear_error() -> None:
    connector = NovaSonic(endpoint_uri="https://127.0.0.1:9").new_connector()
    with pytest.raises(ProviderError, match="asyncio") as info:
        await connector.connect(NovaTranslator().connect_request(SessionState()), [])
    assert info.value.condition == "unsupported_event_loop"
    assert not info.value.recoverable


async def test_too_much_history_is_rejected_by_the_emulator(emu: NovaEmulator) -> None:
    items = tuple(
        (UserMessage if i % 2 == 0 else AssistantMessage)(id=str(i), text=f"m{i}")
        for i in range(50)
    )
    loose = msgspec.structs.replace(DEFAULT_LIMITS, max_history_messages=60)
    p = NovaSonic(
        endpoint_uri=emu.endpoint_uri,
        ca_file=emu.ca_pem_path,
        credentials=NovaCredentials(access_key_id="a", secret_access_key="b"),
        limits=loose,
        config_file_path="/nonexistent/c",
        credentials_file_path="/nonexistent/k",
    )
    tr = p.new_translator()
    state = SessionState(session_id="s", items=items)
    conn = await p.new_connector().connect(tr.connect_request(state), tr.handshake(state).frames)
    with pytest.raises(ProviderError, match="at most 40") as info:
        await conn.receive()
    assert info.value.provider_code == "ValidationException"
    assert not info.value.recoverable
    await conn.aclose()


async def test_fault_on_reply_audio_cuts_the_stream_mid_reply(emu: NovaEmulator) -> None:
    emu.fault(Fault.drop(), at=Trigger.reply_audio(3))
    client = await open_client(emu)
    audio, _ = conversation_audio([0], sample_rate=RATE, gap_s=0.5)
    await client.send_audio(audio)
    await client.wait_for(lambda: client.error is not None)
    assert isinstance(client.error, ConnectionLostError)
    assert client.error.condition == "eof"
    assert not _ended(client)  # the generation was cut; the runtime marks it interrupted
    assert len(client.of(GenerationAudioDelta)) <= 3
    await client.conn.aclose()


async def test_stall_delays_output_then_it_flows(emu: NovaEmulator) -> None:
    client = await open_client(emu)
    await emu.wait_until(lambda: emu.active_streams == 1)
    emu.fault(Fault.stall(0.4))
    loop = asyncio.get_running_loop()
    started = loop.time()
    audio, _ = conversation_audio([0], sample_rate=RATE, gap_s=0.5)
    await client.send_audio(audio)  # input is still read during a stall
    await client.wait_for(lambda: client.of(InputTranscriptFinal))
    assert loop.time() - started >= 0.35
    await client.wait_for(lambda: _ended(client))
    await client.close()


async def test_sends_after_the_stream_died_never_hang(emu: NovaEmulator) -> None:
    limits = msgspec.structs.replace(DEFAULT_LIMITS, send_timeout_s=0.5, close_timeout_s=0.5)
    p = NovaSonic(
        endpoint_uri=emu.endpoint_uri,
        ca_file=emu.ca_pem_path,
        credentials=NovaCredentials(access_key_id="a", secret_access_key="b"),
        limits=limits,
        config_file_path="/nonexistent/c",
        credentials_file_path="/nonexistent/k",
    )
    tr = p.new_translator()
    state = SessionState(session_id="s")
    conn = await p.new_connector().connect(tr.connect_request(state), tr.handshake(state).frames)
    await emu.wait_until(lambda: emu.active_streams == 1)
    emu.fault(Fault.drop())
    frame = tr.encode(AudioFrame(pcm=bytes(1024), index=0), state)[0]
    failures: list[ProviderError] = []
    async with asyncio.timeout(10):  # 40 sends: far past the SDK's 16 buffered chunks
        for _ in range(40):
            try:
                await conn.send(frame)
            except ProviderError as exc:
                failures.append(exc)
    assert failures  # the dead stream was noticed ...
    assert all(f.recoverable for f in failures)
    assert isinstance(failures[-1], ConnectionLostError)  # ... and then sends fail fast
    assert not conn.alive
    async with asyncio.timeout(3):
        await conn.aclose()


async def test_connect_timeout_when_the_server_never_answers() -> None:
    clients: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        clients.append(writer)
        await reader.read()  # accept TCP, never speak TLS
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limits = msgspec.structs.replace(DEFAULT_LIMITS, connect_timeout_s=0.5, close_timeout_s=0.2)
    p = NovaSonic(
        endpoint_uri=f"https://127.0.0.1:{port}",
        credentials=NovaCredentials(access_key_id="a", secret_access_key="b"),
        limits=limits,
        config_file_path="/nonexistent/c",
        credentials_file_path="/nonexistent/k",
    )
    tr = p.new_translator()
    connector = p.new_connector()
    with pytest.raises(ProviderTimeout) as info:
        await connector.connect(tr.connect_request(SessionState()), [])
    assert info.value.condition == "connect_timeout"
    assert info.value.recoverable
    # The attempt was abandoned, not cancelled: the connector holds it. Closing the
    # connector waits for it only up to close_timeout_s, and keeps its error filter while
    # the attempt still runs.
    loop = asyncio.get_running_loop()
    assert connector.leftover_tasks == 1
    async with asyncio.timeout(3):
        await connector.aclose()
    assert connector.leftover_tasks == 1
    assert error_filter_installed(loop)
    server.close()
    for writer in clients:
        writer.transport.abort()  # the abandoned attempt now fails and ends
    async with asyncio.timeout(5):
        while connector.leftover_tasks or error_filter_installed(loop):
            await asyncio.sleep(0.005)


async def test_region_and_credentials_from_the_environment(
    emu: NovaEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    p = NovaSonic(
        endpoint_uri=emu.endpoint_uri,
        ca_file=emu.ca_pem_path,
        config_file_path="/nonexistent/c",
        credentials_file_path="/nonexistent/k",
    )
    connector = p.new_connector()
    tr = p.new_translator()
    conn = await connector.connect(
        tr.connect_request(SessionState()), tr.handshake(SessionState()).frames
    )
    await emu.wait_until(lambda: len(emu.records) == 1)
    headers = emu.records[0].headers
    assert "AKIDENV/" in headers["authorization"]
    assert "/eu-west-1/bedrock/aws4_request" in headers["authorization"]
    await conn.aclose()


async def test_expire_malformed_and_unknown_faults_in_nova_form(emu: NovaEmulator) -> None:
    p = provider(emu)
    tr = p.new_translator()
    state = SessionState(session_id="s")
    conn = await p.new_connector().connect(tr.connect_request(state), tr.handshake(state).frames)
    await emu.wait_until(lambda: emu.active_streams == 1)
    emu.fault(Fault.unknown())
    emu.fault(Fault.malformed())
    emu.fault(Fault.expire())
    async with asyncio.timeout(5):
        unknown = tr.decode(await conn.receive())
        assert [type(e).__name__ for e in unknown] == ["UnknownProviderEvent"]
        with pytest.raises(ProtocolError):
            tr.decode(await conn.receive())
        with pytest.raises(ProviderError) as info:
            await conn.receive()
    assert info.value.provider_code == "ModelTimeoutException"
    record = emu.records[0]
    assert record.faults == [Fault.unknown(), Fault.malformed(), Fault.expire()]
    assert record.closed_by is ClosedBy.FAULT
    assert record.errors == [("modelTimeoutException", MODEL_TIMEOUT_MESSAGE)]
    await asyncio.wait_for(conn.aclose(), 5)
