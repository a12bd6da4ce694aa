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

from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection

from .._contract import ConnectRequest, Frame, Limits
from .._redact import protect_logs, register_secret
from .._websocket import WebSocketConnection, dial, websocket_logger
from ._translator import close_code_recoverable, http_status_recoverable

__all__ = ["OpenAIConnection", "OpenAIConnector"]

DEFAULT_MAX_SIZE: Final = 16 * 1024 * 1024
"""Largest incoming message accepted. websockets' 1 MiB default is too small for the
biggest server events (a long ``response.done``, a large audio delta)."""


_WS_LOGGER: Final = websocket_logger("antiphon.adapters.openai.websocket")


class OpenAIConnection(WebSocketConnection):
    """One open websocket to OpenAI or xAI (one epoch). A close by the server is
    recoverable unless its code is a refusal (1008, 4000-4999)."""

    def __init__(self, ws: ClientConnection, *, provider: str, limits: Limits) -> None:
        super().__init__(
            ws,
            provider=provider,
            limits=limits,
            recoverable_close=lambda code, reason: close_code_recoverable(code),
        )


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
        compress: Offer permessage-deflate on the socket.
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
        compress: bool = False,
    ) -> None:
        self.url = url
        self.compress = compress
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
        ws = await dial(
            self.uri(request),
            headers=self._headers(request),
            provider=self.provider,
            limits=self.limits,
            ping_interval=self.ping_interval,
            max_size=self.max_size,
            logger=_WS_LOGGER,
            refused_hint="check the API key",
            recoverable_status=http_status_recoverable,
            compress=self.compress,
        )
        connection = OpenAIConnection(ws, provider=self.provider, limits=self.limits)
        await connection.send_all(handshake)
        return connection

    async def aclose(self) -> None:
        """Nothing to release: every websocket belongs to its connection, closed with it."""
