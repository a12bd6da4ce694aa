"""The reconnect report: what the next activated connection tells the app, and how honestly.

Between losing a connection (or starting a rotation, or resuming after a crash) and
activating the next one, the connection manager collects here why it reconnects, since when,
whether everything will be restored, whether the provider's own resume state must not be used
(start fresh, re-seed) and whether a requested reply must be asked for again. On activation
it becomes one :class:`~antiphon.events.Reconnected` app event (none for the session's first
connection).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..events import Reconnected


@dataclass(kw_only=True)
class ReconnectReport:
    """Why and how the next connection is opened.

    Attributes:
        cause: The short cause code (``closed:1006``, ``rotation:age``, ``resume``, ...).
        since: When the old connection was lost or the switch began (monotonic), if known.
        restored: False once anything is known to be lost: a reply cut, history shortened,
            a tool's outcome unknown.
        fresh_start: The provider's resume state (its handle) is gone: re-seed from history.
        first: The session's first connection (nothing to report).
        reply_due: A reply was requested and had not started: ask for it again.
        previous_provider: The session moved here from this provider ("" if it did not).
    """

    cause: str = "start"
    since: float | None = None
    restored: bool = True
    fresh_start: bool = False
    first: bool = True
    reply_due: bool = False
    previous_provider: str = ""

    def lost(self, now: float) -> None:
        """The connection is gone from ``now`` on (the first loss counts for the gap)."""
        if self.since is None:
            self.since = now

    def reconnected(self, *, epoch: int, now: float, provider: str) -> Reconnected | None:
        """The app event for activating ``epoch`` (a connection to ``provider``) at ``now``;
        None for the first connection."""
        if self.first:
            return None
        gap_ms = (now - self.since) * 1000.0 if self.since is not None else 0.0
        return Reconnected(
            epoch=epoch,
            cause=self.cause,
            state_restored=self.restored,
            gap_ms=gap_ms,
            provider=provider,
            previous_provider=self.previous_provider,
        )
