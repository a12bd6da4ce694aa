"""Every demo journal is captured in full, keeps its promises and replays without a
divergence through the current code (the Gemini, Nova and Phonic demos are also checked by
their own tests, through the e2e conftest). The failover demo's journal crosses providers:
each epoch replays with the translator of the provider it was to."""

from __future__ import annotations

from pathlib import Path

import pytest

from antiphon.cli.demo import run_demo
from antiphon.journal import FileJournal, read_capture
from antiphon.testing import replay_journal, verify_journal

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the demo targets are asyncio-only


@pytest.mark.parametrize("provider", ["openai", "xai", "failover"])
async def test_demo_journal_verifies_and_replays(provider: str, tmp_path: Path) -> None:
    report = await run_demo(provider=provider, speed=0, progress=None, journal_dir=tmp_path)
    assert report.reconnects >= 1  # the default fault: the replay crosses a reconnect
    journal = FileJournal(tmp_path, create=False)
    (sid,) = journal.sessions()
    frames = read_capture(journal, sid)
    assert frames
    assert all(f.payload is not None for f in frames)
    (verified,) = verify_journal(tmp_path)
    assert verified.ok, verified.violations
    (replayed,) = replay_journal(tmp_path)
    assert replayed.ok, replayed.divergence
    assert replayed.frames == sum(f.direction == "received" for f in frames)
    assert replayed.events > 0
