"""Whole conversations under drawn fault schedules, on every emulated provider.

hypothesis draws a schedule — faults of the shared vocabulary, at triggers of the scripted
conversation, repeated — and the demo's conversation (three user turns, one tool call) runs
through each provider's real client against its emulator with that schedule. Invariants:

- the session ends normally (closed, not failed) and the journal checks clean;
- no user audio frame is lost;
- every tool call's output was delivered to the provider exactly once;
- fault-transparent: the user's turns and the tool's outcome are those of the same
  conversation without faults.

CI runs a small, derandomized profile (the same two schedules per provider every run);
``ANTIPHON_FAULT_EXAMPLES=100`` searches longer with random schedules. hypothesis prints the
failing schedule, shrunk; keep it as an ``@example`` regression case.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from antiphon.cli.demo import open_target
from antiphon.cli.demo._target import DemoReport, DemoTarget, play
from antiphon.emulators import Fault, Trigger
from antiphon.journal import FileJournal, check
from antiphon.protocol import (
    Event,
    SessionClosed,
    ToolCallFinished,
    ToolCallRequested,
    ToolResultDelivered,
    UserMessage,
)

pytestmark = pytest.mark.e2e

LONG = int(os.environ.get("ANTIPHON_FAULT_EXAMPLES", "0"))
EXAMPLES = LONG or 2
# Real-time pacing: faster, and re-sent audio after a reconnect lands as a burst that the
# emulators hear as the user talking over the reply — a different conversation, not a fault.
SPEED = 1.0

Schedule = list[tuple[Fault, Trigger, int]]


@dataclass(frozen=True)
class Outcome:
    report: DemoReport
    events: list[Event]
    journal_ok: bool

    @property
    def closed_normally(self) -> bool:
        closed = [e for e in self.events if isinstance(e, SessionClosed)]
        return [c.reason for c in closed] == ["closed"]

    @property
    def deliveries(self) -> dict[str, int]:
        """Tool call id -> how many times its output was delivered to the provider."""
        calls = {e.call_id: 0 for e in self.events if isinstance(e, ToolCallRequested)}
        for e in self.events:
            if isinstance(e, ToolResultDelivered):
                calls[e.call_id] = calls.get(e.call_id, 0) + 1
        return calls

    @property
    def tool_outcomes(self) -> list[tuple[str, str]]:
        return sorted({(e.name, e.output) for e in self.events if isinstance(e, ToolCallFinished)})


async def _run(provider: str, schedule: Schedule) -> Outcome | None:
    """The demo conversation with ``schedule`` on the emulator; None when the emulator
    cannot do one of the faults (the schedule is not one of its cases)."""

    @asynccontextmanager
    async def target() -> AsyncIterator[DemoTarget]:
        async with open_target(provider, "none") as demo:
            for fault, trigger, times in schedule:
                demo.emulator.fault(fault, at=trigger, times=times)
            yield demo

    with tempfile.TemporaryDirectory(prefix="antiphon-faults-") as out:
        try:
            report = await play(
                target(),
                provider=provider,
                fault="drawn",
                journal_dir=Path(out),
                speed=SPEED,
                progress=None,
            )
        except ValueError as exc:
            if "cannot" in str(exc) or "not" in str(exc):
                return None
            raise
        journal = FileJournal(out)
        events = list(journal.events(report.session_id))
        ok = check(Path(out) / report.session_id).ok
    return Outcome(report=report, events=events, journal_ok=ok)


_BASELINES: dict[str, Outcome] = {}


def _baseline(provider: str) -> Outcome:
    if provider not in _BASELINES:
        outcome = anyio.run(_run, provider, [])
        assert outcome is not None
        _BASELINES[provider] = outcome
    return _BASELINES[provider]


FAULTS = st.sampled_from(
    [Fault.drop(), Fault.close(1011, "internal error"), Fault.expire(), Fault.malformed()]
)
TRIGGERS = st.one_of(
    st.integers(1, 150).map(Trigger.user_audio),
    st.integers(1, 6).map(Trigger.reply_audio),
    st.integers(1, 3).map(Trigger.turn_end),
    st.just(Trigger.tool_call()),
)
SCHEDULES = st.lists(st.tuples(FAULTS, TRIGGERS, st.integers(1, 2)), min_size=1, max_size=3)


@pytest.mark.parametrize("provider", ["openai", "gemini", "nova", "phonic"])
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not LONG,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(schedule=SCHEDULES)
def test_a_conversation_is_fault_transparent(provider: str, schedule: Schedule) -> None:
    baseline = _baseline(provider)
    outcome = anyio.run(_run, provider, schedule)
    assume(outcome is not None)
    assert outcome is not None
    report = outcome.report
    assert outcome.closed_normally, report
    assert outcome.journal_ok
    assert report.user_frames_lost == 0, report
    deliveries = outcome.deliveries
    assert deliveries, "the conversation's tool call was made"
    assert set(deliveries.values()) == {1}, deliveries
    # Fault-transparent: the same user turns, the same tool outcome.
    user_turns = [t["text"] for t in report.transcript if t["role"] == UserMessage.__name__]
    baseline_turns = [
        t["text"] for t in baseline.report.transcript if t["role"] == UserMessage.__name__
    ]
    assert user_turns == baseline_turns, report.transcript
    assert outcome.tool_outcomes == baseline.tool_outcomes
    assert Counter(type(e).__name__ for e in outcome.events)["ToolCallRequested"] >= 1
