"""websockets connector for Phonic speech-to-speech.

The connector dials ``<url>`` (``wss://api.phonic.ai/v1/sts/ws``) with the request's query —
``reconnect_conv_id`` when the translator resumes a conversation — and ``Authorization:
Bearer <key>``, sends the handshake frames, and hands back a :class:`PhonicConnection` that
moves raw frames (text, or bytes when the server sends a binary frame). Every await has a
deadline from :class:`~antiphon.adapters.Limits` (connect, send, close); ``receive`` waits as
long as the server is quiet, since silence is normal.

This is not the official SDK, on purpose: the SDK drops whatever it is asked to send while it
reconnects, and the runtime must decide itself what to re-send on a new connection.

asyncio only: ``websockets.asyncio`` runs on the asyncio event loop, so :meth:`connect`
raises a clear error when called under trio.

Foreign exceptions are translated here, once: a refused upgrade becomes ``ProviderError``
with ``http_status`` (and ``retry_after_s`` from ``Retry-After``), a missed deadline
``ProviderTimeout`` with a ``condition``, and any end of the socket we did not ask for
``ConnectionLostError`` with its ``close_code`` and, as ``provider_code``, the close reason
the server gave (``"restarting"`` makes a 1001 resumable). The API key is never logged
(websockets' debug lines of request headers are redacted) and never shown in a ``repr``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from ...errors import ConnectionLostError, ProviderError, ProviderTimeout
from .._contract import ConnectRequest, Frame, Limits
from .._http import parse_retry_after
from .._redact import RedactCredentials, protect_logs, register_secret
from ._translator import PROVIDER

__all__ = ["DEFAULT_URL", "PhonicConnection", "PhonicConnector"]

DEFAULT_URL: Final = "wss://api.phonic.ai/v1/sts/ws"

_MAX_SIZE: Final = 4 * 1024 * 1024
"""Largest incoming message: one ``audio_chunk`` carries at most 40 ms of audio, but config
echoes and tool reports may be larger; websockets' 1 MiB default is kept well clear of."""

_MAX_REASON: Final = 64


_WS_LOGGER: Final = logging.getLogger("antiphon.adapters.phonic.websocket")
_WS_LOGGER.addFilter(RedactCredentials())


class PhonicConnection:
    """One open websocket to Phonic (one epoch). Not for concurrent ``receive`` calls."""

    def __init__(self, ws: ClientConnection, *, limits: Limits) -> None:
        self._ws = ws
        self._limits = limits
        self._closing = False

    def __repr__(self) -> str:
        return f"PhonicConnection(closing={self._closing})"

    def _lost(self, exc: ConnectionClosed) -> ConnectionLostError:
        # No close frame received means the TCP connection just ended: 1006 by convention.
        code = exc.rcvd.code if exc.rcvd is not None else 1006
        reason = (exc.rcvd.reason if exc.rcvd is not None else "")[:_MAX_REASON]
        by = "the client" if self._closing else "the server"
        return ConnectionLostError(
            f"{PROVIDER}: connection closed by {by} (code {code}"
            + (f", reason {reason!r})" if reason else ")"),
            provider=PROVIDER,
            close_code=code,
            provider_code=reason,
            recoverable=not self._closing,
        )

    async def send(self, frame: Frame) -> None:
        """Send one frame within ``limits.send_timeout_s``.

        Raises:
            ConnectionLostError: the connection is gone.
            ProviderTimeout: the send missed its deadline.
        """
        try:
            with anyio.fail_after(self._limits.send_timeout_s):
                await self._ws.send(frame)
        except TimeoutError as exc:
            raise ProviderTimeout(
                f"{PROVIDER}: send missed its {self._limits.send_timeout_s} s deadline",
                provider=PROVIDER,
                condition="send_timeout",
                recoverable=True,
            ) from exc
        except ConnectionClosed as exc:
            raise self._lost(exc) from exc

    async def receive(self) -> Frame:
        """The next frame from Phonic.

        Raises:
            ConnectionLostError: the connection ended, with its close code and reason —
                including a clean-looking 1000 that we did not ask for.
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


class PhonicConnector:
    """Opens Phonic websockets.

    Args:
        api_key: The secret; sent only as ``Authorization: Bearer``.
        url: Endpoint (``ws://127.0.0.1:PORT/v1/sts/ws`` for an emulator).
        limits: Connect/send/close deadlines.
        ping_interval: websocket keepalive ping period in seconds; ``None`` turns it off.
        extra_headers: Further non-secret headers.
        extra_query: Further URL query parameters sent on every dial.
    """

    def __init__(
        self,
        *,
        api_key: str,
        url: str = DEFAULT_URL,
        limits: Limits | None = None,
        ping_interval: float | None = 20.0,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        self.limits = limits if limits is not None else Limits()
        self.ping_interval = ping_interval
        self.extra_headers = dict(extra_headers or {})
        self.extra_query = dict(extra_query or {})
        self.__api_key = api_key
        register_secret(api_key)  # hidden wherever a library logs it, not only as a header
        protect_logs()

    def __repr__(self) -> str:
        return f"PhonicConnector(url={self.url!r})"

    def uri(self, request: ConnectRequest) -> str:
        """The URL to dial: the configured one plus the extra and the request's query."""
        parts = urlsplit(self.url)
        query = dict(parse_qsl(parts.query))
        query.update(self.extra_query)
        query.update(request.query)
        return urlunsplit(parts._replace(query=urlencode(query)))

    def _headers(self, request: ConnectRequest) -> dict[str, str]:
        headers = {**self.extra_headers, **request.headers}
        headers["Authorization"] = f"Bearer {self.__api_key}"
        return headers

    async def connect(
        self, request: ConnectRequest, handshake: Sequence[Frame]
    ) -> PhonicConnection:
        """Dial, then send ``handshake`` frames in order (each within the send deadline).

        Raises:
            ProviderError: the server refused the upgrade (``http_status``; 408, 429 and 5xx
                recoverable) or could not be reached (recoverable); asyncio is not running.
            ProviderTimeout: connecting missed ``limits.connect_timeout_s``.
        """
        self._require_asyncio()
        timeout = self.limits.connect_timeout_s
        try:
            with anyio.fail_after(timeout):
                ws = await connect(
                    self.uri(request),
                    additional_headers=self._headers(request),
                    open_timeout=None,  # the anyio deadline above governs
                    ping_interval=self.ping_interval,
                    ping_timeout=self.ping_interval,
                    close_timeout=self.limits.close_timeout_s,
                    max_size=_MAX_SIZE,
                    logger=_WS_LOGGER,
                )
        except TimeoutError as exc:
            raise ProviderTimeout(
                f"{PROVIDER}: connect missed its {timeout} s deadline",
                provider=PROVIDER,
                condition="connect_timeout",
                recoverable=True,
            ) from exc
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise ProviderError(
                f"{PROVIDER}: server refused the websocket upgrade with HTTP {status}"
                + (" (check PHONIC_API_KEY)" if status in (401, 403) else ""),
                provider=PROVIDER,
                http_status=status,
                recoverable=status in (408, 429) or status >= 500,
                retry_after_s=parse_retry_after(exc.response.headers.get("Retry-After")),
            ) from exc
        except (InvalidHandshake, OSError) as exc:
            raise ProviderError(
                f"{PROVIDER}: could not connect: {exc}",
                provider=PROVIDER,
                condition="connect_failed",
                recoverable=True,
            ) from exc
        connection = PhonicConnection(ws, limits=self.limits)
        try:
            for frame in handshake:
                await connection.send(frame)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await connection.aclose()
            raise
        return connection

    async def aclose(self) -> None:
        """Nothing to release: every websocket belongs to its connection, closed with it."""

    def _require_asyncio(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError as exc:  # trio (or no event loop at all)
            raise ProviderError(
                f"{PROVIDER}: the websockets connector runs on asyncio only;"
                " run the session on the asyncio backend",
                provider=PROVIDER,
                condition="unsupported_event_loop",
                recoverable=False,
            ) from exc
