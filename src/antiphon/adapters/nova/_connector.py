"""Nova Sonic connector: one ``InvokeModelWithBidirectionalStream`` per connection.

How this works: each :meth:`NovaConnector.connect` builds its own ``AsyncBedrockRuntimeClient``
over its own ``AWSCRTHTTPClient`` transport (the SDK's default aiohttp transport cannot do
duplex streams), opens the stream, sends the translator's handshake frames, and waits for the
response headers. Frames are the JSON bytes of one Nova event; the connection wraps them in the
SDK's ``InvokeModelWithBidirectionalStreamInputChunk`` and unwraps received chunks.

The SDK has hazards this module guards (PROVIDERS.md §1.9):

* a send on a dead stream can block forever, so every send runs under ``send_timeout_s`` and a
  failed send marks the connection dead: no send is ever awaited on it again;
* ``input_stream.close()`` can hang and cannot be cancelled, so :meth:`NovaConnection.aclose`
  runs it in a detached task and abandons it after ``close_timeout_s``; the connector holds
  what it abandoned, and :meth:`NovaConnector.aclose` waits for it (bounded);
* awscrt's request-body task fails unretrieved when a stream ends with input queued, which
  asyncio reports with tracebacks: the connector installs a filter for exactly those reports
  on its first connect, and :meth:`NovaConnector.aclose` removes it (:mod:`._leftovers`);
* ``receive()`` returns ``None`` for an RST_STREAM, a GOAWAY, a TCP reset and a graceful end
  alike, so ``None`` before our own ``sessionEnd`` is an abnormal close
  (:class:`~antiphon.errors.ConnectionLostError`, condition ``"eof"``, recoverable).

SDK exceptions are translated once, here (:func:`translate_exception`), into
:class:`~antiphon.errors.ProviderError` with typed fields: ``provider_code`` is the service's
error name (the modeled exception's class name, or an unmodeled error's ``:error-code``),
``http_status`` and ``retry_after_s`` come from the SDK's response metadata when it has them,
and ``condition`` names a failure of the stream itself; ``recoverable`` (and the throttling
wait) follow :func:`~._errors.classify_error`.

The SDK is asyncio-only: on any other event loop (trio) ``connect`` fails with a clear
:class:`~antiphon.errors.ProviderError` (condition ``"unsupported_event_loop"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ...errors import ConnectionLostError, ProviderError, ProviderTimeout
from .._contract import ConnectRequest, Disposition, Frame, Limits
from .._redact import protect_logs, register_secret
from ._errors import classify_error
from ._leftovers import Leftovers, acquire_error_filter, release_error_filter

__all__ = [
    "NovaConnection",
    "NovaConnector",
    "NovaCredentials",
    "translate_exception",
]

_PROVIDER = "nova"
_DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True, kw_only=True)
class NovaCredentials:
    """Static AWS credentials (an override of the standard chain). Never printed."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


def _require_asyncio() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        # Under trio (or no loop at all) there is no running asyncio loop.
        raise ProviderError(
            "the Nova connector needs asyncio: aws-sdk-bedrock-runtime and awscrt are "
            "asyncio-only, and no asyncio event loop is running (trio?)",
            provider=_PROVIDER,
            condition="unsupported_event_loop",
        ) from None


def _make_transport(ca_file: str | None, leftovers: Leftovers) -> Any:
    """An ``AWSCRTHTTPClient`` for one stream; with ``ca_file``, one that trusts only that CA.

    Each stream's request body is written by an awscrt task that can outlive the stream
    (:mod:`._leftovers`); the transport hands that task to ``leftovers`` as soon as it runs,
    so the connector knows exactly which body writers are its own. (The hook overrides the
    transport's body generator, which that task iterates; should an SDK release rename it,
    nothing is held and the connector's error filter still covers the reports.)

    ``__deepcopy__`` returns the transport itself because the SDK deep-copies its config on
    first use and the stock copy builds a fresh client that drops the TLS context and the
    hook; the transport serves one stream only, so sharing it is safe.
    """
    from awscrt import io as crt_io
    from smithy_http.aio.crt import AWSCRTHTTPClient

    class _Transport(AWSCRTHTTPClient):
        def __init__(self) -> None:
            super().__init__()
            if ca_file is not None:
                options = crt_io.TlsContextOptions()
                options.override_default_trust_store_from_path(None, ca_file)
                self._tls_ctx = crt_io.ClientTlsContext(options)

        async def _create_body_generator(self, body: Any) -> AsyncGenerator[bytes, None]:
            writer = asyncio.current_task()  # awscrt's body-writer task iterates this
            if writer is not None:
                leftovers.keep(writer)
            async with contextlib.aclosing(super()._create_body_generator(body)) as chunks:
                async for chunk in chunks:
                    yield chunk

        def __deepcopy__(self, memo: Any) -> _Transport:
            return self

    return _Transport()


def _session_end(frame: Frame) -> bool:
    """True when ``frame`` is our ``sessionEnd`` event (cheap check before parsing)."""
    raw = frame.encode() if isinstance(frame, str) else frame
    if b"sessionEnd" not in raw:
        return False
    try:
        event = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return False
    return isinstance(event, dict) and "sessionEnd" in (event.get("event") or {})


def _is_service_error(exc: BaseException) -> bool:
    from aws_sdk_bedrock_runtime.models import ServiceError

    return isinstance(exc, ServiceError)


def translate_exception(exc: BaseException) -> ProviderError:
    """Translate an SDK / smithy / awscrt exception into an antiphon ``ProviderError``."""
    if isinstance(exc, ProviderError):
        return exc
    from smithy_aws_core.config.exceptions import ConfigError
    from smithy_aws_event_stream.exceptions import EventError, UnmodeledEventError
    from smithy_core.exceptions import CallError, ClientTimeoutError, ModeledError

    message = str(exc)
    provider_code = condition = ""
    http_status: int | None = None
    retry_after_s: float | None = None
    cls: type[ProviderError] = ProviderError
    if isinstance(exc, CallError):
        message = exc.message or message
        http_status = exc.response_metadata.http_status_code
        retry_after_s = exc.retry_after
    if isinstance(exc, ModeledError):  # the service's own errors (ServiceError)
        provider_code = type(exc).__name__
    elif isinstance(exc, ClientTimeoutError):
        condition, cls = "timeout", ProviderTimeout
    elif isinstance(exc, UnmodeledEventError):
        provider_code, message = exc.code, f"{exc.code}: {exc.message}"
    elif isinstance(exc, EventError):
        # The byte stream itself is broken (bad prelude, checksum, header): not the service's
        # error, and a new stream is the way on.
        condition, message = "event_stream", f"{type(exc).__name__}: {message}"
    elif isinstance(exc, KeyError):
        # smithy looks an unknown :exception-type up in the schema without a guard.
        condition, message = "unknown_exception_type", f"unmodeled exception type {message}"
    elif isinstance(exc, OSError):
        condition, cls = "transport", ConnectionLostError
        message = f"{message} ({exc.__cause__!r})" if exc.__cause__ else message
    elif isinstance(exc, ConfigError):
        condition = "config"  # e.g. no region or no credentials could be resolved
    elif "TLS" in message.upper() and "NEGOTIATION" in message.upper():
        condition = "tls"
    else:
        condition, message = "sdk", f"{type(exc).__name__}: {message}"
    error = cls(
        message or provider_code or condition,
        provider=_PROVIDER,
        provider_code=provider_code,
        http_status=http_status,
        condition=condition,
        retry_after_s=retry_after_s,
    )
    verdict = classify_error(error)
    error.recoverable = verdict.disposition is Disposition.RECOVERABLE
    error.retry_after_s = verdict.retry_after_s
    return error


async def _detached(awaitable: Awaitable[Any], timeout_s: float, leftovers: Leftovers) -> bool:
    """Run ``awaitable`` in its own task; wait at most ``timeout_s``; abandon it to
    ``leftovers`` if it hangs.

    Returns True when it finished in time. Its exception, if any, is retrieved and dropped:
    this is only used on teardown paths.
    """

    async def run() -> Any:
        return await awaitable

    task = asyncio.ensure_future(run())
    leftovers.keep(task)
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    return bool(done)


class NovaConnection:
    """One open Nova bidirectional stream (one epoch). Build it with :class:`NovaConnector`."""

    def __init__(self, client: Any, stream: Any, limits: Limits, leftovers: Leftovers) -> None:
        self._client = client
        self._stream = stream
        self._limits = limits
        self._leftovers = leftovers  # the connector's: what this connection abandons
        self._receiver: Any = None
        # The SDK read in progress. It is never cancelled: cancelling it cancels awscrt's
        # future for the next body chunk, and awscrt's completion callback later raises
        # InvalidStateError into the void on it ("Exception ignored in ..."). A receive that
        # is cancelled (a stall timeout) leaves it running; the next receive takes it over,
        # and aclose hands it to the leftovers.
        self._reading: asyncio.Task[Any] | None = None
        self._send_lock = asyncio.Lock()  # the SDK chains signatures: sends must not interleave
        self._alive = True  # False after any send/receive failure: never await a send again
        self._session_end_sent = False
        self._closed = False

    @property
    def alive(self) -> bool:
        """False once a send or receive failed or the stream ended."""
        return self._alive and not self._closed

    @property
    def session_end_sent(self) -> bool:
        return self._session_end_sent

    async def send(self, frame: Frame) -> None:
        """Send one Nova event (JSON bytes).

        Raises:
            antiphon.errors.ConnectionLostError: the stream is dead or closed.
            antiphon.errors.ProviderTimeout: the send missed ``send_timeout_s``.
        """
        from aws_sdk_bedrock_runtime.models import (
            BidirectionalInputPayloadPart,
            InvokeModelWithBidirectionalStreamInputChunk,
        )

        if not self.alive:
            raise ConnectionLostError(
                "Nova stream is no longer usable",
                provider=_PROVIDER,
                condition="dead",
                recoverable=True,
            )
        raw = frame.encode() if isinstance(frame, str) else frame
        chunk = InvokeModelWithBidirectionalStreamInputChunk(
            value=BidirectionalInputPayloadPart(bytes_=raw)
        )
        async with self._send_lock:
            try:
                async with asyncio.timeout(self._limits.send_timeout_s):
                    await self._stream.input_stream.send(chunk)
            except TimeoutError as exc:
                self._alive = False
                raise ProviderTimeout(
                    f"Nova send missed its {self._limits.send_timeout_s} s deadline",
                    provider=_PROVIDER,
                    condition="send_timeout",
                    recoverable=True,
                ) from exc
            except Exception as exc:
                self._alive = False
                raise translate_exception(exc) from exc
        if _session_end(raw):
            self._session_end_sent = True

    async def _await_output(self) -> None:
        _, self._receiver = await self._stream.await_output()

    async def _read(self) -> Any:
        if self._receiver is None:
            await self._await_output()
        return await self._receiver.receive()

    async def receive(self) -> Frame:
        """The next Nova output event's JSON bytes.

        An unknown output union member arrives as ``{"event":{"<member>":{}}}`` so the
        translator keeps it as an ``UnknownProviderEvent``.

        Raises:
            antiphon.errors.ConnectionLostError: the stream ended (condition ``"eof"`` before
                our ``sessionEnd``: recoverable; ``"closed"`` after it).
            antiphon.errors.ProviderError: the service sent an exception event.
        """
        from aws_sdk_bedrock_runtime.models import (
            InvokeModelWithBidirectionalStreamOutputChunk,
            InvokeModelWithBidirectionalStreamOutputUnknown,
        )

        reading = self._reading
        if reading is None:
            reading = self._reading = asyncio.ensure_future(self._read())
        await asyncio.wait({reading})  # a cancelled wait leaves the read running
        self._reading = None
        try:
            event = reading.result()
        except Exception as exc:
            if self._receiver is None:  # the response never started
                self._alive = False
                raise translate_exception(exc) from exc
            error = translate_exception(exc)
            # A modeled service exception ends the output, but the input side still works:
            # the runtime sends the close sequence (contentEnd, promptEnd, sessionEnd) to free
            # the service's resources, each send under its deadline. Anything else (a broken
            # byte stream, a transport error) means the stream is dead.
            if not _is_service_error(exc):
                self._alive = False
            raise error from exc
        if event is None:
            self._alive = False
            if self._session_end_sent or self._closed:
                raise ConnectionLostError(
                    "Nova stream ended after our sessionEnd",
                    provider=_PROVIDER,
                    condition="closed",
                    recoverable=False,
                )
            raise ConnectionLostError(
                "Nova stream ended before our sessionEnd (RST_STREAM, GOAWAY, reset or end)",
                provider=_PROVIDER,
                condition="eof",
                recoverable=True,
            )
        if isinstance(event, InvokeModelWithBidirectionalStreamOutputChunk):
            return event.value.bytes_ or b""
        if isinstance(event, InvokeModelWithBidirectionalStreamOutputUnknown):
            return msgspec.json.encode({"event": {event.tag: {}}})
        # A modeled exception member that the SDK returned instead of raising.
        value = getattr(event, "value", None)
        if isinstance(value, BaseException):
            self._alive = False
            raise translate_exception(value) from value
        return msgspec.json.encode({"event": {type(event).__name__: {}}})

    async def aclose(self) -> None:
        """End input and release the stream and client, within ``close_timeout_s``; never hangs.

        The clean Nova close sequence (``contentEnd``, ``promptEnd``, ``sessionEnd``) is the
        translator's ``encode(CloseSession)``, sent by the runtime before this.
        """
        if self._closed:
            return
        self._closed = True
        if self._reading is not None:
            # Held until the stream's end resolves it: never cancelled (see __init__).
            self._leftovers.keep(self._reading)
            self._reading = None
        timeout = self._limits.close_timeout_s
        if self._alive:
            await _detached(self._stream.input_stream.close(), timeout, self._leftovers)
        self._alive = False
        await _detached(self._client.close(), timeout, self._leftovers)


class NovaConnector:
    """Opens Nova Sonic streams with ``aws-sdk-bedrock-runtime`` (0.12 series).

    Args:
        model: Bedrock model id, e.g. ``"amazon.nova-2-sonic-v1:0"``.
        limits: Deadlines (``connect_timeout_s`` must cover the 12-30 s a TLS failure takes
            to surface), send and close deadlines.
        region: AWS region; None reads ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` and the shared
            config, then falls back to ``us-east-1``.
        endpoint_uri: Endpoint override (the emulator's ``https://127.0.0.1:PORT``); None uses
            the SDK's resolution (including ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``).
        ca_file: PEM CA bundle to trust instead of the system store (the emulator's test CA).
        credentials: Static credentials; None uses the standard AWS chain (env vars included).
        config_file_path / credentials_file_path: Shared AWS files to read (tests point them
            at missing files so no local profile leaks in).
    """

    def __init__(
        self,
        *,
        model: str,
        limits: Limits,
        region: str | None = None,
        endpoint_uri: str | None = None,
        ca_file: str | None = None,
        credentials: NovaCredentials | None = None,
        config_file_path: str | None = None,
        credentials_file_path: str | None = None,
    ) -> None:
        self.model = model
        self.limits = limits
        self.region = region
        self.endpoint_uri = endpoint_uri
        self.ca_file = ca_file
        self._credentials = credentials
        if credentials is not None:  # the SDK logs the signed request at debug
            register_secret(credentials.access_key_id)
            register_secret(credentials.secret_access_key)
            register_secret(credentials.session_token)
        protect_logs()
        self._config_file_path = config_file_path
        self._credentials_file_path = credentials_file_path
        self._leftovers = Leftovers()
        self._filtered_loop: asyncio.AbstractEventLoop | None = None

    @property
    def leftover_tasks(self) -> int:
        """SDK tasks of this connector that have not ended: connect and close attempts it gave
        up waiting for, and its streams' request-body writers."""
        return len(self._leftovers)

    async def aclose(self) -> None:
        """Release what this connector's streams left behind; bounded, idempotent.

        Waits up to ``close_timeout_s`` for its leftover SDK tasks, and removes its
        body-writer error filter once they have all ended: tasks still running when the wait
        ends keep the filter until the last of them ends (they are held, never cancelled:
        awscrt cannot take it). The connector can connect again afterwards.
        """
        loop, self._filtered_loop = self._filtered_loop, None
        if loop is not None:
            # Registered before the wait, so a caller's deadline cutting it short leaks nothing.
            self._leftovers.when_drained(lambda: release_error_filter(loop))
        if self._leftovers:
            await self._leftovers.drain(self.limits.close_timeout_s)

    def _filter_errors(self) -> None:
        """Install the body-writer error filter on this loop, once until :meth:`aclose`."""
        if self._filtered_loop is None:
            self._filtered_loop = asyncio.get_running_loop()
            acquire_error_filter(self._filtered_loop)

    def _close_if_opened(self, task: asyncio.Future[NovaConnection]) -> None:
        """A connect attempt we gave up on finished: close what it opened."""
        if not task.cancelled() and task.exception() is None:
            self._leftovers.keep(asyncio.ensure_future(task.result().aclose()))

    async def _config(self, transport: Any) -> Any:
        from aws_sdk_bedrock_runtime.config import AsyncBedrockRuntimeConfig
        from smithy_aws_core.config.exceptions import ConfigValidationError

        protect_logs()  # the SDK's loggers exist now: its request log holds the signature
        overrides: dict[str, Any] = {"transport": transport, "max_attempts": 1}
        region = self.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            overrides["region"] = region
        if self.endpoint_uri:
            overrides["endpoint_uri"] = self.endpoint_uri
        if self._credentials is not None:
            overrides["aws_access_key_id"] = self._credentials.access_key_id
            overrides["aws_secret_access_key"] = self._credentials.secret_access_key
            if self._credentials.session_token:
                overrides["aws_session_token"] = self._credentials.session_token
        files = {
            "config_file_path": self._config_file_path,
            "credentials_file_path": self._credentials_file_path,
        }
        if "region" not in overrides:
            # No explicit or env region: let the shared config (a profile) supply one, and
            # fall back to us-east-1 when it has none.
            try:
                return await AsyncBedrockRuntimeConfig.resolve(**files, **overrides)
            except ConfigValidationError as exc:
                if "region" not in str(exc):
                    raise
            overrides["region"] = _DEFAULT_REGION
        return await AsyncBedrockRuntimeConfig.resolve(**files, **overrides)

    async def connect(self, request: ConnectRequest, handshake: Sequence[Frame]) -> NovaConnection:
        """Open a stream, send ``handshake``, and wait for the response headers.

        Raises:
            antiphon.errors.ProviderError: refused (the SDK class name as ``provider_code``)
                or the event loop is not asyncio.
            antiphon.errors.ProviderTimeout: not open within ``connect_timeout_s``.
        """
        _require_asyncio()
        self._filter_errors()
        protect_logs()  # loggers the SDK created since (it imports lazily)
        # The attempt runs in its own task that is abandoned, not cancelled, on timeout:
        # cancelling awscrt's connect future makes its later setup callback raise into the
        # void. An attempt that succeeds after we gave up closes its own stream.
        opening = asyncio.ensure_future(self._open(handshake))
        self._leftovers.keep(opening)
        try:
            done, _ = await asyncio.wait({opening}, timeout=self.limits.connect_timeout_s)
        except asyncio.CancelledError:
            opening.add_done_callback(self._close_if_opened)
            raise
        if not done:
            opening.add_done_callback(self._close_if_opened)
            raise ProviderTimeout(
                f"Nova stream not open within {self.limits.connect_timeout_s} s",
                provider=_PROVIDER,
                condition="connect_timeout",
                recoverable=True,
            )
        try:
            return opening.result()
        except Exception as exc:
            raise translate_exception(exc) from exc

    async def _open(self, handshake: Sequence[Frame]) -> NovaConnection:
        from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient
        from aws_sdk_bedrock_runtime.models import (
            InvokeModelWithBidirectionalStreamOperationInput,
        )

        client: Any = None
        try:
            config = await self._config(_make_transport(self.ca_file, self._leftovers))
            client = AsyncBedrockRuntimeClient(config=config)
            stream = await client.invoke_model_with_bidirectional_stream(
                InvokeModelWithBidirectionalStreamOperationInput(model_id=self.model)
            )
            connection = NovaConnection(client, stream, self.limits, self._leftovers)
            await self._start(connection, handshake)
            return connection
        except BaseException:
            if client is not None:
                await _detached(client.close(), self.limits.close_timeout_s, self._leftovers)
            raise

    @staticmethod
    async def _start(connection: NovaConnection, handshake: Sequence[Frame]) -> None:
        """Send the handshake while waiting for the response headers; whichever fails first
        wins (a refused stream stops draining sends, so they must not be awaited alone)."""

        async def send_all() -> None:
            for frame in handshake:
                await connection.send(frame)

        sending = asyncio.ensure_future(send_all())
        output = asyncio.ensure_future(connection._await_output())
        try:
            done, _ = await asyncio.wait({sending, output}, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # raise the first failure
            await sending
            await output
        finally:
            for task in (sending, output):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
