"""Fleet hooks: find the sessions whose worker died, and hand each to whoever carries it on.

A fleet's workers journal their sessions in one shared
:class:`~antiphon.journal.RedisJournal`, each session under a lease its worker renews while
the session runs. When a worker dies (or stops, or is cut off) its leases expire.
:func:`watch_expired` polls the journal for them and calls the app's hook once per expired
session. The hook decides where the session goes on:

* here: ``journal.claim(session_id)`` (of several claimers one wins), then
  ``resume_session(journal, session_id, provider, tools=...)``;
* elsewhere, through a dispatcher: with LiveKit, the caller is still in the room, but a
  self-hosted LiveKit server does not re-dispatch a crashed worker's job by itself, so the hook
  creates an agent dispatch for the session's room (LiveKit's ``CreateDispatch`` call:
  ``LiveKitAPI().agent_dispatch.create_dispatch(CreateAgentDispatchRequest(agent_name=...,
  room=..., metadata=session_id))`` from ``livekit.api``), with the session id in the
  dispatch metadata; the job then starts on some worker, whose entrypoint claims and resumes
  the session and re-joins the room.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

import anyio

from ..journal import RedisJournal

__all__ = ["watch_expired"]

ExpiredHook = Callable[[str], Awaitable[None] | None]


async def watch_expired(
    journal: RedisJournal,
    on_expired: ExpiredHook,
    *,
    interval_s: float = 0.5,
    retry_after_s: float = 10.0,
) -> None:
    """Call ``on_expired(session_id)`` for each session whose lease expired; runs until
    cancelled.

    A session is handed to the hook once; if it is still unclaimed ``retry_after_s`` later
    (the worker it was dispatched to failed before claiming it), it is handed over again.
    The hook runs in this task: a slow hook delays the next poll, and an exception from it
    ends the watch.

    Args:
        journal: The fleet's shared journal.
        on_expired: Sync or async callable taking the session id.
        interval_s: Time between two looks at the journal: with the lease's time to live,
            it bounds how long a dead worker's sessions wait.
        retry_after_s: Hand a session over again when it is still expired this long after.

    Raises:
        antiphon.errors.JournalError: Redis failed.
    """
    handed: dict[str, float] = {}
    while True:
        expired = await anyio.to_thread.run_sync(journal.expired)
        now = anyio.current_time()
        for session_id in list(handed):
            if session_id not in expired:
                del handed[session_id]  # claimed (or released) since
        for session_id in expired:
            last = handed.get(session_id)
            if last is not None and now - last < retry_after_s:
                continue
            handed[session_id] = now
            result = on_expired(session_id)
            if inspect.isawaitable(result):
                await result
        await anyio.sleep(interval_s)
