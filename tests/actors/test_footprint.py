"""What a connected, idle session holds. A task (with the async library's handle, cancel scope
and event) is the largest thing a session allocates, so the count is pinned: the supervisor,
its three children (tool-executor, audio-in, the connection manager), the link, which
receives, and its sender. Nothing runs only to wait for an event: the manager waits on one
event, the stall watchdog runs only while a reply is due."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
from _scripted_session import until

from antiphon.actors import open_session
from antiphon.journal import MemoryJournal
from antiphon.testing import ScriptedProvider

pytestmark = pytest.mark.anyio

IDLE_SESSION_TASKS = 6


def _tasks() -> int:
    return len(anyio.get_running_tasks())


async def test_a_connected_idle_session_runs_six_tasks() -> None:
    before = _tasks()
    async with open_session(ScriptedProvider(), journal=MemoryJournal()) as session:
        await until(lambda: session.state.connected, timeout=10)
        # The watchdog's first check has a task of its own, which ends: no reply is due.
        await until(lambda: _tasks() - before <= IDLE_SESSION_TASKS, timeout=10)
        for _ in range(20):  # give a task that should not exist every chance to appear
            await anyio.lowlevel.checkpoint()
        assert _tasks() - before == IDLE_SESSION_TASKS
    await until(lambda: _tasks() == before, timeout=10)
