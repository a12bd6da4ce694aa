"""``antiphon demo --provider gemini``: the scripted conversation with a goAway mid-way."""

from __future__ import annotations

import math
from pathlib import Path

import anyio
import pytest

from antiphon.cli.demo import run_demo
from antiphon.emulators._model import conversation_audio

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def anyio_backend() -> str:
    # google-genai and the emulator are asyncio-only.
    return "asyncio"


async def test_demo_gemini_rotates_on_go_away_and_loses_no_audio(tmp_path: Path) -> None:
    report = await run_demo(provider="gemini", speed=0, progress=None, journal_dir=tmp_path)
    assert (report.provider, report.fault) == ("gemini", "drop")
    # The default fault on Gemini is a goAway after the first turn: one planned rotation.
    assert report.reconnects >= 1
    assert report.reconnect_causes[0] == "go_away"
    assert report.user_frames_lost == 0
    assert report.user_frames_sent > 0
    assert report.user_frames_received >= report.user_frames_sent
    assert report.tool_calls == 1
    # The 48 kHz demo audio is counted in Gemini's 20 ms frames (16 kHz): 50 a second.
    pcm, _ = conversation_audio([0, 1, 3], sample_rate=48_000, gap_s=1.2, seed=7)
    assert report.user_frames_sent == math.ceil(len(pcm) / 2 / 48_000 * 50)
    roles = [entry["role"] for entry in report.transcript]
    assert roles.count("FunctionCall") == 1
    assert roles[-1] == "AssistantMessage"
    assert report.transcript[-1]["text"] == "Goodbye!"
    wav = await anyio.Path(report.assistant_wav).stat()
    assert wav.st_size > 44  # more than a WAV header: the assistant's audio
    assert report.journal == str(tmp_path)


async def test_demo_gemini_has_three_turns(tmp_path: Path) -> None:
    report = await run_demo(provider="gemini", speed=0, progress=None, journal_dir=tmp_path)
    assert report.turns == 3
