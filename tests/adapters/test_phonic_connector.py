"""The Phonic websockets connector against real local servers on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

import anyio
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from antiphon.adapters import ConnectRequest, Disposition, Limits
from antiphon.adapters.phonic import Phonic
from antiphon.errors import ConnectionLostError, ProviderError, ProviderTimeout
from antiphon.protocol import SessionState

SECRET = "ph-test-secret-123"
LIMITS = Limits(
    input_sample_rate=24_000,
    output_sample_rate=24_000,
    connect_timeout_s=2.0,
    send_timeout_s=2.0,
    close_timeout_s=1.0,
)


@pytest.fixture
def anyio_backend() -> str:
    # websockets' client is asyncio-only; the trio refusal has its own test below.
    return "asyncio"


Handler = Callable[[ServerConnection], Awaitable[None]]


@asynccontextmanager
async def server(
    handler: Handler,
    process_request: Callable[[ServerConnection, Request], Response | None] | None = None,
) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0, process_request=process_request) as srv:
        port = srv.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/v1/sts/ws"


def preset(url: str) -> Phonic:
    return Phonic(url=url, api_key=SECRET, limits=LIMITS)


@pytest.mark.anyio
async def test_dial_auth_query_and_handshake_and_the_key_is_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: dict[str, Any] = {}

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        seen["path"] = ws.request.path
        seen["auth"] = ws.request.headers["Authorization"]
        seen["config"] = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "ready_to_start_conversation"}))
        await ws.close(1012, "restarting")

    caplog.set_level(logging.DEBUG)
    async with server(handler) as url:
        p = preset(url)
        translator = p.new_translator()
        state = SessionState(instructions="Be brief.", resumption_handle="conv_9")
        fresh = SessionState(instructions="Be brief.")
        request = ConnectRequest(query={"reconnect_conv_id": "conv_9"})
        assert translator.connect_request(state) == request
        connection = await p.new_connector().connect(
            request, p.new_translator().handshake(fresh).frames
        )
        assert json.loads(await connection.receive()) == {"type": "ready_to_start_conversation"}
        with pytest.raises(ConnectionLostError) as info:
            await connection.receive()
        await connection.aclose()
    assert seen["path"] == "/v1/sts/ws?reconnect_conv_id=conv_9"
    assert seen["auth"] == f"Bearer {SECRET}"
    assert seen["config"]["system_prompt"] == "Be brief."
    # A draining proxy's close carries its reason, and resumes the conversation.
    lost = info.value
    assert (lost.close_code, lost.provider_code, lost.recoverable) == (1012, "restarting", True)
    verdict = translator.classify(lost)
    assert (verdict.disposition, verdict.fresh_start) == (Disposition.RECOVERABLE, False)
    # The client's debug lines redact it (the test server's own log is not the client's).
    client_lines = [r.getMessage() for r in caplog.records if r.name != "websockets.server"]
    assert any("Authorization" in line for line in client_lines)
    assert not any(SECRET in line for line in client_lines)
    assert SECRET not in repr(p.new_connector())


@pytest.mark.anyio
@pytest.mark.parametrize(("status", "recoverable"), [(401, False), (429, True), (503, True)])
async def test_a_refused_upgrade_says_its_status(status: int, recoverable: bool) -> None:
    def refuse(ws: ServerConnection, request: Request) -> Response:
        response = ws.respond(HTTPStatus(status), "no\n")
        response.headers["Retry-After"] = "3"
        return response

    async def handler(ws: ServerConnection) -> None:  # pragma: no cover - never reached
        await ws.close()

    async with server(handler, refuse) as url:
        with pytest.raises(ProviderError) as info:
            await preset(url).new_connector().connect(ConnectRequest(), [])
    assert info.value.http_status == status
    assert info.value.recoverable is recoverable
    assert info.value.retry_after_s == 3.0
    verdict = preset(url).new_translator().classify(info.value)
    expected = Disposition.RECOVERABLE if recoverable else Disposition.FATAL
    assert verdict.disposition is expected


@pytest.mark.anyio
async def test_a_conversation_gone_close_starts_fresh() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.close(4800, "conversation ended")

    async with server(handler) as url:
        connection = await preset(url).new_connector().connect(ConnectRequest(), [])
        with pytest.raises(ConnectionLostError) as info:
            await connection.receive()
        await connection.aclose()
    assert info.value.close_code == 4800
    verdict = preset(url).new_translator().classify(info.value)
    assert (verdict.disposition, verdict.fresh_start) == (Disposition.RECOVERABLE, True)


@pytest.mark.anyio
async def test_a_silent_server_misses_the_connect_deadline() -> None:
    # A listening socket that never answers the upgrade.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        limits = Limits(connect_timeout_s=0.2, close_timeout_s=0.2)
        p = Phonic(url=f"ws://127.0.0.1:{port}/v1/sts/ws", api_key=SECRET, limits=limits)
        with pytest.raises(ProviderTimeout) as info:
            await p.new_connector().connect(ConnectRequest(), [])
    assert info.value.condition == "connect_timeout"


@pytest.mark.anyio
async def test_nobody_listening_is_recoverable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: the dial is refused
        p = Phonic(url=f"ws://127.0.0.1:{port}/v1/sts/ws", api_key=SECRET, limits=LIMITS)
        with pytest.raises(ProviderError) as info:
            await p.new_connector().connect(ConnectRequest(), [])
    assert (info.value.condition, info.value.recoverable) == ("connect_failed", True)


@pytest.mark.parametrize("anyio_backend", ["trio"])
@pytest.mark.anyio
async def test_trio_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ProviderError, match="asyncio only") as info:
        await preset("ws://127.0.0.1:9/v1/sts/ws").new_connector().connect(ConnectRequest(), [])
    assert info.value.condition == "unsupported_event_loop"
    await anyio.lowlevel.checkpoint()
