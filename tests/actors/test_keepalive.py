"""Keep-alive: a connection that has sent nothing for a share of the provider's idle limit gets
a ``KeepAlive``; anything sent puts it off; a provider without an idle limit never gets one."""

from __future__ import annotations

import anyio
import pytest

from antiphon.actors import Backoff, open_session
from antiphon.actors.transport_send import KEEPALIVE_SHARE, KeepAliveTimer
from antiphon.journal import MemoryJournal
from antiphon.protocol import ConnectionLost
from antiphon.testing import ScriptedProvider

FAST = Backoff(base_s=0.01, max_s=0.05)


@pytest.mark.parametrize(
    ("idle_timeout_s", "sent_at", "now", "due", "deadline"),
    [
        (None, [], 1e9, False, None),  # no idle limit: never
        (0.0, [], 1e9, False, None),  # a limit of zero is no limit, not a busy loop
        (10.0, [], 4.9, False, 5.0),  # half the limit after the setup went out
        (10.0, [], 5.0, True, 5.0),
        (10.0, [3.0], 7.9, False, 8.0),  # a send puts it off
        (10.0, [3.0, 6.0], 10.9, False, 11.0),
        (10.0, [3.0, 6.0], 11.0, True, 11.0),
    ],
)
def test_keepalive_timer(
    idle_timeout_s: float | None,
    sent_at: list[float],
    now: float,
    due: bool,
    deadline: float | None,
) -> None:
    timer = KeepAliveTimer(idle_timeout_s, now=0.0)
    for t in sent_at:
        timer.on_sent(t)
    assert timer.due(now) is due
    assert timer.next_deadline() == deadline


def test_the_share_leaves_room_before_the_limit() -> None:
    assert 0 < KEEPALIVE_SHARE < 1


@pytest.mark.anyio
async def test_a_silent_session_sends_keepalives_and_keeps_its_connection() -> None:
    provider = ScriptedProvider(idle_timeout_s=0.1)
    journal = MemoryJournal()

    def keepalives() -> int:
        return sum(1 for f in provider.records[0].frames if f.get("t") == "keepalive")

    async with open_session(provider, journal=journal, backoff=FAST) as session:
        # The app sends nothing at all; the keep-alives come every 0.05 s.
        with anyio.fail_after(10):
            while keepalives() < 4:
                await anyio.sleep(0.01)
        assert session.statistics().epoch == 1
    assert len(provider.records) == 1
    assert not any(isinstance(e, ConnectionLost) for e in journal.events(session.session_id))
