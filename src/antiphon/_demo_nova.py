"""``antiphon demo --provider nova``: the demo conversation against the local Nova emulator.

The session runs through the real ``aws-sdk-bedrock-runtime`` client (``awscrt`` transport,
TLS + HTTP/2) against :class:`~antiphon.emulators.nova.NovaEmulator` on 127.0.0.1.

Nova's signature failure is its stream limit: the service ends every stream after about 8
minutes with ``modelTimeoutException``. The Nova demo always has it hit mid-conversation — on
the first stream, as the user finishes the second utterance (after the first turn is
answered) — and ``--fault`` chooses what else goes wrong on the stream that replaces it:

==============  =================================================================================
``--fault``     Nova demo
==============  =================================================================================
``expire``      the stream limit only
``drop``        the stream limit, then the TCP connection of the next stream is aborted as it
                hears the user's next utterance (the default)
``drop-reply``  the stream limit, then the next stream's connection is aborted in the middle of
                its first spoken reply (after 3 audio chunks)
``stall``       the stream limit, then the emulator goes silent for 1.5 s when the next stream
                gets the tool result (a reply is due); the session's stall timeout (1 s here)
                replaces the stream
``none``        no failure at all (no stream limit either)
==============  =================================================================================

The faults fire at exact points of the conversation, not after a time: the emulator's stream
records are plain lists, and the demo watches the ones it needs (a stream being opened, a user
transcript, a tool result) as the emulator appends to them. Replies are released as fast as
the emulator makes them (Nova generates faster than real time).
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import msgspec

from ._cli_demo import FAULTS, DemoTarget
from .adapters.nova import DEFAULT_LIMITS, NovaCredentials, NovaSonic, wait_abandoned
from .emulators.nova import MODEL_TIMEOUT_MESSAGE, NovaEmulator, NovaStreamRecord
from .errors import AntiphonError

__all__ = ["STALL_S", "STALL_TIMEOUT_S", "demo_target", "quiet_body_writer_errors"]

STALL_S = 1.5
"""How long the emulator goes silent for the ``stall`` fault."""
STALL_TIMEOUT_S = 1.0
"""The session's stall timeout in the ``stall`` demo (the preset's default is 15 s)."""
DROP_REPLY_CHUNK = 3
"""``drop-reply``: the reply audio chunk after which the connection is aborted."""


class _Watched(list[str]):
    """A record list that calls ``on_append(n)`` after its n-th append."""

    def __init__(self, on_append: Callable[[int], None]) -> None:
        super().__init__()
        self._on_append = on_append

    def append(self, item: str) -> None:
        super().append(item)
        self._on_append(len(self))


class _WatchedResults(list[tuple[str, str]]):
    """``tool_results`` of a record, watched the same way."""

    def __init__(self, on_append: Callable[[int], None]) -> None:
        super().__init__()
        self._on_append = on_append

    def append(self, item: tuple[str, str]) -> None:
        super().append(item)
        self._on_append(len(self))


class _Streams(list[NovaStreamRecord]):
    """The emulator's list of stream records: calls ``on_stream(record)`` for each new one,
    before the stream receives anything."""

    def __init__(self, on_stream: Callable[[NovaStreamRecord], None]) -> None:
        super().__init__()
        self._on_stream = on_stream

    def append(self, record: NovaStreamRecord) -> None:
        super().append(record)
        self._on_stream(record)


class _Faults:
    """Schedules the demo's failures on the emulator (see the module docstring)."""

    def __init__(self, emu: NovaEmulator, fault: str) -> None:
        self.emu = emu
        self.fault = fault

    def on_stream(self, record: NovaStreamRecord) -> None:
        if self.fault == "none":
            return
        if record.index == 1:
            record.transcripts = _Watched(self._stream_limit)
        elif record.index == 2:
            if self.fault == "drop":
                record.transcripts = _Watched(self._drop)
            elif self.fault == "drop-reply":
                self.emu.fault_on_reply_audio(DROP_REPLY_CHUNK, "drop")
            elif self.fault == "stall":
                record.tool_results = _WatchedResults(self._stall)

    def _stream_limit(self, transcripts: int) -> None:
        # The second utterance was heard: the first turn is over. The exception goes out
        # before that utterance's transcript, so the next stream hears it again.
        if transcripts == 2:
            self.emu.raise_exception("modelTimeoutException", MODEL_TIMEOUT_MESSAGE)

    def _drop(self, transcripts: int) -> None:
        if transcripts == 1:
            self.emu.drop()

    def _stall(self, results: int) -> None:
        if results == 1:
            self.emu.stall(STALL_S)


_STREAM_COMPLETED = "AWS_ERROR_HTTP_STREAM_HAS_COMPLETED"
_BODY_WRITER = "AIOHttp2ClientStream._set_request_body_generator"


def _is_body_writer(coro: object) -> bool:
    return getattr(coro, "__qualname__", "") == _BODY_WRITER


@contextmanager
def quiet_body_writer_errors() -> Iterator[None]:
    """Keep awscrt's unretrieved request-body-writer errors off the output.

    When a stream ends while the client still has input queued (a stream limit, a drop, even
    a normal close), awscrt's own request-body task fails with error 2080
    (``AWS_ERROR_HTTP_STREAM_HAS_COMPLETED``) and nothing retrieves it, or is left pending and
    destroyed; asyncio then prints "Task exception was never retrieved", "Task was destroyed
    but it is pending!" or "Exception ignored in" with tracebacks (PROVIDERS.md 1.9). It is
    harmless: the connector has already seen the stream end. Only those reports about that
    awscrt task are hidden, and only inside this block; anything else reaches the previous
    handlers.
    """
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    previous_hook = sys.unraisablehook

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        task = context.get("task") or context.get("future")
        coro = task.get_coro() if isinstance(task, asyncio.Task) else None
        if isinstance(exc, RuntimeError) and _STREAM_COMPLETED in str(exc):
            return
        if exc is None and _is_body_writer(coro):
            return  # "Task was destroyed but it is pending!"
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def hook(unraisable: Any) -> None:
        exc = unraisable.exc_value
        if (
            isinstance(exc, RuntimeError)
            and _STREAM_COMPLETED in str(exc)
            and _is_body_writer(unraisable.object)
        ):
            return
        previous_hook(unraisable)

    loop.set_exception_handler(handler)
    sys.unraisablehook = hook
    try:
        yield
    finally:
        gc.collect()  # these are reported when the task is collected: do that now
        sys.unraisablehook = previous_hook
        loop.set_exception_handler(previous)


@asynccontextmanager
async def demo_target(fault: str) -> AsyncIterator[DemoTarget]:
    """Start a Nova emulator with the demo's failures scheduled; yield the preset for it.

    Args:
        fault: One of ``antiphon._cli_demo.FAULTS`` (see the module docstring for what each
            means for Nova).

    Raises:
        antiphon.errors.AntiphonError: an unknown fault.
    """
    if fault not in FAULTS:
        raise AntiphonError(f"unknown fault {fault!r} (choose from {', '.join(FAULTS)})")
    with quiet_body_writer_errors():
        async with _nova_target(fault) as target:
            yield target


@asynccontextmanager
async def _nova_target(fault: str) -> AsyncIterator[DemoTarget]:
    async with NovaEmulator(reply_speed=None) as emu:
        faults = _Faults(emu, fault)
        emu.streams = _Streams(faults.on_stream)
        limits = DEFAULT_LIMITS
        if fault == "stall":
            limits = msgspec.structs.replace(limits, stall_timeout_s=STALL_TIMEOUT_S)
        provider = NovaSonic(
            endpoint_uri=emu.endpoint_uri,
            ca_file=emu.ca_pem_path,
            region="us-east-1",
            credentials=NovaCredentials(access_key_id="demo", secret_access_key="demo"),
            limits=limits,
            # The demo never reads the machine's AWS profile.
            config_file_path="/nonexistent/antiphon-demo/aws-config",
            credentials_file_path="/nonexistent/antiphon-demo/aws-credentials",
        )
        yield DemoTarget(
            provider=provider,
            endpoint=emu.endpoint_uri,
            received_frames=lambda: [chunk for record in emu.streams for chunk in record.audio],
            connections=lambda: len(emu.streams),
        )
    # Stream closes the SDK could not finish in time were abandoned, not cancelled (they
    # cannot be): let them end before the event loop does.
    await wait_abandoned(2.0)
