"""The OpenAI / xAI websockets connector against real local servers on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import anyio
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from antiphon.adapters import ConnectRequest, Disposition, Limits
from antiphon.adapters.openai import OpenAIRealtime, XAIRealtime
from antiphon.errors import ConnectionLostError, ProviderError, ProviderTimeout
from antiphon.protocol import SendText, SessionState

SECRET = "sk-test-secret-123"


@pytest.fixture
def anyio_backend() -> str:
    # websockets' client is asyncio-only; the trio refusal has its own test below.
    return "asyncio"


@dataclass
class Recorder:
    paths: list[str] = field(default_factory=list)
    headers: list[Headers] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)


@asynccontextmanager
async def realtime_server(
    expect_frames: int,
    close_code: int = 1001,
    process_request: Callable[[ServerConnection, Request], Response | None] | None = None,
) -> AsyncIterator[tuple[str, Recorder]]:
    """A server that sends session.created, reads ``expect_frames`` frames, then closes."""
    rec = Recorder()

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        rec.paths.append(ws.request.path)
        rec.headers.append(ws.request.headers)
        await ws.send(json.dumps({"type": "session.created", "session": {"id": "sess_1"}}))
        for _ in range(expect_frames):
            message = await ws.recv()
            assert isinstance(message, str)
            rec.frames.append(message)
        await ws.close(close_code, "session_expired")

    async with serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/v1/realtime", rec


def _limits(**kw: Any) -> Limits:
    return Limits(connect_timeout_s=2.0, send_timeout_s=2.0, close_timeout_s=1.0, **kw)


@pytest.mark.anyio
async def test_connect_sends_auth_model_and_handshake_then_close_1001_is_recoverable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    preset = OpenAIRealtime(api_key=SECRET, limits=_limits())
    translator = preset.new_translator()
    state = SessionState(instructions="Be brief.")
    handshake = [
        *translator.handshake(state).frames,
        *translator.encode(SendText(text="hi"), state),
    ]
    caplog.set_level(logging.DEBUG, logger="antiphon.adapters.openai.websocket")
    async with realtime_server(expect_frames=len(handshake)) as (url, rec):
        connector = preset.replace(url=url).new_connector()
        with anyio.fail_after(5):
            conn = await connector.connect(ConnectRequest(query={"extra": "1"}), handshake)
            first = await conn.receive()
            assert translator.decode(first)
            with pytest.raises(ConnectionLostError) as info:
                await conn.receive()
            await conn.aclose()
    assert rec.paths == ["/v1/realtime?model=gpt-realtime&extra=1"]
    assert rec.headers[0]["Authorization"] == f"Bearer {SECRET}"
    assert "OpenAI-Beta" not in rec.headers[0]
    assert rec.frames == handshake  # in order, unchanged
    assert info.value.close_code == 1001
    assert (info.value.http_status, info.value.provider_code) == (None, "")
    assert info.value.recoverable
    assert translator.classify(info.value).disposition is Disposition.RECOVERABLE
    # The key went over the wire but not into the debug log of the upgrade request.
    assert "Authorization" in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.anyio
async def test_clean_close_1000_we_did_not_ask_for_is_still_lost() -> None:
    preset = XAIRealtime(api_key=SECRET, limits=_limits())
    async with realtime_server(expect_frames=1, close_code=1000) as (url, rec):
        conn = await preset.replace(url=url).new_connector().connect(ConnectRequest(), ["{}"])
        await conn.receive()
        with anyio.fail_after(5), pytest.raises(ConnectionLostError) as info:
            await conn.receive()
        with pytest.raises(ConnectionLostError):
            await conn.send('{"type":"response.create"}')
        await conn.aclose()
    assert rec.paths == ["/v1/realtime?model=grok-voice-latest"]
    assert info.value.close_code == 1000
    assert info.value.recoverable


@pytest.mark.anyio
async def test_policy_close_is_fatal() -> None:
    preset = OpenAIRealtime(api_key=SECRET, limits=_limits())
    async with realtime_server(expect_frames=0, close_code=1008) as (url, _):
        conn = await preset.replace(url=url).new_connector().connect(ConnectRequest(), [])
        await conn.receive()
        with anyio.fail_after(5), pytest.raises(ConnectionLostError) as info:
            await conn.receive()
    assert info.value.close_code == 1008
    assert not info.value.recoverable
    assert preset.new_translator().classify(info.value).disposition is Disposition.FATAL


@pytest.mark.anyio
async def test_our_own_close_ends_receive_as_not_recoverable() -> None:
    preset = OpenAIRealtime(api_key=SECRET, limits=_limits())
    async with realtime_server(expect_frames=1) as (url, _):
        conn = await preset.replace(url=url).new_connector().connect(ConnectRequest(), [])
        await conn.receive()
        await conn.aclose()
        with pytest.raises(ConnectionLostError) as info:
            await conn.receive()
    assert not info.value.recoverable


@pytest.mark.anyio
async def test_unauthorized_upgrade_is_fatal() -> None:
    def refuse(ws: ServerConnection, request: Request) -> Response:
        return ws.respond(HTTPStatus.UNAUTHORIZED, "invalid_api_key\n")

    preset = OpenAIRealtime(api_key="wrong", limits=_limits(), beta=True)
    async with realtime_server(expect_frames=0, process_request=refuse) as (url, _):
        with anyio.fail_after(5), pytest.raises(ProviderError) as info:
            await preset.replace(url=url).new_connector().connect(ConnectRequest(), [])
    assert info.value.http_status == 401
    assert (info.value.close_code, info.value.provider_code) == (None, "")
    assert not info.value.recoverable
    assert preset.new_translator().classify(info.value).disposition is Disposition.FATAL


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "retry_after", "expected_s"),
    [
        (HTTPStatus.TOO_MANY_REQUESTS, "7", 7.0),
        (HTTPStatus.SERVICE_UNAVAILABLE, "2.5", 2.5),
        (HTTPStatus.SERVICE_UNAVAILABLE, "Wed, 21 Oct 2015 07:28:00 GMT", None),
        (HTTPStatus.BAD_GATEWAY, None, None),
    ],
)
async def test_busy_upgrade_is_recoverable_after_retry_after(
    status: HTTPStatus, retry_after: str | None, expected_s: float | None
) -> None:
    def busy(ws: ServerConnection, request: Request) -> Response:
        response = ws.respond(status, "busy\n")
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after
        return response

    preset = OpenAIRealtime(api_key=SECRET, limits=_limits())
    async with realtime_server(expect_frames=0, process_request=busy) as (url, _):
        with anyio.fail_after(5), pytest.raises(ProviderError) as info:
            await preset.replace(url=url).new_connector().connect(ConnectRequest(), [])
    assert info.value.http_status == status
    assert info.value.retry_after_s == expected_s
    assert info.value.recoverable
    verdict = preset.new_translator().classify(info.value)
    assert verdict.disposition is Disposition.RECOVERABLE
    assert verdict.retry_after_s == expected_s


@pytest.mark.anyio
async def test_beta_sends_the_beta_header() -> None:
    preset = OpenAIRealtime(api_key=SECRET, limits=_limits(), beta=True, model="gpt-4o-realtime")
    async with realtime_server(expect_frames=0) as (url, rec):
        conn = await preset.replace(url=url).new_connector().connect(ConnectRequest(), [])
        await conn.aclose()
    assert rec.headers[0]["OpenAI-Beta"] == "realtime=v1"


@pytest.mark.anyio
async def test_connect_deadline_against_a_silent_server() -> None:
    # A listener that accepts TCP (the kernel's backlog does) and never answers the upgrade.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        preset = OpenAIRealtime(
            api_key=SECRET,
            url=f"ws://127.0.0.1:{port}/v1/realtime",
            limits=Limits(connect_timeout_s=0.3),
        )
        start = time.monotonic()
        with anyio.fail_after(5), pytest.raises(ProviderTimeout) as info:
            await preset.new_connector().connect(ConnectRequest(), [])
        elapsed = time.monotonic() - start
    assert elapsed < 2.0
    assert info.value.condition == "connect_timeout"
    assert info.value.recoverable
    assert preset.new_translator().classify(info.value).disposition is Disposition.RECOVERABLE


@pytest.mark.anyio
async def test_unreachable_server_is_recoverable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but not listening: connection refused
        preset = OpenAIRealtime(api_key=SECRET, url=f"ws://127.0.0.1:{port}/", limits=_limits())
        with anyio.fail_after(5), pytest.raises(ProviderError) as info:
            await preset.new_connector().connect(ConnectRequest(), [])
    assert info.value.recoverable
    assert info.value.condition == "connect_failed"
    assert not isinstance(info.value, ProviderTimeout)


@pytest.mark.parametrize("anyio_backend", ["trio"])
@pytest.mark.anyio
async def test_trio_is_refused_clearly() -> None:
    connector = OpenAIRealtime(api_key=SECRET).new_connector()
    with pytest.raises(ProviderError, match="asyncio only") as info:
        await connector.connect(ConnectRequest(), [])
    assert info.value.condition == "unsupported_event_loop"
    assert not info.value.recoverable
