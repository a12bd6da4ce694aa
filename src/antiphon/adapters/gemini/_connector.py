"""google-genai connector for Gemini Live (asyncio only).

How this works. ``client.aio.live.connect`` dials the websocket, sends the ``setup`` message
(which it builds itself from a ``LiveConnectConfig``) and waits for the first server frame
(``setupComplete``). The connector builds that ``LiveConnectConfig`` from the translator's
``setup`` frame, so the SDK sends the same setup (its own casing aside), then moves raw frames:

* **Receive** reads the SDK session's underlying websocket (``AsyncSession._ws``, a private
  attribute of google-genai 3.x, covered by this module's tests). The SDK's ``receive()``
  cannot be used: it drops unknown fields, raises ``TypeError`` on an unknown top-level key
  and stops at every ``turnComplete``; journal capture and ``verify`` need the raw frames.
  The ``setupComplete`` frame consumed by the SDK is handed out first, rebuilt from the
  session's ``setup_complete``.
* **Send** writes the translator's JSON frames on the same websocket. ProtoJSON accepts our
  camelCase keys, the frames journalled are exactly the ones on the wire, and audio is not
  re-encoded by the SDK's pydantic models.

Every await has a deadline (``Limits.connect_timeout_s``, ``send_timeout_s``,
``close_timeout_s``). Foreign exceptions become :mod:`antiphon.errors` here: a close with its
``close_code`` (``recoverable`` as :func:`~._translator.classify_close` says), a refused
upgrade with its ``http_status`` and ``Retry-After``, a failure we detect ourselves with a
``condition``. Keepalive pings are off (``ping_interval=None``): Gemini's
slow pongs make the websockets default time out on healthy connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import websockets
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from websockets.asyncio.client import ClientConnection

from antiphon.errors import ConnectionLostError, ProviderError, ProviderTimeout

from .._contract import ConnectRequest, Disposition, Frame, Limits
from .._http import parse_retry_after
from .._redact import protect_logs, register_secret
from ._translator import DEFAULT_LIMITS, PROVIDER, RETRYABLE_HTTP_STATUSES, classify_close

__all__ = ["GeminiConnection", "GeminiConnector", "live_connect_config", "translate_error"]

_MAX_FRAME = 32 * 2**20  # a whole-turn bundled message can exceed websockets' 1 MiB default
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _require_asyncio() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise ProviderError(
            "the Gemini connector needs asyncio (google-genai is asyncio-only); "
            "run this session under asyncio, not trio",
            provider=PROVIDER,
            condition="unsupported_event_loop",
        ) from None


def _close_error(code: int, reason: str) -> ConnectionLostError:
    return ConnectionLostError(
        f"Gemini connection closed: {code} {reason}".rstrip(),
        provider=PROVIDER,
        close_code=code,
        recoverable=classify_close(code, reason).disposition is Disposition.RECOVERABLE,
    )


def translate_error(exc: BaseException) -> ProviderError:
    """The antiphon error for a foreign exception raised by google-genai or websockets."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, genai_errors.APIError):
        details = exc.details
        reason = details if isinstance(details, str) else json.dumps(details, default=str)
        return _close_error(int(exc.code or 1006), reason)
    if isinstance(exc, websockets.exceptions.ConnectionClosed):
        if exc.rcvd is not None:
            return _close_error(exc.rcvd.code, exc.rcvd.reason)
        return _close_error(1006, "abnormal closure")
    if isinstance(exc, websockets.exceptions.InvalidStatus):
        status = exc.response.status_code
        return ProviderError(
            f"Gemini refused the connection: HTTP {status}",
            provider=PROVIDER,
            http_status=status,
            recoverable=status in RETRYABLE_HTTP_STATUSES or status >= 500,
            retry_after_s=parse_retry_after(exc.response.headers.get("Retry-After")),
        )
    if isinstance(exc, TimeoutError):
        return ProviderTimeout("Gemini missed a deadline", provider=PROVIDER, condition="timeout")
    if isinstance(exc, ssl.SSLError):
        return ProviderError(f"TLS failure: {exc}", provider=PROVIDER, condition="tls")
    if isinstance(exc, OSError | websockets.exceptions.InvalidHandshake):
        return ConnectionLostError(
            f"cannot reach Gemini: {exc}", provider=PROVIDER, condition="connect", recoverable=True
        )
    return ProviderError(f"Gemini failure: {exc!r}", provider=PROVIDER, condition="sdk")


def _sdk_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """A setup tool for the SDK: a JSON schema the SDK's ``Schema`` cannot hold (type
    lists, ``$ref``...) goes as ``parametersJsonSchema``, which it passes through verbatim."""
    decls = tool.get("functionDeclarations")
    if not isinstance(decls, list):
        return dict(tool)
    out = []
    for decl in decls:
        decl = dict(decl)
        params = decl.get("parameters")
        if params is not None:
            try:
                types.Schema.model_validate(params)
            except Exception:
                decl["parametersJsonSchema"] = decl.pop("parameters")
        out.append(decl)
    return {**tool, "functionDeclarations": out}


def live_connect_config(setup: Mapping[str, Any]) -> types.LiveConnectConfig:
    """The SDK config that makes google-genai send ``setup`` (a translator setup object).

    ``generationConfig`` fields move to the top level (the SDK's deprecated
    ``generation_config`` would warn); ``model`` is passed to ``connect`` separately.

    Raises:
        ProviderError: a field the SDK does not know or cannot hold.
    """
    cfg: dict[str, Any] = {}
    for key, value in setup.items():
        if key == "model":
            continue
        if key in ("generationConfig", "generation_config"):
            cfg.update(value)
        elif key == "tools":
            cfg["tools"] = [_sdk_tool(t) for t in value]
        else:
            cfg[key] = value
    try:
        return types.LiveConnectConfig.model_validate(cfg)
    except Exception as exc:
        raise ProviderError(
            f"setup cannot be expressed for google-genai: {exc}",
            provider=PROVIDER,
            condition="setup",
        ) from exc


class GeminiConnection:
    """One open Gemini Live connection. Use :meth:`GeminiConnector.connect`."""

    def __init__(
        self,
        session: Any,
        stack: contextlib.AsyncExitStack,
        limits: Limits,
        first_frame: str,
    ) -> None:
        self._session = session
        # The SDK's private websocket (google-genai 3.x ``AsyncSession._ws``): see the module
        # docstring for why raw frames are read and written here.
        self._ws: ClientConnection = session._ws
        self._stack = stack
        self._limits = limits
        self._pending: list[str] = [first_frame]
        self._closed = False

    @property
    def websocket(self) -> ClientConnection:
        """The underlying websocket (for diagnostics and tests)."""
        return self._ws

    async def send(self, frame: Frame) -> None:
        """Send one raw frame within ``send_timeout_s``.

        Raises:
            ConnectionLostError: the connection is gone (with its close code).
            ProviderTimeout: the send missed its deadline.
        """
        try:
            async with asyncio.timeout(self._limits.send_timeout_s):
                await self._ws.send(frame)
        except TimeoutError as exc:
            raise ProviderTimeout(
                f"send missed its {self._limits.send_timeout_s} s deadline",
                provider=PROVIDER,
                condition="send_timeout",
                recoverable=True,
            ) from exc
        except (websockets.exceptions.ConnectionClosed, OSError) as exc:
            raise translate_error(exc) from exc

    async def receive(self) -> Frame:
        """The next raw frame (text or bytes, as the server sent it).

        Raises:
            ConnectionLostError: the connection ended, gracefully or not.
        """
        if self._pending:
            return self._pending.pop(0)
        try:
            return await self._ws.recv()
        except (websockets.exceptions.ConnectionClosed, OSError) as exc:
            raise translate_error(exc) from exc

    @property
    def close_code(self) -> int | None:
        """The close code, once closed."""
        return self._ws.close_code

    async def aclose(self) -> None:
        """Close within ``close_timeout_s``; abort the transport if that runs out."""
        if self._closed:
            return
        self._closed = True
        try:
            async with asyncio.timeout(self._limits.close_timeout_s):
                await self._stack.aclose()
        except TimeoutError:
            self._ws.transport.abort()
        except (genai_errors.APIError, websockets.exceptions.WebSocketException, OSError):
            pass  # closing a connection that already failed: nothing left to do


class GeminiConnector:
    """Opens Gemini Live connections with google-genai.

    Args:
        model: Model passed to ``connect`` (the translator's ``setup.model`` wins).
        api_key: Gemini API key (or Vertex express-mode key).
        base_url: Endpoint override, e.g. an emulator's ``https://127.0.0.1:PORT``.
        api_version: API version in the websocket path (pinned: the SDK default moved).
        vertex: Use Vertex AI (``project``/``location`` and application default
            credentials, or ``api_key`` in express mode).
        project: Vertex project.
        location: Vertex location.
        ssl_context: TLS context (e.g. one trusting a test CA); None uses the system store.
        limits: Deadlines.
        headers: Extra non-secret headers.

    Raises:
        ProviderError: google-genai rejects the credentials or options
            (``condition="config"``).
    """

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None,
        base_url: str | None = None,
        api_version: str = "v1beta",
        vertex: bool = False,
        project: str | None = None,
        location: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        limits: Limits = DEFAULT_LIMITS,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.model = model
        self.limits = limits
        register_secret(api_key)  # websockets logs the x-goog-api-key header at debug
        protect_logs()
        socket_args: dict[str, Any] = {
            "ping_interval": None,
            "max_size": _MAX_FRAME,
            "open_timeout": limits.connect_timeout_s,
            "close_timeout": limits.close_timeout_s,
        }
        if ssl_context is not None:
            socket_args["ssl"] = ssl_context
        if base_url is not None:
            base_url = base_url.rstrip("/")  # a trailing slash would give a //ws/... path
            if urlsplit(base_url).hostname in _LOOPBACK:
                socket_args["proxy"] = None  # never send local traffic to an env proxy
        http_options = types.HttpOptions(
            base_url=base_url,
            api_version=api_version,
            headers=dict(headers or {}),
            async_client_args=socket_args,
        )
        try:
            self._client = genai.Client(
                api_key=api_key,
                vertexai=vertex,  # explicit: GOOGLE_GENAI_USE_VERTEXAI must not flip it
                project=project,
                location=location,
                http_options=http_options,
            )
        except ValueError as exc:  # conflicting or missing credentials
            raise ProviderError(
                f"google-genai rejected the configuration: {exc}",
                provider=PROVIDER,
                condition="config",
            ) from exc
        self._closed = False

    async def aclose(self) -> None:
        """Close the google-genai client's HTTP pools, within ``close_timeout_s``; idempotent.

        Live connections are websockets closed with their connection; the client may still
        hold HTTP connection pools (created on first use), which are released here.
        """
        if self._closed:
            return
        self._closed = True
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # not on asyncio (trio): connect never ran, so the client opened nothing
        # A pool that fails or hangs while closing has nothing the session still needs.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.limits.close_timeout_s):
                await self._client.aio.aclose()

    async def connect(
        self, request: ConnectRequest, handshake: Sequence[Frame]
    ) -> GeminiConnection:
        """Dial, have the SDK send ``handshake[0]`` (the setup), wait for ``setupComplete``,
        then send the rest of the handshake (history seeding) raw.

        Raises:
            ProviderError: not running on asyncio; the setup cannot be expressed; the
                upgrade was refused (``http_status``); TLS failed.
            ConnectionLostError: the server closed during setup (its ``close_code``).
            ProviderTimeout: connecting missed ``connect_timeout_s``.
        """
        _require_asyncio()
        protect_logs()  # loggers the SDK created since (it imports lazily)
        if not handshake:
            raise ProviderError(
                "empty handshake: a setup frame is required", provider=PROVIDER, condition="setup"
            )
        try:
            message = json.loads(handshake[0])
            setup = message["setup"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError(
                "the first handshake frame must be {'setup': ...}",
                provider=PROVIDER,
                condition="setup",
            ) from exc
        config = live_connect_config(setup)
        if request.headers:
            config.http_options = types.HttpOptions(headers=dict(request.headers))
        model = str(setup.get("model") or self.model)
        stack = contextlib.AsyncExitStack()
        try:
            async with asyncio.timeout(self.limits.connect_timeout_s):
                session = await stack.enter_async_context(
                    self._client.aio.live.connect(model=model, config=config)
                )
        except TimeoutError as exc:
            await stack.aclose()
            raise ProviderTimeout(
                f"connect missed its {self.limits.connect_timeout_s} s deadline",
                provider=PROVIDER,
                condition="connect_timeout",
                recoverable=True,
            ) from exc
        except Exception as exc:
            await stack.aclose()
            raise translate_error(exc) from exc
        done = session.setup_complete
        if done is None:
            await stack.aclose()
            raise ProviderError(
                "Gemini answered the setup without setupComplete",
                provider=PROVIDER,
                condition="setup",
                recoverable=True,
            )
        first = {"setupComplete": {"sessionId": done.session_id} if done.session_id else {}}
        connection = GeminiConnection(session, stack, self.limits, json.dumps(first))
        try:
            for frame in handshake[1:]:
                await connection.send(frame)
        except BaseException:
            await connection.aclose()
            raise
        return connection
