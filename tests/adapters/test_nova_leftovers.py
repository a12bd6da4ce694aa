"""What the Nova SDK leaves behind: the connector's held tasks and its body-writer error filter.

The filter is checked with real asyncio tasks whose coroutine has awscrt's qualified name, so
no stream has to fail at the right moment; the end-to-end tests (tests/e2e/test_nova_e2e.py)
and the connector tests (tests/emulators/test_nova_emulator.py) run against the real SDK.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from antiphon.adapters.nova import NovaSonic
from antiphon.adapters.nova._leftovers import (
    Leftovers,
    _HookFilter,
    acquire_error_filter,
    error_filter_installed,
    release_error_filter,
)

pytestmark = pytest.mark.anyio

STREAM_COMPLETED = RuntimeError("AWS_ERROR_HTTP_STREAM_HAS_COMPLETED: stream is complete")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the Nova SDK is asyncio-only, and so is what it leaves behind


class AIOHttp2ClientStream:
    """Stands in for awscrt's class: only the body writer's qualified name matters."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def _set_request_body_generator(self) -> None:
        await self.release.wait()
        raise STREAM_COMPLETED


class Reports:
    """The loop's exception handler before the filter: records what reaches it."""

    def __init__(self) -> None:
        self.contexts: list[dict[str, Any]] = []

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.contexts.append(context)


@pytest.fixture
async def reports() -> AsyncIterator[Reports]:
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    handler = Reports()
    loop.set_exception_handler(handler)
    yield handler
    loop.set_exception_handler(previous)


async def test_the_filter_drops_body_writer_reports_and_passes_the_rest(reports: Reports) -> None:
    loop = asyncio.get_running_loop()
    acquire_error_filter(loop)
    try:
        stream = AIOHttp2ClientStream()
        writer = loop.create_task(stream._set_request_body_generator())
        loop.call_exception_handler(
            {
                "message": "Task exception was never retrieved",
                "exception": STREAM_COMPLETED,
                "future": writer,
            }
        )
        loop.call_exception_handler(
            {"message": "Task was destroyed but it is pending!", "task": writer}
        )
        other = ValueError("not the SDK's")
        loop.call_exception_handler({"message": "something else", "exception": other})
        stream.release.set()
        with pytest.raises(RuntimeError):
            await writer
    finally:
        release_error_filter(loop)
    assert [c["message"] for c in reports.contexts] == ["something else"]
    assert loop.get_exception_handler() is reports


async def test_the_filter_is_counted_and_restores_what_was_there(reports: Reports) -> None:
    loop = asyncio.get_running_loop()
    hook = sys.unraisablehook
    acquire_error_filter(loop)
    acquire_error_filter(loop)  # two sessions on one loop
    assert error_filter_installed(loop)
    assert loop.get_exception_handler() is not reports
    # The process-wide hook may already be filtered by an earlier session's connector whose
    # SDK tasks still run; either way it is a filter now, and is restored as it was below.
    assert isinstance(sys.unraisablehook, _HookFilter)
    release_error_filter(loop)
    assert error_filter_installed(loop)  # the other session still runs
    release_error_filter(loop)
    assert not error_filter_installed(loop)
    assert loop.get_exception_handler() is reports
    assert sys.unraisablehook is hook


async def test_held_tasks_have_their_failures_retrieved(reports: Reports) -> None:
    leftovers = Leftovers()
    stream = AIOHttp2ClientStream()
    writer = asyncio.get_running_loop().create_task(stream._set_request_body_generator())
    leftovers.keep(writer)
    stream.release.set()
    async with asyncio.timeout(5):
        while leftovers:
            await asyncio.sleep(0.001)
    del writer
    gc.collect()
    # No filter is installed: nothing was reported because the failure was retrieved.
    assert reports.contexts == []


async def test_leftovers_drain_is_bounded_and_holds_what_still_runs() -> None:
    leftovers = Leftovers()
    release = asyncio.Event()
    task = asyncio.ensure_future(release.wait())
    leftovers.keep(task)
    drained: list[str] = []
    assert await leftovers.drain(0.01) == 1
    leftovers.when_drained(lambda: drained.append("now"))
    assert drained == []
    assert len(leftovers) == 1
    release.set()
    async with asyncio.timeout(5):
        while not drained:
            await asyncio.sleep(0.001)
    assert len(leftovers) == 0
    leftovers.when_drained(lambda: drained.append("at once"))
    assert drained == ["now", "at once"]


async def test_a_connector_that_never_connected_closes_at_once() -> None:
    connector = NovaSonic(endpoint_uri="https://127.0.0.1:9").new_connector()
    async with asyncio.timeout(1):
        await connector.aclose()
        await connector.aclose()
    assert connector.leftover_tasks == 0
    assert not error_filter_installed(asyncio.get_running_loop())


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_closing_a_connector_on_trio_is_a_no_op() -> None:
    # connect() refuses to run on trio, so there is never anything to release there.
    connector = NovaSonic(endpoint_uri="https://127.0.0.1:9").new_connector()
    await connector.aclose()
    assert connector.leftover_tasks == 0
