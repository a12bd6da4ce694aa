"""``antiphon demo --provider phonic``: a close mid-reply resumed inside the grace window,
then one past it, re-seeded."""

from __future__ import annotations

from pathlib import Path

import pytest

from antiphon.cli.demo import PROVIDERS, run_demo

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the websockets connector and the emulator are asyncio-only


async def test_demo_phonic_resumes_then_re_seeds_and_loses_no_audio(tmp_path: Path) -> None:
    assert "phonic" in PROVIDERS
    # Faster than real time, but not a burst: Phonic treats speech over a reply as a
    # barge-in, so the scripted user must leave the assistant room to answer.
    report = await run_demo(provider="phonic", speed=1.5, progress=None, journal_dir=tmp_path)
    assert (report.provider, report.fault) == ("phonic", "drop")
    # The close mid-reply (resumed), then the one past the grace window (re-seeded).
    assert report.reconnects == 2
    assert report.reconnect_causes == ["closed:1006", "closed:1006"]
    assert report.user_frames_lost == 0
    assert report.user_frames_received >= report.user_frames_sent > 0
    assert report.tool_calls == 1
    assert report.turns == 3
    assert report.transcript[-1] == {"role": "AssistantMessage", "text": "Goodbye!"}
