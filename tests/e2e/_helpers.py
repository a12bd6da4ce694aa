"""Harness for end-to-end tests: a real session over real websockets against an emulator.

A :class:`Harness` owns one :class:`~antiphon.emulators.openai.OpenAIEmulator` on 127.0.0.1
and one session opened through :func:`antiphon.open_session`. It records every app event,
remembers every byte of user audio the app sent, and checks audio continuity from what the
emulator itself received (:func:`audio_continuity`).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import anyio
import msgspec
from _session_log import FAST, SessionLog, cut_frames, frames_received

import antiphon
from antiphon.adapters import Limits
from antiphon.emulators import Fault, Trigger
from antiphon.emulators.openai import OpenAIEmulator, OpenAIRecord
from antiphon.providers import OpenAIRealtime, XAIRealtime

Variant = Literal["openai", "xai"]
E = TypeVar("E")

FRAME_BYTES = 960  # 20 ms of 24 kHz PCM16 mono: the OpenAI/xAI input frame


def frames_of(pcm: bytes) -> list[bytes]:
    return cut_frames(pcm, FRAME_BYTES)


def make_provider(variant: Variant, url: str, **limits: Any) -> OpenAIRealtime:
    """The variant's preset pointed at ``url``, with ``limits`` overriding its defaults."""
    if variant == "xai":
        provider = XAIRealtime(url=url, api_key="test")
    else:
        provider = OpenAIRealtime(url=url, api_key="test")
    if limits:
        new_limits: Limits = msgspec.structs.replace(provider.limits, **limits)
        provider = provider.replace(limits=new_limits)
    return provider


@dataclass(kw_only=True)
class Harness(SessionLog):
    """One session against one emulator, with everything the app saw and sent."""

    emu: OpenAIEmulator


@asynccontextmanager
async def open_harness(
    variant: Variant = "openai",
    *,
    tools: Sequence[antiphon.Tool | Callable[..., Any]] = (),
    instructions: str = "Be brief.",
    limits: dict[str, Any] | None = None,
    journal: antiphon.Journal | None = None,
    faults: Sequence[tuple[Fault, Trigger]] = (),
    **emulator: Any,
) -> AsyncIterator[Harness]:
    """Emulator + session + event reader. On exit the session is closed, the emulator has
    finished recording every connection, and then it stops. ``faults`` are scheduled on the
    emulator before the session connects."""
    async with OpenAIEmulator(variant=variant, **emulator) as emu:
        for fault, trigger in faults:
            emu.fault(fault, at=trigger)
        provider = make_provider(variant, emu.url, **(limits or {}))
        async with antiphon.open_session(
            provider,
            instructions=instructions,
            tools=tools,
            journal=journal or antiphon.MemoryJournal(),
            backoff=FAST,
        ) as session:
            harness = Harness(emu=emu, session=session)
            async with anyio.create_task_group() as tg:
                tg.start_soon(harness.read)
                try:
                    yield harness
                finally:
                    await session.aclose()
        # Let the emulator's handlers record how each connection ended before it stops
        # (stopping marks still-open connections as closed by the server).
        with anyio.fail_after(30.0):
            while any(c.closed_by is None for c in emu.records):
                await anyio.sleep(0.005)


@dataclass(frozen=True, kw_only=True)
class AudioReport:
    """Where each connection's audio sits in the app's frame sequence."""

    expected: int  # frames the app's audio makes
    spans: list[tuple[int, int]]  # per connection: [start, end) frame indexes
    duplicates: int  # frames the emulator received more than once
    received: int  # frames the emulator received in all


def audio_continuity(
    expected_frames: list[bytes], connections: Sequence[OpenAIRecord]
) -> AudioReport:
    """Check that the emulator received every app frame, in order, with no gap.

    Each connection must have received one contiguous run of the app's frames, starting at
    or before where the previous connection's run ended (a repeat of the uncommitted tail
    is allowed, a gap is not), and the runs together must cover every frame.
    """
    index = {frame: i for i, frame in enumerate(expected_frames)}
    assert len(index) == len(expected_frames), "test audio must have distinct frames"
    spans: list[tuple[int, int]] = []
    covered = 0
    for record in connections:
        chunks = frames_received(record.audio, FRAME_BYTES)
        if not chunks:
            spans.append((covered, covered))
            continue
        assert chunks[0] in index, f"connection {record.index} got audio the app never sent"
        start = index[chunks[0]]
        run = expected_frames[start : start + len(chunks)]
        assert chunks == run, f"connection {record.index}: frames out of order or foreign"
        assert start <= covered, (
            f"connection {record.index} starts at frame {start}: frames {covered}..{start - 1}"
            " were lost"
        )
        covered = max(covered, start + len(chunks))
        spans.append((start, start + len(chunks)))
    assert covered == len(expected_frames), (
        f"frames {covered}..{len(expected_frames) - 1} never reached the emulator"
    )
    received = sum(len(frames_received(c.audio, FRAME_BYTES)) for c in connections)
    return AudioReport(
        expected=len(expected_frames),
        spans=spans,
        duplicates=received - len(expected_frames),
        received=received,
    )


def frames_of_type(record: OpenAIRecord, kind: str) -> list[dict[str, Any]]:
    return [f for f in record.frames if f.get("type") == kind]


def sent_of_type(record: OpenAIRecord, kind: str) -> list[dict[str, Any]]:
    return [f for f in record.sent if f.get("type") == kind]


def committed_frames(record: OpenAIRecord, start: int) -> int:
    """The frame index up to which the emulator committed this connection's audio into the
    conversation (``start`` is the connection's first frame index)."""
    ends = [
        int(f["audio_end_ms"]) for f in sent_of_type(record, "input_audio_buffer.speech_stopped")
    ]
    if not ends:
        return start
    return start + math.floor(max(ends) / 20)
