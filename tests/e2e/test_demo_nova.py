"""``antiphon demo --provider nova``: the scripted conversation through the real
aws-sdk-bedrock-runtime client against the Nova emulator, with Nova's stream limit hit
mid-conversation (and, by default, the next stream's connection dropped too).

The user audio is paced at 4x real time, so the user waits for each answer as a caller
would. At ``--speed 0`` the whole conversation arrives at once: the goodbye can be answered
before the weather tool returns, and the demo ends at the goodbye (the OpenAI demo shows the
same, 0 tool calls at ``--speed 0``), so ``tool_calls == 1`` would not be a fair check there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from antiphon.cli.demo import run_demo
from antiphon.emulators._model import DEFAULT_SCRIPT

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

SPEED = 4.0
SCRIPT = DEFAULT_SCRIPT.utterances


@pytest.fixture
def anyio_backend() -> str:
    # aws-sdk-bedrock-runtime and awscrt are asyncio-only.
    return "asyncio"


def _texts(transcript: list[dict[str, str]], role: str) -> list[str]:
    return [t["text"] for t in transcript if t["role"] == role]


async def test_demo_nova_default_fault(tmp_path: Path) -> None:
    report = await run_demo(provider="nova", speed=SPEED, progress=None, journal_dir=tmp_path)
    assert (report.provider, report.fault) == ("nova", "drop")
    # The stream limit after the first turn, then the next stream's dropped connection.
    assert report.reconnects >= 1
    assert "ModelTimeoutException" in report.reconnect_causes[0]
    assert report.reconnect_causes[1:] == ["closed:eof"]
    assert report.user_frames_lost == 0
    assert report.user_frames_received >= report.user_frames_sent
    assert report.tool_calls == 1
    assert report.turns == 3
    assert _texts(report.transcript, "UserMessage") == [SCRIPT[k].user_text for k in (0, 1, 3)]
    assistant = _texts(report.transcript, "AssistantMessage")
    # (After the drop, the replayed audio can bring the goodbye before the tool returns, and
    # the demo ends at the goodbye: the spoken weather answer is not asserted here.)
    assert assistant[0] == SCRIPT[0].reply
    assert SCRIPT[3].reply in assistant
    assert (tmp_path / "assistant.wav").stat().st_size > 44


async def test_demo_nova_stream_limit_only(tmp_path: Path) -> None:
    report = await run_demo(
        provider="nova", fault="expire", speed=SPEED, progress=None, journal_dir=tmp_path
    )
    assert report.reconnects == 1
    assert "ModelTimeoutException" in report.reconnect_causes[0]
    assert report.user_frames_lost == 0
    assert report.tool_calls == 1
    assert report.turns == 3
