"""websockets connector for OpenAI Realtime and xAI Grok voice.

The connector dials ``<url>?model=<model>`` with ``Authorization: Bearer <key>``, sends the
handshake frames, and hands back a :class:`OpenAIConnection` that moves raw JSON text frames.
Every await has a deadline from :class:`~antiphon.adapters.Limits` (connect, send, close);
``receive`` waits as long as the provider is silent, since silence is normal.

asyncio only: ``websockets.asyncio`` runs on the asyncio event loop, so :meth:`connect`
raises a clear error when called under trio.

Foreign exceptions are translated here, once: a refused upgrade becomes ``ProviderError``
with ``http_status`` (and ``retry_after_s`` from ``Retry-After``; 408, 429 and 5xx are
recoverable), a missed deadline ``ProviderTimeout`` with a ``condition``, and any end of the
socket we did not ask for — even a clean 1000/1001 — ``ConnectionLostError`` with its
``close_code``. The API key is never logged (websockets' debug log of request headers is
redacted) and never shown in a ``repr``.
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
from ._translator import close_code_recoverable, http_status_recoverable

__all__ = ["OpenAIConnection", "OpenAIConnector"]

DEFAULT_MAX_SIZE: Final = 16 * 1024 * 1024
"""Largest incoming message accepted. websockets' 1 MiB default is too small for the
biggest server events (a long ``response.done``, a large audio delta)."""


_WS_LOGGER: Final = logging.getLogger("antiphon.adapters.openai.websocket")
_WS_LOGGER.addFilter(RedactCredentials())


def _close_code(exc: ConnectionClosed) -> int:
    # No close frame received means the TCP connection just ended: 1006 by convention.
    return exc.rcvd.code if exc.rcvd is not None else 1006


def _close_reason(exc: ConnectionClosed) -> str:
    return exc.rcvd.reason if exc.rcvd is not None else ""


class OpenAIConnection:
    """One open websocket to the provider (one epoch). Not for concurrent ``receive`` calls."""

    def __init__(self, ws: ClientConnection, *, provider: str, limits: Limits) -> None:
        self._ws = ws
        self._provider = provider
        self._limits = limits
        self._closing = False

    def __repr__(self) -> str:
        return f"OpenAIConnection(provider={self._provider!r}, closing={self._closing})"

    def _lost(self, exc: ConnectionClosed) -> ConnectionLostError:
        code = _close_code(exc)
        reason = _close_reason(exc)
        if self._closing:
            return ConnectionLostError(
                f"{self._provider}: connection closed by the client",
                provider=self._provider,
                close_code=code,
                recoverable=False,
            )
        return ConnectionLostError(
            f"{self._provider}: connection closed by the server (code {code}"
            + (f", reason {reason!r})" if reason else ")"),
            provider=self._provider,
            close_code=code,
            recoverable=close_code_recoverable(code),
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
                f"{self._provider}: send missed its {self._limits.send_timeout_s} s deadline",
                provider=self._provider,
                condition="send_timeout",
                recoverable=True,
            ) from exc
        except ConnectionClosed as exc:
            raise self._lost(exc) from exc

    async def receive(self) -> Frame:
        """The next frame from the provider.

        Raises:
            ConnectionLostError: the connection ended, with its close code — including a
                clean-looking 1000/1001 that we did not ask for (recoverable unless the code
                is a refusal: 1008 or 4000-4999).
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


class OpenAIConnector:
    """Opens OpenAI / xAI realtime websockets.

    Args:
        url: Endpoint, e.g. ``wss://api.openai.com/v1/realtime`` (``ws://`` works locally).
        model: Model name, sent as the ``model`` query parameter.
        api_key: The secret; sent only as ``Authorization: Bearer``.
        provider: Provider name for errors (``"openai"`` / ``"xai"``).
        limits: Connect/send/close deadlines.
        beta: Send ``OpenAI-Beta: realtime=v1`` (the beta protocol, Azure).
        ping_interval: websocket keepalive ping period in seconds; ``None`` turns it off.
        max_size: Largest incoming message in bytes.
        extra_headers: Further non-secret headers (e.g. ``OpenAI-Project``).
    """

    def __init__(
        self,
        *,
        url: str,
        model: str,
        api_key: str,
        provider: str = "openai",
        limits: Limits | None = None,
        beta: bool = False,
        ping_interval: float | None = 20.0,
        max_size: int = DEFAULT_MAX_SIZE,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        self.model = model
        self.provider = provider
        self.limits = limits if limits is not None else Limits()
        self.beta = beta
        self.ping_interval = ping_interval
        self.max_size = max_size
        self.extra_headers = dict(extra_headers or {})
        self.__api_key = api_key
        register_secret(api_key)  # hidden wherever a library logs it, not only as a header
        protect_logs()

    def __repr__(self) -> str:
        return (
            f"OpenAIConnector(provider={self.provider!r}, url={self.url!r}, model={self.model!r})"
        )

    def uri(self, request: ConnectRequest) -> str:
        """The URL to dial: the configured one plus ``model`` and the request's query."""
        parts = urlsplit(self.url)
        query = dict(parse_qsl(parts.query))
        if self.model:
            query["model"] = self.model
        query.update(request.query)
        return urlunsplit(parts._replace(query=urlencode(query)))

    def _headers(self, request: ConnectRequest) -> dict[str, str]:
        headers = {**self.extra_headers, **request.headers}
        if self.beta:
            headers["OpenAI-Beta"] = "realtime=v1"
        headers["Authorization"] = f"Bearer {self.__api_key}"
        return headers

    async def connect(
        self, request: ConnectRequest, handshake: Sequence[Frame]
    ) -> OpenAIConnection:
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
                    max_size=self.max_size,
                    logger=_WS_LOGGER,
                )
        except TimeoutError as exc:
            raise ProviderTimeout(
                f"{self.provider}: connect missed its {timeout} s deadline",
                provider=self.provider,
                condition="connect_timeout",
                recoverable=True,
            ) from exc
        except InvalidStatus as exc:
            raise self._refused(exc) from exc
        except (InvalidHandshake, OSError) as exc:
            raise ProviderError(
                f"{self.provider}: could not connect: {exc}",
                provider=self.provider,
                condition="connect_failed",
                recoverable=True,
            ) from exc
        connection = OpenAIConnection(ws, provider=self.provider, limits=self.limits)
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

    def _refused(self, exc: InvalidStatus) -> ProviderError:
        status = exc.response.status_code
        return ProviderError(
            f"{self.provider}: server refused the websocket upgrade with HTTP {status}"
            + (" (check the API key)" if status in (401, 403) else ""),
            provider=self.provider,
            http_status=status,
            recoverable=http_status_recoverable(status),
            retry_after_s=parse_retry_after(exc.response.headers.get("Retry-After")),
        )

    def _require_asyncio(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError as exc:  # trio (or no event loop at all)
            raise ProviderError(
                f"{self.provider}: the websockets connector runs on asyncio only;"
                " run the session on the asyncio backend",
                provider=self.provider,
                condition="unsupported_event_loop",
                recoverable=False,
            ) from exc
