"""The websockets client, as every websocket provider's connector uses it (OpenAI/xAI, Phonic).

:func:`dial` opens a socket within the connect deadline and translates what can go wrong once:
a refused upgrade becomes ``ProviderError`` with ``http_status``, the ``provider_code`` of its
JSON body (:func:`refusal_code`) and ``retry_after_s`` from ``Retry-After``; a missed deadline
``ProviderTimeout``; an unreachable server a recoverable ``ProviderError``.
:class:`WebSocketConnection` moves raw frames with a deadline on every
send that could wait, and turns any end of the socket we did not ask for — even a
clean-looking 1000 — into ``ConnectionLostError`` with its ``close_code``.

asyncio only: ``websockets.asyncio`` runs on the asyncio event loop, so :func:`dial` raises a
clear error under trio. Secrets never reach a log: the websockets logger given to :func:`dial`
carries the redaction filter.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Final

import anyio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.protocol import State

from ..errors import ConnectionLostError, ProviderError, ProviderTimeout
from ._contract import Frame, Limits
from ._http import parse_retry_after
from ._redact import RedactCredentials

__all__ = ["WebSocketConnection", "dial", "websocket_logger"]

_MAX_REASON: Final = 123  # a close reason is at most 123 bytes on the wire
# A frame's header (at most 14 bytes) plus what permessage-deflate may add to an
# incompressible payload, rounded up: a bound, not an estimate.
_FRAME_OVERHEAD: Final = 64


def websocket_logger(name: str) -> logging.Logger:
    """The logger a connector hands to websockets, with credentials redacted."""
    logger = logging.getLogger(name)
    logger.addFilter(RedactCredentials())
    return logger


def _require_asyncio(provider: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError as exc:  # trio (or no event loop at all)
        raise ProviderError(
            f"{provider}: the websockets connector runs on asyncio only;"
            " run the session on the asyncio backend",
            provider=provider,
            condition="unsupported_event_loop",
            recoverable=False,
        ) from exc


async def dial(
    uri: str,
    *,
    headers: Mapping[str, str],
    provider: str,
    limits: Limits,
    ping_interval: float | None,
    max_size: int,
    logger: logging.Logger,
    refused_hint: str = "",
    recoverable_status: Callable[[int], bool],
    compress: bool = False,
) -> ClientConnection:
    """Open a websocket within ``limits.connect_timeout_s``.

    Args:
        refused_hint: Added to the message of a 401/403 refusal (e.g. which key to check).
        recoverable_status: Whether a refused upgrade's HTTP status is worth a retry.
        compress: Offer permessage-deflate (off by default, as LiveKit's plugins have it).

    Raises:
        ProviderError: the server refused the upgrade (``http_status``) or could not be
            reached (recoverable); asyncio is not running.
        ProviderTimeout: connecting missed its deadline.
    """
    _require_asyncio(provider)
    timeout = limits.connect_timeout_s
    try:
        with anyio.fail_after(timeout):
            return await connect(
                uri,
                additional_headers=dict(headers),
                open_timeout=None,  # the anyio deadline above governs
                ping_interval=ping_interval,
                ping_timeout=ping_interval,
                close_timeout=limits.close_timeout_s,
                max_size=max_size,
                logger=logger,
                # permessage-deflate costs CPU on every message both ways and gains little on
                # base64 audio: offered only when the preset asks for it.
                compression="deflate" if compress else None,
            )
    except TimeoutError as exc:
        raise ProviderTimeout(
            f"{provider}: connect missed its {timeout} s deadline",
            provider=provider,
            condition="connect_timeout",
            recoverable=True,
        ) from exc
    except InvalidStatus as exc:
        status = exc.response.status_code
        hint = f" ({refused_hint})" if refused_hint and status in (401, 403) else ""
        code = refusal_code(exc.response.body)
        named = f" ({code})" if code else ""
        raise ProviderError(
            f"{provider}: server refused the websocket upgrade with HTTP {status}{named}{hint}",
            provider=provider,
            http_status=status,
            provider_code=code,
            recoverable=recoverable_status(status),
            retry_after_s=parse_retry_after(exc.response.headers.get("Retry-After")),
        ) from exc
    except (InvalidHandshake, OSError) as exc:
        raise ProviderError(
            f"{provider}: could not connect: {exc}",
            provider=provider,
            condition="connect_failed",
            recoverable=True,
        ) from exc


_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def refusal_code(body: bytes | bytearray | None) -> str:
    """The provider's error code in the JSON body of a refused upgrade (OpenAI's
    ``{"error": {"code": ...}}``, xAI's ``{"code": ...}``); "" when there is none.

    Only the code is kept, never the message: a provider's message may quote part of the
    credential it refused.
    """
    if not body:
        return ""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    error = data.get("error")
    code = error.get("code") if isinstance(error, dict) else data.get("code")
    return code if isinstance(code, str) and _CODE.fullmatch(code) else ""


class WebSocketConnection:
    """One open websocket to a provider (one epoch). Not for concurrent ``receive`` calls.

    Args:
        ws: The open socket.
        provider: Provider name, for errors.
        limits: Send and close deadlines.
        recoverable_close: Whether a close by the server (code, reason) may be continued on
            a new connection; a close we asked for never is.
        reason_is_code: The provider puts its own code in the close reason (Phonic's
            ``restarting``): keep it as the error's ``provider_code``.
    """

    def __init__(
        self,
        ws: ClientConnection,
        *,
        provider: str,
        limits: Limits,
        recoverable_close: Callable[[int, str], bool],
        reason_is_code: bool = False,
    ) -> None:
        self._ws = ws
        self._provider = provider
        self._limits = limits
        self._recoverable_close = recoverable_close
        self._reason_is_code = reason_is_code
        self._closing = False
        # websockets' own step from its protocol to the transport (every release this
        # package supports has it; without it every send goes through ``ws.send``).
        self._write_out: Callable[[], None] | None = getattr(ws, "send_data", None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(provider={self._provider!r}, closing={self._closing})"

    async def send_all(self, frames: Sequence[Frame]) -> None:
        """Send the handshake's frames in order; on failure close the socket, then raise."""
        try:
            for frame in frames:
                await self.send(frame)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.aclose()
            raise

    def _lost(self, exc: ConnectionClosed) -> ConnectionLostError:
        # No close frame received means the TCP connection just ended: 1006 by convention.
        code = exc.rcvd.code if exc.rcvd is not None else 1006
        reason = (exc.rcvd.reason if exc.rcvd is not None else "")[:_MAX_REASON]
        by = "the client" if self._closing else "the server"
        return ConnectionLostError(
            f"{self._provider}: connection closed by {by} (code {code}"
            + (f", reason {reason!r})" if reason else ")"),
            provider=self._provider,
            close_code=code,
            provider_code=reason if self._reason_is_code else "",
            recoverable=not self._closing and self._recoverable_close(code, reason),
        )

    def _send_cannot_block(self, frame: Frame) -> bool:
        """Whether sending ``frame`` now completes without waiting, so needs no deadline.

        websockets' asyncio connection writes an unfragmented message to the transport and
        then waits only when (a) a fragmented send is in progress, (b) the connection is not
        open (it waits for the close), or (c) the transport's write buffer is above its
        high-water mark after the write (flow control paused it). asyncio pauses only when
        the buffer exceeds the high-water mark, so a frame that fits under it, counted at its
        largest encoded size, cannot make the send wait. Whenever any of this is in doubt the
        send keeps its deadline.
        """
        ws = self._ws
        if ws.protocol.state is not State.OPEN or ws.send_in_progress is not None or ws.paused:
            return False
        transport = ws.transport
        if transport.is_closing():
            return False
        # A str goes out as UTF-8: at most 4 bytes per code point.
        size = (len(frame) * 4 if isinstance(frame, str) else len(frame)) + _FRAME_OVERHEAD
        _, high = transport.get_write_buffer_limits()
        return transport.get_write_buffer_size() + size <= high

    def send_nowait(self, frame: Frame) -> bool:
        """Send ``frame`` at once when that cannot wait (see :meth:`_send_cannot_block`).

        What websockets' ``send`` does for an unfragmented message on an open connection
        whose buffer has room — the frame built by the protocol, its bytes written to the
        transport — without the coroutine, the async context manager and the ``drain`` around
        it, which could not wait here anyway. A transport that fails while writing closes
        itself, and the receive side reports the loss, as after any ``send``.
        """
        write_out = self._write_out
        if write_out is None or self._closing or not self._send_cannot_block(frame):
            return False
        protocol = self._ws.protocol
        if isinstance(frame, str):
            protocol.send_text(frame.encode())
        else:
            protocol.send_binary(frame)
        write_out()
        return True

    async def send(self, frame: Frame) -> None:
        """Send one frame within ``limits.send_timeout_s``.

        The deadline is armed only when the send could wait (flow control, a closing
        connection); a frame that fits in the transport's write buffer goes out without one.

        Raises:
            ConnectionLostError: the connection is gone.
            ProviderTimeout: the send missed its deadline.
        """
        try:
            if not self.send_nowait(frame):
                with anyio.fail_after(self._limits.send_timeout_s):
                    await self._ws.send(frame)
        except TimeoutError as exc:
            raise ProviderTimeout(
                f"{self._provider}: send missed its {self._limits.send_timeout_s} s deadline",
                provider=self._provider,
                condition="send_timeout",
                recoverable=True,
            ) from exc
        except ConnectionClosed as exc:
            raise self._lost(exc) from exc

    async def receive(self) -> Frame:
        """The next frame from the provider; it may be quiet for as long as it likes.

        Raises:
            ConnectionLostError: the connection ended, with its close code — including a
                clean-looking 1000/1001 that we did not ask for.
        """
        try:
            return await self._ws.recv()
        except ConnectionClosed as exc:
            raise self._lost(exc) from exc

    async def aclose(self) -> None:
        """Close with code 1000 within ``limits.close_timeout_s``; abort the socket after."""
        self._closing = True
        with anyio.move_on_after(self._limits.close_timeout_s) as scope:
            await self._ws.close()
        if scope.cancelled_caught:
            self._ws.transport.abort()
