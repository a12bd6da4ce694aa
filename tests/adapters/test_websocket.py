"""``WebSocketConnection.send``: no deadline when the send cannot wait, one when it can."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from websockets.asyncio.server import ServerConnection, serve

from antiphon.adapters import Limits
from antiphon.adapters._websocket import WebSocketConnection, dial
from antiphon.errors import ProviderTimeout

LIMITS = Limits(connect_timeout_s=2.0, send_timeout_s=0.3, close_timeout_s=0.3)
SMALL = "x" * 1_400  # about one 20 ms frame of base64 audio in its JSON event
BIG = b"\x00" * 256 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # websockets' client is asyncio-only


@asynccontextmanager
async def stalled_server() -> AsyncIterator[str]:
    """A server that accepts the upgrade and then never reads: the client's sends back up."""
    release = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        ws.transport.pause_reading()
        await release.wait()
        ws.transport.resume_reading()  # read the client's close frame: a prompt shutdown

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        try:
            yield f"ws://127.0.0.1:{port}/"
        finally:
            release.set()


async def _open(url: str) -> WebSocketConnection:
    ws = await dial(
        url,
        headers={},
        provider="test",
        limits=LIMITS,
        ping_interval=None,
        max_size=2**20,
        logger=logging.getLogger("test.websocket"),
        recoverable_status=lambda status: False,
    )
    return WebSocketConnection(
        ws, provider="test", limits=LIMITS, recoverable_close=lambda c, r: True
    )


@pytest.mark.anyio
async def test_small_frame_on_an_idle_socket_needs_no_deadline() -> None:
    async with stalled_server() as url:
        conn = await _open(url)
        try:
            assert conn._send_cannot_block(SMALL)
            assert not conn._send_cannot_block("é" * 32 * 1024)  # counted at its UTF-8 bound
            await conn.send(SMALL)
        finally:
            await conn.aclose()


async def _fill(conn: WebSocketConnection) -> None:
    # The kernel's socket buffers take a few MB; then the transport's write buffer passes
    # its high-water mark and a send must wait.
    for _ in range(4_096):
        await conn.send(BIG)


@pytest.mark.anyio
async def test_send_into_a_full_buffer_keeps_its_deadline() -> None:
    async with stalled_server() as url:
        conn = await _open(url)
        try:
            with anyio.fail_after(30):  # guards against a hang only
                with pytest.raises(ProviderTimeout) as caught:
                    await _fill(conn)
            assert caught.value.condition == "send_timeout"
            assert not conn._send_cannot_block(SMALL)
        finally:
            await conn.aclose()


@asynccontextmanager
async def recording_server() -> AsyncIterator[tuple[str, list[str | bytes]]]:
    """A server that keeps every message it receives."""
    received: list[str | bytes] = []

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            received.append(message)

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/", received


@pytest.mark.anyio
async def test_send_nowait_puts_the_frame_on_the_wire_in_order() -> None:
    async with recording_server() as (url, received):
        conn = await _open(url)
        try:
            assert conn.send_nowait("one")
            await conn.send("two")
            assert conn.send_nowait(b"\x01\x02")  # a binary frame stays binary
            assert conn.send_nowait("é" * 10)
            with anyio.fail_after(10):
                while len(received) < 4:
                    await anyio.sleep(0.01)
        finally:
            await conn.aclose()
        assert received == ["one", "two", b"\x01\x02", "é" * 10]
        assert not conn.send_nowait("after close")  # nothing done: send reports the close


@pytest.mark.anyio
async def test_send_nowait_does_nothing_when_the_send_would_wait() -> None:
    async with stalled_server() as url:
        conn = await _open(url)
        try:
            with anyio.fail_after(30), pytest.raises(ProviderTimeout):
                await _fill(conn)
            size = conn._ws.transport.get_write_buffer_size()
            assert not conn.send_nowait(SMALL)
            assert conn._ws.transport.get_write_buffer_size() == size  # nothing was written
        finally:
            await conn.aclose()
