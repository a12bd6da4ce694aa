"""A session resumed after a crash sends again the user audio the provider had not taken.

The journal records where the audio log's safe point was (``UserAudioSettled``); the frames
journalled after it are loaded back into the log and go out on the resumed connection.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _scripted_session import FAST, send_all, until, user_frames

from antiphon.actors import open_session, resume_session
from antiphon.journal import FileJournal
from antiphon.journal._verify import verify_session
from antiphon.protocol import UserAudio, UserAudioSettled
from antiphon.testing import ScriptedProvider, Turn

SCRIPT = (Turn(text="Go on."),)  # replies only: no tool call left open at the crash

pytestmark = pytest.mark.anyio


async def test_audio_sent_but_not_taken_at_a_crash_is_sent_again(tmp_path: Path) -> None:
    provider = ScriptedProvider(commit_every=15, script=SCRIPT)
    frames = user_frames(30)
    live, crashed = tmp_path / "live", tmp_path / "crashed"
    async with open_session(
        provider, journal=FileJournal(live), session_id="call", backoff=FAST
    ) as session:
        await send_all(session, frames[:20])
        # The provider took frames 0-14 as a turn and holds 15-19, uncommitted; the journal
        # has all 20 (two 200 ms spans) and the safe point at 15.
        await until(lambda: session.state.audio_settled == 15 and session.state.user_frames == 20)
        await until(lambda: len(provider.records[0].audio) == 20)
        shutil.copytree(live, crashed)  # the process dies here
        await session.aclose()
    async with resume_session(FileJournal(crashed), "call", provider, backoff=FAST) as resumed:
        await send_all(resumed, frames[20:])
        await until(lambda: len(provider.records[-1].committed) == 15)
        assert resumed.statistics().audio["frames_resent"] == 5
        await resumed.aclose()
    # Every frame in the conversation exactly once: 0-14 on the first connection, 15-29
    # (five of them sent again from the journal) on the resumed one.
    assert provider.committed_frames() == frames
    journal = FileJournal(crashed)
    events = list(journal.events("call"))
    # New audio continued the journal's numbering (no index taken twice) ...
    firsts = [e.first_frame for e in events if isinstance(e, UserAudio)]
    assert firsts == sorted(set(firsts))
    assert [e.frame for e in events if isinstance(e, UserAudioSettled)] == [15, 30]
    # ... and the journal keeps its promises (no frame lost at the crash).
    assert verify_session(journal, "call").ok


async def test_nothing_is_sent_again_when_everything_was_taken(tmp_path: Path) -> None:
    provider = ScriptedProvider(commit_every=10, script=SCRIPT)
    frames = user_frames(20)
    live, crashed = tmp_path / "live", tmp_path / "crashed"
    async with open_session(
        provider, journal=FileJournal(live), session_id="call", backoff=FAST
    ) as session:
        await send_all(session, frames[:10])
        await until(lambda: session.state.audio_settled == 10)
        shutil.copytree(live, crashed)
        await session.aclose()
    async with resume_session(FileJournal(crashed), "call", provider, backoff=FAST) as resumed:
        await send_all(resumed, frames[10:])
        await until(lambda: len(provider.records[-1].committed) == 10)
        assert resumed.statistics().audio["frames_resent"] == 0
        await resumed.aclose()
    assert provider.committed_frames() == frames
