"""The runtime under repeated faults, implausible provider data, bad input and a failing
journal: sessions that can continue do, and nothing the app gave is lost silently.

Every test asserts from the scripted provider's own record of what reached it, and from the
events the app saw.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from _scripted_session import FAST, FRAME_BYTES, Events, send_all, until, user_frames

from antiphon.actors import Backoff, Intensity, open_session
from antiphon.errors import InvalidAudio, JournalError, SessionClosedError
from antiphon.events import (
    AudioOverrun,
    ProviderNotice,
    Reconnected,
    SessionEnded,
)
from antiphon.journal import Durability, FileJournal, MemoryJournal
from antiphon.testing import Fault, ScriptedProvider, Trigger, Turn

pytestmark = pytest.mark.anyio

HELLO = (Turn(text="Hello!"),)


async def test_repeated_drops_of_working_connections_do_not_end_the_session() -> None:
    """Eight drops, each after a turn the connection carried, with the default budget of 5
    reconnects a minute: every connection worked, so none of them counts against it."""
    provider = ScriptedProvider(commit_every=5, script=HELLO)
    provider.fault(Fault.drop(), at=Trigger.turn_end(), times=8)
    frames = user_frames(50)
    log = Events()
    async with open_session(provider, journal=MemoryJournal(), backoff=FAST) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(log.run, session)
            await send_all(session, frames)
            await until(lambda: len(provider.committed_frames()) == len(frames))
            await until(lambda: len(log.of(Reconnected)) == 8)
            await session.aclose()
    (ended,) = log.of(SessionEnded)
    assert ended.reason == "closed"
    assert provider.committed_frames() == frames
    assert all(r.cause == "closed:1006" for r in log.of(Reconnected))


async def test_an_expiry_already_past_is_reported_and_ignored() -> None:
    """A provider whose clock is an hour fast announces connections that have already
    expired: no rotation storm, one notice a connection."""
    provider = ScriptedProvider(commit_every=5, script=HELLO, session_seconds=-3600.0)
    frames = user_frames(20)
    log = Events()
    async with open_session(provider, journal=MemoryJournal(), backoff=FAST) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(log.run, session)
            await send_all(session, frames)
            await until(lambda: len(provider.committed_frames()) == len(frames))
            await until(lambda: any(n.code == "expiry_ignored" for n in log.of(ProviderNotice)))
            await session.aclose()
    assert len(provider.records) == 1
    assert log.of(Reconnected) == []


async def test_changing_the_input_format_mid_stream_keeps_every_frame_whole() -> None:
    provider = ScriptedProvider(commit_every=1000)
    async with open_session(provider, journal=MemoryJournal(), backoff=FAST) as session:
        # 30 ms chunks at 16 kHz leave a partial frame behind when the format changes.
        await session.send_audio(b"\x01\x00" * 480, sample_rate=16_000)
        await session.send_audio(b"\x01\x00" * 480 * 2, sample_rate=16_000, channels=2)
        await session.send_audio(b"\x01\x00" * 1440, sample_rate=48_000)
        await session.aclose()
    received = provider.received_audio()
    assert received
    assert {len(f) for f in received} == {FRAME_BYTES}


async def test_closing_during_a_reconnect_sends_the_audio_already_given() -> None:
    provider = ScriptedProvider(commit_every=1000)
    frames = user_frames(30)
    slow = Backoff(base_s=0.3, max_s=0.3, jitter=0.0)  # the close lands inside the backoff
    async with open_session(provider, journal=MemoryJournal(), backoff=slow) as session:
        await send_all(session, frames[:10])
        await until(lambda: len(provider.received_audio()) == 10)
        provider.fault(Fault.drop())
        await until(lambda: len(provider.records) == 1 and provider.records[0].closed_by)
        await send_all(session, frames[10:])
        await session.aclose()
    assert len(provider.records) == 2
    # Everything the app gave reached the provider; the tail went out on the new connection.
    assert provider.records[1].audio[-20:] == frames[10:]


async def test_a_chunk_too_long_for_one_call_is_refused() -> None:
    provider = ScriptedProvider(commit_every=1000)
    async with open_session(provider, journal=MemoryJournal(), backoff=FAST) as session:
        eleven_seconds = b"\x00\x00" * 16_000 * 11
        with pytest.raises(InvalidAudio, match="10-100 ms"):
            await session.send_audio(eleven_seconds, sample_rate=16_000)
        assert session.statistics().audio["frames_in"] == 0
        await session.send_audio(b"\x00\x00" * 320, sample_rate=16_000)  # it goes on
        await session.aclose()


async def test_audio_evicted_from_the_resend_window_is_an_app_event() -> None:
    # The provider never takes the audio into the conversation, and the window is 0.2 s.
    provider = ScriptedProvider(commit_every=1000, resend_window_s=0.2)
    log = Events()
    async with open_session(provider, journal=MemoryJournal(), backoff=FAST) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(log.run, session)
            await send_all(session, user_frames(30))
            await until(lambda: bool(log.of(AudioOverrun)))
            await session.aclose()
    first = log.of(AudioOverrun)[0]
    assert first.frames_evicted >= 1
    assert first.ms_evicted == first.frames_evicted * 20
    assert session.statistics().audio["frames_evicted"] == 20  # 30 frames, 10 kept


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real, small filesystem (a 256 KiB tmpfs) that the journal fills up."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


async def test_a_full_disk_ends_the_session_once_with_a_journal_error(small_disk: Path) -> None:
    """The journal's disk fills up mid-call: the session ends once, saying why — no provider
    reconnects, no foreign exception out of ``open_session``."""
    provider = ScriptedProvider(commit_every=5, script=HELLO)
    log = Events()
    frames = user_frames(20)
    journal = FileJournal(small_disk, durability=Durability.none())
    failed: Exception | None = None
    async with open_session(provider, journal=journal, backoff=FAST) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(log.run, session)
            try:
                for _ in range(400):  # 160 s of audio: far more than 256 KiB can hold
                    await send_all(session, frames)
            except (JournalError, SessionClosedError) as exc:
                failed = exc
            await until(lambda: bool(log.of(SessionEnded)))
    assert failed is not None
    (ended,) = log.of(SessionEnded)
    assert ended.reason == "failed"
    assert "JournalError" in ended.error
    assert isinstance(session.error, JournalError)
    assert log.of(Reconnected) == []
    assert len(provider.records) == 1
    assert session.statistics().restarts.get("transport", 0) == 0
    # What was written stays readable.
    assert FileJournal(small_disk).replay(session.session_id).session_id == session.session_id


async def test_an_immediate_reconnect_budget_still_bounds_failures_to_connect() -> None:
    provider = ScriptedProvider(commit_every=5)
    log = Events()
    async with open_session(
        provider,
        journal=MemoryJournal(),
        backoff=FAST,
        reconnect=Intensity(max_restarts=2, within_s=60),
    ) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(log.run, session)
            provider.fault(Fault.refuse(), times=100)
            provider.fault(Fault.drop())  # the first connection had carried nothing
            await session.wait_closed()
    (ended,) = log.of(SessionEnded)
    assert ended.reason == "failed"
