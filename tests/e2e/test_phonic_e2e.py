"""End to end: Phonic sessions through antiphon's websockets connector against the emulator.

Every test drives a real session (``antiphon.open_session`` with the ``Phonic`` preset) over
websockets against :class:`~antiphon.emulators.phonic.PhonicEmulator` on 127.0.0.1 and
asserts from the emulator's own record of what it received — the ``config`` (and the history
folded into it), the ``reconnect_conv_id`` of each dial, ``tool_call_output`` messages, every
20 ms user audio chunk as it came on the wire — and from what the app was told
(``Reconnected`` and its ``state_restored``). The connector is asyncio-only, so these tests
are too.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import pytest
from _session_log import FAST, WEATHER, SessionLog, cut_frames, get_weather, reply_text, user_text

import antiphon
from antiphon.codecs import mulaw_decode, mulaw_encode
from antiphon.emulators._base import ClosedBy, Fault, Trigger
from antiphon.emulators._model import conversation_audio, reply_audio, silence, utterance_audio
from antiphon.emulators.phonic import CONVERSATION_EXPIRED, PhonicEmulator, PhonicRecord
from antiphon.protocol import (
    AssistantMessage,
    FunctionCall,
    FunctionOutput,
    GenerationEndReason,
    ToolCallCancelRequested,
    ToolOutcome,
)
from antiphon.providers import Phonic

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

E = TypeVar("E")

RATE = 16_000  # the app sends 16 kHz mono, the configured pcm_16000: no resampling
FRAME_BYTES = 640  # 20 ms of 16 kHz PCM16 mono
FOLLOW_UP = f"The weather in Paris is {WEATHER} in Paris."


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the websockets connector and the emulator are asyncio-only


def frames_of(pcm: bytes, frame_bytes: int = FRAME_BYTES) -> list[bytes]:
    return cut_frames(pcm, frame_bytes)


# --------------------------------------------------------------------------------- harness


@dataclass(kw_only=True)
class Harness(SessionLog):
    """One session against one emulator, with everything the app saw and sent."""

    rate = RATE
    frame_bytes = FRAME_BYTES
    emu: PhonicEmulator
    journal: antiphon.MemoryJournal

    def journal_events(self, kind: type[E]) -> list[E]:
        return [e for e in self.journal.events(self.session.session_id) if isinstance(e, kind)]

    def item_kinds(self) -> list[tuple[str, str]]:
        return [
            (type(i).__name__, getattr(i, "text", getattr(i, "name", "")))
            for i in self.session.state.items
        ]


@asynccontextmanager
async def open_harness(
    *,
    tools: Sequence[antiphon.Tool | Callable[..., Any]] = (),
    instructions: str = "Be brief.",
    input_format: str = "pcm_16000",
    output_format: str = "pcm_16000",
    **emulator: Any,
) -> AsyncIterator[Harness]:
    """Emulator + session + event reader. On exit the session is closed and the emulator
    has recorded how every connection ended."""
    emulator.setdefault("idle_audio", False)
    async with PhonicEmulator(**emulator) as emu:
        provider = Phonic(
            url=emu.url, api_key="test", input_format=input_format, output_format=output_format
        )
        journal = antiphon.MemoryJournal()
        async with antiphon.open_session(
            provider, instructions=instructions, tools=tools, journal=journal, backoff=FAST
        ) as session:
            harness = Harness(emu=emu, session=session, journal=journal)
            async with anyio.create_task_group() as tg:
                tg.start_soon(harness.read)
                try:
                    yield harness
                finally:
                    await session.aclose()
        with anyio.fail_after(30.0):
            await emu.wait_idle()


@dataclass(frozen=True, kw_only=True)
class AudioReport:
    expected: int  # frames the app's audio makes
    spans: list[tuple[int, int]]  # per connection: [start, end) frame indexes
    duplicates: int  # frames received more than once


def audio_continuity(expected_frames: list[bytes], records: Sequence[PhonicRecord]) -> AudioReport:
    """Every app frame reached the emulator, in order: each connection got one contiguous
    run of the app's frames, starting at or before where the previous run ended."""
    index = {frame: i for i, frame in enumerate(expected_frames)}
    assert len(index) == len(expected_frames), "test audio must have distinct frames"
    spans: list[tuple[int, int]] = []
    covered = 0
    for record in records:
        chunks = record.audio
        if not chunks:
            spans.append((covered, covered))
            continue
        assert chunks[0] in index, f"connection {record.index} got audio the app never sent"
        start = index[chunks[0]]
        assert chunks == expected_frames[start : start + len(chunks)], (
            f"connection {record.index}: frames out of order or foreign"
        )
        assert start <= covered, f"frames {covered}..{start - 1} were lost"
        covered = max(covered, start + len(chunks))
        spans.append((start, start + len(chunks)))
    assert covered == len(expected_frames), (
        f"frames {covered}..{len(expected_frames) - 1} never reached the emulator"
    )
    received = sum(len(r.audio) for r in records)
    return AudioReport(
        expected=len(expected_frames), spans=spans, duplicates=received - len(expected_frames)
    )


def check_audio(h: Harness) -> AudioReport:
    report = audio_continuity(frames_of(bytes(h.sent_pcm)), h.emu.records)
    audio = h.session.statistics().audio
    assert audio["frames_in"] == report.expected
    assert audio["frames_evicted"] == 0
    assert audio["frames_skipped"] == 0
    return report


def emulated_reply_audio(text: str, emu: PhonicEmulator, rate: int = RATE) -> bytes:
    return b"".join(reply_audio(text, sample_rate=rate, chunk_ms=emu.chunk_ms))


def split_after_first_turn(pcm: bytes, spans: list[tuple[int, int]]) -> tuple[bytes, bytes]:
    """Cut the user audio on a frame boundary halfway between the first two utterances."""
    middle = (spans[0][1] + spans[1][0]) // 2 * 2
    cut = middle // FRAME_BYTES * FRAME_BYTES
    return pcm[:cut], pcm[cut:]


def balanced_replies(h: Harness) -> None:
    """Every reply the app saw start also ended, once."""
    started = [e.generation_id for e in h.of(antiphon.ReplyStarted)]
    ended = [e.generation_id for e in h.of(antiphon.ReplyEnded)]
    assert sorted(started) == sorted(ended)


# --------------------------------------------------------------------------------- happy path


async def test_happy_path() -> None:
    pcm, _ = conversation_audio([0, 3], sample_rate=RATE, gap_s=0.6)
    pcm += b"\x01\x00" * 100  # a partial last frame: the session pads it on close
    async with open_harness(tools=[get_weather], idle_audio=True) as h:
        await h.send(pcm)
        await h.wait_until(lambda: len(h.completed()) >= 2)
    emu = h.emu
    (rec,) = emu.records
    assert (rec.closed_by, rec.close_code) == (ClosedBy.CLIENT, 1000)
    assert h.of(antiphon.Reconnected) == []
    assert rec.headers["Authorization"] == "<present>"
    assert rec.reconnect_conv_id is None
    # One config, first: the instructions, the formats, the tool as a client websocket tool.
    assert rec.frames[0]["type"] == "config"
    config = rec.config
    assert config is not None
    assert config["system_prompt"] == "Be brief."
    assert (config["input_format"], config["output_format"]) == ("pcm_16000", "pcm_16000")
    (tool,) = config["tools"]
    assert tool["type"] == "custom_websocket"
    assert tool["tool_schema"]["function"]["name"] == "get_weather"
    assert rec.rejected == []  # no audio before ready, no chunk over 40 ms
    # Every frame reached the emulator exactly once, in order.
    report = check_audio(h)
    assert report.duplicates == 0
    assert report.spans == [(0, report.expected)]
    finals = [e.text for e in h.of(antiphon.UserTranscript) if e.final]
    assert finals == [user_text(0), user_text(3)]
    ends = h.completed()
    assert [e.text for e in ends] == [reply_text(0), reply_text(3)]
    for end in ends:
        assert h.assistant_audio(end.generation_id) == emulated_reply_audio(end.text, emu)
    assert h.item_kinds() == [
        ("UserMessage", user_text(0)),
        ("AssistantMessage", reply_text(0)),
        ("UserMessage", user_text(3)),
        ("AssistantMessage", reply_text(3)),
    ]
    # The conversation id is the resumption handle.
    assert h.session.state.resumption_handle == rec.conversation_id
    assert h.session.state.conversation_id == rec.conversation_id


async def test_tool_call() -> None:
    pcm, _ = conversation_audio([1], sample_rate=RATE, gap_s=0.6, seed=2)
    async with open_harness(tools=[get_weather]) as h:
        await h.send(pcm)
        await h.wait_for(antiphon.ReplyEnded, lambda e: e.text == FOLLOW_UP)
    (rec,) = h.emu.records
    (call,) = h.of(antiphon.ToolCallRequested)
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    # One tool_call_output, for that call, with the tool's result.
    assert rec.tool_outputs == [
        {"type": "tool_call_output", "tool_call_id": call.call_id, "output": f"{WEATHER} in Paris"}
    ]
    assert h.item_kinds() == [
        ("UserMessage", user_text(1)),
        ("FunctionCall", "get_weather"),
        ("FunctionOutput", "get_weather"),
        ("AssistantMessage", FOLLOW_UP),
    ]
    assert h.session.state.pending_tools == ()
    assert check_audio(h).duplicates == 0
    balanced_replies(h)


# --------------------------------------------------------------------------------- barge-in


@antiphon.tool(name="get_weather", timeout_s=30.0)
async def stuck_weather(city: str) -> str:
    """Current weather for a city (slow: the user speaks again before it returns)."""
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


def barge(seed: int) -> bytes:
    return utterance_audio(0, sample_rate=RATE, duration_s=0.6, seed=seed) + silence(
        0.5, sample_rate=RATE, seed=seed + 1
    )


async def test_barge_in_interrupts_the_reply_and_keeps_what_was_heard() -> None:
    story, _ = conversation_audio([2], sample_rate=RATE, gap_s=0.5, seed=3)
    async with open_harness(reply_pacing=0.25) as h:
        await h.send(story)
        started = await h.wait_for(antiphon.ReplyStarted)
        await h.wait_for(antiphon.AssistantText, count=3)
        await h.send(barge(seed=4))
        await h.wait_for(antiphon.ReplyEnded, lambda e: e.text == reply_text(0))
        await h.wait_until(
            lambda: any(
                isinstance(i, AssistantMessage) and i.heard_ms is not None
                for i in h.session.state.items
            )
        )
    (rec,) = h.emu.records
    (cut,) = rec.sent_of_type("interrupted_response")
    ended = h.of(antiphon.ReplyEnded)[0]
    assert ended.generation_id == started.generation_id
    assert ended.reason is GenerationEndReason.INTERRUPTED
    # The history keeps what the user heard (Phonic's interrupted_response), not the text
    # generated after the barge-in.
    story_item = next(i for i in h.session.state.items if isinstance(i, AssistantMessage))
    assert story_item.text == cut["text"]
    assert story_item.interrupted
    assert reply_text(2).startswith(story_item.text)
    assert story_item.text != reply_text(2)
    assert [type(i).__name__ for i in h.session.state.items] == [
        "UserMessage",
        "AssistantMessage",
        "UserMessage",
        "AssistantMessage",
    ]
    balanced_replies(h)


async def test_barge_in_with_an_interrupted_tool_call() -> None:
    ask, _ = conversation_audio([1], sample_rate=RATE, gap_s=0.4, seed=21)
    async with open_harness(tools=[stuck_weather]) as h:
        await h.send(ask)
        started = await h.wait_for(antiphon.ToolCallRequested)
        await h.send(barge(seed=22))
        finished = await h.wait_for(antiphon.ToolCallFinished)
        await h.wait_for(antiphon.ReplyEnded, lambda e: e.text == reply_text(0))
        await h.wait_until(lambda: h.session.state.pending_tools == ())
    (rec,) = h.emu.records
    (interrupted,) = rec.sent_of_type("tool_call_interrupted")
    assert interrupted["tool_call_id"] == started.call_id
    # The provider withdrew the call: the executor stopped the tool, one cancelled output was
    # recorded, and nothing was sent for it.
    (cancel,) = h.journal_events(ToolCallCancelRequested)
    assert (cancel.call_ids, cancel.reason) == ((started.call_id,), "interrupted")
    assert (finished.call_id, finished.outcome) == (started.call_id, ToolOutcome.CANCELLED)
    assert rec.tool_outputs == []
    assert rec.rejected == []
    outputs = [i for i in h.session.state.items if isinstance(i, FunctionOutput)]
    assert [(o.id, o.outcome) for o in outputs] == [(started.call_id, ToolOutcome.CANCELLED)]
    assert reply_text(0) in [e.text for e in h.completed()]
    assert check_audio(h).duplicates == 0


# --------------------------------------------------------------------------------- continuity


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        pytest.param(Fault.drop(), 1006, id="drop-1006"),
        pytest.param(Fault.close(1012, "restarting"), 1012, id="close-1012"),
        pytest.param(Fault.close(1001, "restarting"), 1001, id="close-1001-restarting"),
    ],
)
async def test_reconnect_inside_the_grace_window_loses_no_audio(fault: Fault, code: int) -> None:
    pcm, spans = conversation_audio([0, 3], sample_rate=RATE, gap_s=0.8, seed=5)
    head, tail = split_after_first_turn(pcm, spans)
    async with open_harness() as h:
        await h.send(head)
        await h.wait_for(antiphon.ReplyEnded)
        # The connection fails as the second utterance starts, while the app streams it.
        h.emu.fault(fault, at=Trigger.user_speech())
        await h.send(tail)
        reconnected = await h.wait_for(antiphon.Reconnected)
        await h.wait_for(antiphon.ReplyEnded, lambda e: e.text == reply_text(3))
    first, second = h.emu.records
    assert first.close_code == code
    # The same conversation, continued: dialled with its id, no second config.
    assert second.reconnect_conv_id == first.conversation_id
    assert second.resumed
    assert second.conversation_id == first.conversation_id
    assert second.frames_of_type("config") == []
    assert reconnected.state_restored is True  # between replies: nothing was cut
    assert reconnected.cause == f"closed:{code}"
    # 0 user audio frames lost: the frames after the last safe point went out again.
    report = check_audio(h)
    assert report.spans[1][1] == report.expected
    assert report.spans[1][0] <= report.spans[0][1]
    conversation = h.emu.conversations[first.conversation_id]
    assert [i["text"] for i in conversation.items if i["role"] == "user"] == [
        user_text(0),
        user_text(3),
    ]
    assert [e.text for e in h.completed()] == [reply_text(0), reply_text(3)]
    balanced_replies(h)


async def test_a_reply_cut_by_a_drop_is_reported_as_not_restored() -> None:
    pcm, _ = conversation_audio([0], sample_rate=RATE, gap_s=0.6, seed=6)
    async with open_harness(reply_pacing=0.25) as h:
        h.emu.fault(Fault.drop(), at=Trigger.reply_audio(3))
        await h.send(pcm)
        reconnected = await h.wait_for(antiphon.Reconnected)
        await h.session.send_text(user_text(3))
        await h.wait_for(antiphon.ReplyEnded, lambda e: e.text == reply_text(3))
    assert reconnected.state_restored is False
    cut = h.of(antiphon.ReplyEnded)[0]
    assert cut.reason is GenerationEndReason.INTERRUPTED
    first, second = h.emu.records
    assert second.reconnect_conv_id == first.conversation_id
    check_audio(h)


async def test_a_tool_result_reaches_a_resumed_conversation_once() -> None:
    ask, _ = conversation_audio([1], sample_rate=RATE, gap_s=0.5, seed=7)
    async with open_harness(tools=[get_weather]) as h:
        h.emu.fault(Fault.drop(), at=Trigger.tool_call())
        await h.send(ask)
        await h.wait_for(antiphon.Reconnected)
        await h.wait_for(antiphon.ReplyEnded, lambda e: e.text == FOLLOW_UP)
    first, second = h.emu.records
    assert second.resumed
    (call,) = h.of(antiphon.ToolCallRequested)
    # The call was made on the first connection; its output went to the resumed one, once.
    assert first.tool_outputs == []
    assert [o["tool_call_id"] for o in second.tool_outputs] == [call.call_id]
    assert h.session.state.pending_tools == ()


async def test_re_seed_after_the_window_keeps_the_history() -> None:
    pcm, _ = conversation_audio([0, 1], sample_rate=RATE, gap_s=0.8, seed=8)
    async with open_harness(tools=[get_weather]) as h:
        await h.send(pcm)
        await h.wait_for(antiphon.ReplyEnded, lambda e: e.text == FOLLOW_UP)
        before = h.item_kinds()
        # The socket drops and the grace window passes before the client is back.
        h.emu.fault(Fault.expire())
        reconnected = await h.wait_for(antiphon.Reconnected)
        await h.session.send_text(user_text(3))
        await h.wait_for(antiphon.ReplyEnded, lambda e: e.text == reply_text(3))
    first, refused, fresh, *more = h.emu.records
    assert more == []
    assert first.close_code == 1006
    # The reconnect inside the window was refused: the conversation was gone ...
    assert refused.reconnect_conv_id == first.conversation_id
    assert refused.close_code == CONVERSATION_EXPIRED
    # ... so a new conversation was started, its config carrying the conversation so far.
    assert fresh.reconnect_conv_id is None
    assert fresh.conversation_id != first.conversation_id
    assert fresh.config is not None
    prompt = fresh.config["system_prompt"]
    assert prompt.startswith("Be brief.\n\n")
    assert prompt.splitlines()[-6:] == [
        f"User: {user_text(0)}",
        f"Assistant: {reply_text(0)}",
        f"User: {user_text(1)}",
        'Assistant called tool get_weather with {"city":"Paris"}',
        f"Tool get_weather returned: {WEATHER} in Paris",
        f"Assistant: {FOLLOW_UP}",
    ]
    # A transcript in a prompt is not the conversation the provider had: said honestly.
    assert reconnected.state_restored is False
    # The session's own history is intact and goes on.
    assert h.item_kinds()[: len(before)] == before
    assert before == [
        ("UserMessage", user_text(0)),
        ("AssistantMessage", reply_text(0)),
        ("UserMessage", user_text(1)),
        ("FunctionCall", "get_weather"),
        ("FunctionOutput", "get_weather"),
        ("AssistantMessage", FOLLOW_UP),
    ]
    assert h.item_kinds()[len(before) :] == [
        ("UserMessage", user_text(3)),
        ("AssistantMessage", reply_text(3)),
    ]
    assert h.session.state.resumption_handle == fresh.conversation_id
    check_audio(h)


async def test_a_tool_result_reaches_a_re_seeded_conversation_once() -> None:
    ask, _ = conversation_audio([1], sample_rate=RATE, gap_s=0.5, seed=9)
    async with open_harness(tools=[get_weather]) as h:
        h.emu.fault(Fault.expire(), at=Trigger.tool_call())
        await h.send(ask)
        await h.wait_for(antiphon.Reconnected)
        await h.wait_for(antiphon.ReplyEnded, lambda e: e.text == FOLLOW_UP)
    _, refused, fresh = h.emu.records
    assert refused.close_code == CONVERSATION_EXPIRED
    (call,) = h.of(antiphon.ToolCallRequested)
    # The new conversation never made the call: its result went in once, as a system
    # message asking for the reply, and never as a tool_call_output.
    assert [r.tool_outputs for r in h.emu.records] == [[], [], []]
    told = fresh.frames_of_type("generate_reply")
    assert [m["system_message"] for m in told] == [f"Tool get_weather returned: {WEATHER} in Paris"]
    assert fresh.config is not None
    assert f"{WEATHER} in Paris" not in fresh.config["system_prompt"]
    assert call.call_id in {i.id for i in h.session.state.items if isinstance(i, FunctionCall)}
    assert h.session.state.pending_tools == ()


# --------------------------------------------------------------------------------- telephony


async def test_mulaw_8khz_in_and_out() -> None:
    rate, frame = 8_000, 320
    pcm, _ = conversation_audio([0], sample_rate=rate, gap_s=0.6, seed=10)
    async with open_harness(
        input_format="mulaw_8000", output_format="mulaw_8000", idle_audio=True
    ) as h:
        for i in range(0, len(pcm), frame):
            await h.session.send_audio(pcm[i : i + frame], sample_rate=rate)
            h.sent_pcm += pcm[i : i + frame]
            await anyio.sleep(0.002)
        end = await h.wait_for(antiphon.ReplyEnded)
    (rec,) = h.emu.records
    assert (rec.config or {})["input_format"] == "mulaw_8000"
    # In: the app's 8 kHz PCM went out as G.711 mu-law of exactly those samples (no
    # resampler on the way), in 20 ms chunks.
    assert rec.raw_audio == [mulaw_encode(f) for f in frames_of(pcm, frame)]
    assert all(len(chunk) == 160 for chunk in rec.raw_audio)
    # Out: the app got 8 kHz PCM16, the mu-law decoding of what the emulator sent.
    sent = b"".join(
        mulaw_decode(base64.b64decode(m["audio"]))
        for m in rec.sent_of_type("audio_chunk")
        if m["text"] or m["audio"]
    )
    audio = [e for e in h.of(antiphon.AssistantAudio) if e.generation_id == end.generation_id]
    assert {e.sample_rate for e in audio} == {8000}
    heard = b"".join(e.pcm for e in audio)
    spoken = mulaw_decode(mulaw_encode(emulated_reply_audio(end.text, h.emu, rate)))
    assert heard == spoken
    assert heard in sent
    assert end.text == reply_text(0)
