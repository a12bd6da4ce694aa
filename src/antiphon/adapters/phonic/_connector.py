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

from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection

from .._contract import ConnectRequest, Frame, Limits
from .._redact import protect_logs, register_secret
from .._websocket import WebSocketConnection, dial, websocket_logger
from ._translator import PROVIDER

__all__ = ["DEFAULT_URL", "PhonicConnection", "PhonicConnector"]

DEFAULT_URL: Final = "wss://api.phonic.ai/v1/sts/ws"

_MAX_SIZE: Final = 4 * 1024 * 1024
"""Largest incoming message: one ``audio_chunk`` carries at most 40 ms of audio, but config
echoes and tool reports may be larger; websockets' 1 MiB default is kept well clear of."""


_WS_LOGGER: Final = websocket_logger("antiphon.adapters.phonic.websocket")


class PhonicConnection(WebSocketConnection):
    """One open websocket to Phonic (one epoch). Every close by the server is reported as
    recoverable, with its reason as ``provider_code`` (``restarting``): what it means for
    the conversation — resume inside the grace window or start over — is the translator's
    ``classify``."""

    def __init__(self, ws: ClientConnection, *, limits: Limits) -> None:
        super().__init__(
            ws,
            provider=PROVIDER,
            limits=limits,
            recoverable_close=lambda code, reason: True,
            reason_is_code=True,
        )


class PhonicConnector:
    """Opens Phonic websockets.

    Args:
        api_key: The secret; sent only as ``Authorization: Bearer``.
        url: Endpoint (``ws://127.0.0.1:PORT/v1/sts/ws`` for an emulator).
        limits: Connect/send/close deadlines.
        ping_interval: websocket keepalive ping period in seconds; ``None`` turns it off.
        extra_headers: Further non-secret headers.
        extra_query: Further URL query parameters sent on every dial.
        compress: Offer permessage-deflate on the socket.
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
        compress: bool = False,
    ) -> None:
        self.url = url
        self.compress = compress
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
        ws = await dial(
            self.uri(request),
            headers=self._headers(request),
            provider=PROVIDER,
            limits=self.limits,
            ping_interval=self.ping_interval,
            max_size=_MAX_SIZE,
            logger=_WS_LOGGER,
            refused_hint="check PHONIC_API_KEY",
            recoverable_status=lambda status: status in (408, 429) or status >= 500,
            compress=self.compress,
        )
        connection = PhonicConnection(ws, limits=self.limits)
        await connection.send_all(handshake)
        return connection

    async def aclose(self) -> None:
        """Nothing to release: every websocket belongs to its connection, closed with it."""
