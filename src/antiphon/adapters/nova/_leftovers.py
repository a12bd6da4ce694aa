"""What ``aws-sdk-bedrock-runtime`` and ``awscrt`` leave behind, and how the connector releases it.

Two SDK hazards outlive a Nova stream (PROVIDERS.md 1.9):

* **Abandoned attempts.** A connect or ``input_stream.close()`` that misses its deadline cannot
  be cancelled (cancelling awscrt's futures makes their later callbacks raise into the void),
  so the connector abandons it in its own task.
* **The request-body writer.** When a stream ends while the client still has input queued (a
  stream limit, a drop, even a normal close), awscrt's own request-body task
  (``AIOHttp2ClientStream._set_request_body_generator``) fails with error 2080
  (``AWS_ERROR_HTTP_STREAM_HAS_COMPLETED``) and nothing retrieves it, or is left pending and
  destroyed; asyncio then prints "Task exception was never retrieved", "Task was destroyed
  but it is pending!" or "Exception ignored in" with tracebacks. It is harmless: the connector
  has already seen the stream end.

:class:`Leftovers` holds both kinds of task until they end (a task garbage collected while
pending is an error asyncio reports), retrieves their outcomes then, and lets the connector's
``aclose()`` wait for them, bounded. :func:`acquire_error_filter` / :func:`release_error_filter`
hide the body-writer reports that can still come (a writer the connector could not hold), and
only those: anything else reaches the handlers that were there before.

The filter is shared: one per event loop (its exception handler) and one per process
(``sys.unraisablehook``), counted, so concurrent sessions on one loop install it once and the
last one to finish removes it.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

__all__ = [
    "Leftovers",
    "acquire_error_filter",
    "error_filter_installed",
    "release_error_filter",
]

_STREAM_COMPLETED = "AWS_ERROR_HTTP_STREAM_HAS_COMPLETED"
_BODY_WRITER = "AIOHttp2ClientStream._set_request_body_generator"


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a finished task's outcome as retrieved (asyncio then reports nothing)."""
    if not task.cancelled():
        task.exception()


class Leftovers:
    """Tasks a connector gave up waiting for, held until they end."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()
        self._on_drained: list[Callable[[], None]] = []

    def __len__(self) -> int:
        """How many are still pending."""
        return len(self._tasks)

    def keep(self, task: asyncio.Future[Any]) -> None:
        """Hold a reference to ``task`` until it ends, and retrieve its outcome then."""
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        _retrieve(task)
        if not self._tasks and self._on_drained:
            # Later: the task's other callbacks may still hand over a follow-up task (a late
            # connect's stream to close), and they run after this one.
            task.get_loop().call_soon(self._check_drained)

    def _check_drained(self) -> None:
        if not self._tasks:
            callbacks, self._on_drained = self._on_drained, []
            for callback in callbacks:
                callback()

    async def drain(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for every held task to end; returns how many have not."""
        pending = set(self._tasks)
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)
        return len(self._tasks)

    def when_drained(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once no task is held (now, if none is)."""
        if self._tasks:
            self._on_drained.append(callback)
        else:
            callback()


def _is_body_writer(coro: object) -> bool:
    return getattr(coro, "__qualname__", "") == _BODY_WRITER


# --------------------------------------------------------------------------- error filter


class _LoopFilter:
    """One loop's exception handler: drops the body-writer reports, passes on the rest."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.previous = loop.get_exception_handler()
        self.users = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        task = context.get("task") or context.get("future")
        coro = task.get_coro() if isinstance(task, asyncio.Task) else None
        if isinstance(exc, RuntimeError) and _STREAM_COMPLETED in str(exc):
            return
        if exc is None and _is_body_writer(coro):
            return  # "Task was destroyed but it is pending!"
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)


class _HookFilter:
    """``sys.unraisablehook``: drops the body writer's 2080 error raised as it is destroyed."""

    def __init__(self) -> None:
        self.previous = sys.unraisablehook
        self.users = 0

    def __call__(self, unraisable: Any) -> None:
        exc = unraisable.exc_value
        if (
            isinstance(exc, RuntimeError)
            and _STREAM_COMPLETED in str(exc)
            and _is_body_writer(unraisable.object)
        ):
            return
        self.previous(unraisable)


# The loop handler and the unraisable hook are shared by every connector of a loop and of the
# process: the filters on them are counted, so sessions that overlap install them once.
_lock = threading.Lock()  # the hook is process-wide; loops may run in several threads
_loop_filters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopFilter] = (
    weakref.WeakKeyDictionary()
)
_hook_filter: _HookFilter | None = None


def acquire_error_filter(loop: asyncio.AbstractEventLoop) -> None:
    """Install the body-writer error filter on ``loop`` (and the process's unraisable hook),
    or count one more user of the installed one."""
    global _hook_filter
    with _lock:
        loop_filter = _loop_filters.get(loop)
        if loop_filter is None:
            loop_filter = _loop_filters[loop] = _LoopFilter(loop)
            loop.set_exception_handler(loop_filter)
        loop_filter.users += 1
        if _hook_filter is None:
            _hook_filter = _HookFilter()
            sys.unraisablehook = _hook_filter
        _hook_filter.users += 1


def release_error_filter(loop: asyncio.AbstractEventLoop) -> None:
    """Count one user less of the filter on ``loop``; the last one removes it, after reporting
    what is already garbage (while it is still filtered), and restores what was there before.

    A handler or hook installed over the filter since is left in place (it may delegate to
    the filter, which stays harmless).
    """
    global _hook_filter
    with _lock:
        loop_filter = _loop_filters.get(loop)
        last_on_loop = loop_filter is not None and loop_filter.users == 1
        last_in_process = _hook_filter is not None and _hook_filter.users == 1
    if last_on_loop or last_in_process:
        gc.collect()  # destroyed tasks are reported when collected: have that happen now
    with _lock:
        if loop_filter is not None and _loop_filters.get(loop) is loop_filter:
            loop_filter.users -= 1
            if loop_filter.users == 0:
                del _loop_filters[loop]
                if loop.get_exception_handler() is loop_filter:
                    loop.set_exception_handler(loop_filter.previous)
        if _hook_filter is not None:
            _hook_filter.users -= 1
            if _hook_filter.users == 0:
                if sys.unraisablehook is _hook_filter:
                    sys.unraisablehook = _hook_filter.previous
                _hook_filter = None


def error_filter_installed(loop: asyncio.AbstractEventLoop) -> bool:
    """True while some connector holds the body-writer error filter on ``loop``."""
    with _lock:
        return loop in _loop_filters
