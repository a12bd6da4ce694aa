"""End to end: OpenAI Realtime / xAI sessions over real websockets against the emulator.

Every test drives a real session (``antiphon.open_session`` with the OpenAI or xAI preset)
against :class:`~antiphon.emulators.openai.OpenAIEmulator` on 127.0.0.1 and asserts from the
emulator's own record of what it received: every user frame exactly once and in order (a
repeat only of the uncommitted window after a reconnect), the conversation items, the tool
outputs, the cancel/truncate frames, and how each connection ended.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from _helpers import (
    AudioReport,
    Harness,
    Variant,
    audio_continuity,
    committed_frames,
    frames_of,
    frames_of_type,
    open_harness,
    sent_of_type,
)
from _session_log import WEATHER, get_weather, reply_text, user_text

import antiphon
from antiphon.emulators import ClosedBy, Fault, Trigger
from antiphon.emulators._model import (
    DEFAULT_SCRIPT,
    Script,
    Turn,
    conversation_audio,
    silence,
    utterance_audio,
)
from antiphon.emulators.openai import OpenAIRecord
from antiphon.protocol import (
    AssistantMessage,
    FunctionCall,
    FunctionOutput,
    GenerationEndReason,
    ToolOutcome,
    UserMessage,
)

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

VARIANTS = ["openai", "xai"]


@pytest.fixture
def anyio_backend() -> str:
    # The websockets client and the emulator are asyncio-only.
    return "asyncio"


@antiphon.tool(name="get_weather")
async def slow_weather(city: str) -> str:
    """Current weather for a city (takes a moment: the drop lands before it returns)."""
    await anyio.sleep(0.15)
    return f"{WEATHER} in {city}"


def completed(h: Harness) -> list[antiphon.ReplyEnded]:
    return [e for e in h.of(antiphon.ReplyEnded) if e.reason is GenerationEndReason.COMPLETED]


def check_resends(h: Harness) -> AudioReport:
    """Audio continuity from the emulator's record, and the resend accounting."""
    report = audio_continuity(frames_of(bytes(h.sent_pcm)), h.emu.records)
    audio = h.session.statistics().audio
    assert audio["frames_in"] == report.expected
    # Every frame the session re-sent either reached the emulator twice, or its first copy
    # was still in flight when the old socket died (sent by the client, never recorded).
    in_flight_lost = audio["frames_sent"] - report.received
    assert in_flight_lost >= 0
    assert audio["frames_resent"] == report.duplicates + in_flight_lost
    assert audio["frames_evicted"] == 0
    assert audio["frames_skipped"] == 0
    # Duplicates come only from the uncommitted window: a new connection never starts
    # before the point the earlier connections had committed into the conversation.
    conns = h.emu.records
    safe = 0
    for i in range(1, len(conns)):
        safe = max(safe, committed_frames(conns[i - 1], report.spans[i - 1][0]))
        if conns[i].audio:
            assert report.spans[i][0] >= safe, (i, report.spans, safe)
    return report


def history_seeds(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items a connection was primed with (``conversation.item.create`` frames)."""
    return [f["item"] for f in frames if f.get("type") == "conversation.item.create"]


def replayed(rec: OpenAIRecord) -> list[dict[str, Any]]:
    """The items xAI replayed when the connection resumed its conversation (the
    ``conversation.item.added`` frames before ``session.updated``) and the client kept (did
    not delete); [] when it did not resume."""
    if not rec.resumed:
        return []
    deleted = {f["item_id"] for f in frames_of_type(rec, "conversation.item.delete")}
    out: list[dict[str, Any]] = []
    for frame in rec.sent:
        if frame.get("type") == "session.updated":
            break
        if frame.get("type") == "conversation.item.added" and frame["item"]["id"] not in deleted:
            out.append(frame["item"])
    return out


def primed(rec: OpenAIRecord) -> list[dict[str, Any]]:
    """The conversation a connection started from: what the server resumed (xAI), then what
    the client created on it (history seeds, deliveries)."""
    return replayed(rec) + history_seeds(rec.frames)


# --------------------------------------------------------------------------------- happy path


@pytest.mark.parametrize("variant", VARIANTS)
async def test_happy_path_three_turns(variant: Variant) -> None:
    pcm, _ = conversation_audio([0, 1, 3], sample_rate=24_000, gap_s=0.6)
    pcm += b"\x01\x00" * 100  # a partial last frame: the session pads it on close
    async with open_harness(variant, tools=[get_weather], instructions="Be brief.") as h:
        await h.send(pcm)
        await h.wait_until(lambda: len(completed(h)) >= 3)
    emu = h.emu

    # One connection, closed by the client, no reconnect.
    assert len(emu.records) == 1
    rec = emu.records[0]
    assert rec.closed_by is ClosedBy.CLIENT
    assert h.reconnects() == []

    # The first frame is the handshake session.update with the instructions and the tool.
    first = rec.frames[0]
    assert first["type"] == "session.update"
    session = first["session"]
    assert session["instructions"] == "Be brief."
    names = [t.get("name") or t.get("function", {}).get("name") for t in session["tools"]]
    assert names == ["get_weather"]

    # Every frame the app sent reached the emulator exactly once, in order.
    report = check_resends(h)
    assert report.duplicates == 0
    assert report.spans == [(0, report.expected)]

    # Transcripts of the three user turns.
    finals = [e.text for e in h.of(antiphon.UserTranscript) if e.final]
    assert finals == [user_text(0), user_text(1), user_text(3)]

    # Replies: text and audio are what the emulator sent, generation by generation.
    ends = completed(h)
    assert [e.text for e in ends] == [
        reply_text(0),
        f"The weather in Paris is {WEATHER} in Paris.",
        reply_text(3),
    ]
    tool_round = [e for e in h.of(antiphon.ReplyEnded) if e.reason is GenerationEndReason.TOOL_CALL]
    assert len(tool_round) == 1
    emulator_audio: dict[str, bytearray] = {}
    for ev in rec.sent:
        if ev.get("type") == "response.output_audio.delta":
            emulator_audio.setdefault(ev["response_id"], bytearray()).extend(
                base64.b64decode(ev["delta"])
            )
    assert emulator_audio, "the emulator sent reply audio"
    for end in ends:
        assert h.assistant_audio(end.generation_id) == bytes(emulator_audio[end.generation_id])

    # History: the conversation as the session state holds it.
    items = h.session.state.items
    kinds = [(type(i).__name__, getattr(i, "text", getattr(i, "name", ""))) for i in items]
    assert kinds == [
        ("UserMessage", user_text(0)),
        ("AssistantMessage", reply_text(0)),
        ("UserMessage", user_text(1)),
        ("FunctionCall", "get_weather"),
        ("FunctionOutput", "get_weather"),
        ("AssistantMessage", f"The weather in Paris is {WEATHER} in Paris."),
        ("UserMessage", user_text(3)),
        ("AssistantMessage", reply_text(3)),
    ]


# --------------------------------------------------------------------------------- tool call


@pytest.mark.parametrize("variant", VARIANTS)
async def test_tool_call_round(variant: Variant) -> None:
    pcm, _ = conversation_audio([1], sample_rate=24_000, gap_s=0.6)
    async with open_harness(variant, tools=[get_weather]) as h:
        await h.send(pcm)
        follow_up = await h.wait_for(
            antiphon.ReplyEnded, lambda e: e.reason is GenerationEndReason.COMPLETED
        )
    output = f"{WEATHER} in Paris"
    started = h.of(antiphon.ToolCallRequested)
    assert [(s.name, json.loads(s.arguments)) for s in started] == [
        ("get_weather", {"city": "Paris"})
    ]
    ended = h.of(antiphon.ToolCallFinished)
    assert [(e.call_id, e.outcome, e.output) for e in ended] == [
        (started[0].call_id, ToolOutcome.OK, output)
    ]
    rec = h.emu.records[0]
    assert len(h.emu.records) == 1
    outputs = [i for i in rec.items if i["type"] == "function_call_output"]
    assert [(o["call_id"], o["output"]) for o in outputs] == [(started[0].call_id, output)]
    sent_outputs = [i for i in history_seeds(rec.frames) if i["type"] == "function_call_output"]
    assert len(sent_outputs) == 1
    # The output went out, then the follow-up was asked for (once).
    control = [f for f in rec.frames if f.get("type") != "input_audio_buffer.append"]
    at = next(
        i
        for i, f in enumerate(control)
        if f.get("type") == "conversation.item.create"
        and f["item"]["type"] == "function_call_output"
    )
    assert control[at + 1]["type"] == "response.create"
    assert len(frames_of_type(rec, "response.create")) == 1
    assert output in follow_up.text
    assert follow_up.text == f"The weather in Paris is {output}."
    check_resends(h)


# --------------------------------------------------------------------------------- barge-in

# The story (utterance 2) is long; the answer to the barge-in (utterance 0) is one word, so
# the test need not wait for seconds of real-time audio.
SHORT_HELLO = Script(
    utterances={**DEFAULT_SCRIPT.utterances, 0: Turn(user_text="Hello there.", reply="Hi!")}
)


def story_then(k: int) -> tuple[bytes, bytes]:
    """User audio: the story request, then (sent later) utterance ``k`` and silence."""
    story, _ = conversation_audio([2], sample_rate=24_000, gap_s=0.4, seed=11)
    barge = utterance_audio(k, sample_rate=24_000, duration_s=0.4, seed=12) + silence(
        0.4, sample_rate=24_000, seed=13
    )
    return story, barge


@pytest.mark.parametrize("variant", VARIANTS)
async def test_barge_in_interrupts_the_reply(variant: Variant) -> None:
    story, barge = story_then(0)
    async with open_harness(variant, reply_pacing=1.0, script=SHORT_HELLO) as h:
        await h.send(story)
        first = await h.wait_for(antiphon.ReplyStarted)
        await h.wait_for(antiphon.AssistantAudio, count=3)
        await h.send(barge)
        cut = await h.wait_for(
            antiphon.ReplyEnded, lambda e: e.generation_id == first.generation_id
        )
        answer = await h.wait_for(
            antiphon.ReplyEnded, lambda e: e.reason is GenerationEndReason.COMPLETED
        )
    assert cut.reason is GenerationEndReason.INTERRUPTED
    assert answer.text == "Hi!"
    assert answer.generation_id != first.generation_id
    # The app heard the barge-in (to stop playback) before the cut reply ended.
    order = [type(e) for e in h.events]
    speech_starts = [i for i, t in enumerate(order) if t is antiphon.UserSpeechStarted]
    assert len(speech_starts) == 2
    assert speech_starts[1] < h.events.index(cut)
    # The emulator cancelled the story itself (server VAD): the client sent no cancel.
    rec = h.emu.records[0]
    done = sent_of_type(rec, "response.done")
    assert [d["response"]["status"] for d in done] == ["cancelled", "completed"]
    assert frames_of_type(rec, "response.cancel") == []
    # The cut reply's audio is what the emulator sent of it.
    story_audio = b"".join(
        base64.b64decode(ev["delta"])
        for ev in sent_of_type(rec, "response.output_audio.delta")
        if ev["response_id"] == first.generation_id
    )
    assert h.assistant_audio(first.generation_id) == story_audio
    assert 0 < len(story_audio) < 5 * 48_000  # cut well before the story's ~6.8 s
    items = h.session.state.items
    assistant = [i for i in items if isinstance(i, AssistantMessage)]
    assert [a.interrupted for a in assistant] == [True, False]
    assert len(h.emu.records) == 1
    report = check_resends(h)
    assert report.duplicates == 0


@pytest.mark.parametrize("variant", VARIANTS)
async def test_app_interrupt_cancels_and_truncates(variant: Variant) -> None:
    story, _ = story_then(0)
    async with open_harness(variant, reply_pacing=1.0) as h:
        await h.send(story)
        first = await h.wait_for(antiphon.ReplyStarted)
        # 400 ms of the reply has arrived; the user heard 300 ms of it.
        await h.wait_until(lambda: len(h.assistant_audio(first.generation_id)) >= 400 * 48)
        await h.session.interrupt(played_ms=300)
        cut = await h.wait_for(
            antiphon.ReplyEnded, lambda e: e.generation_id == first.generation_id
        )
        if variant == "openai":
            await h.wait_until(
                lambda: bool(sent_of_type(h.emu.records[0], "conversation.item.truncated"))
            )
    assert cut.reason is GenerationEndReason.INTERRUPTED
    rec = h.emu.records[0]
    assert len(frames_of_type(rec, "response.cancel")) == 1
    assert [d["response"]["status"] for d in sent_of_type(rec, "response.done")] == ["cancelled"]
    truncates = frames_of_type(rec, "conversation.item.truncate")
    assistant_items = [i for i in rec.items if i.get("role") == "assistant"]
    assert len(assistant_items) == 1
    if variant == "openai":
        assert [(t["item_id"], t["audio_end_ms"]) for t in truncates] == [
            (assistant_items[0]["id"], 300)
        ]
        # 300 ms is two 250 ms words: the emulator kept the words whose audio had started.
        words = reply_text(2).split()[:2]
        assert assistant_items[0]["content"][0]["transcript"] == " ".join(words)
        message = [i for i in h.session.state.items if isinstance(i, AssistantMessage)]
        assert [(m.interrupted, m.text) for m in message] == [(True, "Once upon")]
    else:
        assert truncates == []  # xAI has no truncate
    check_resends(h)


async def test_truncate_is_recorded_in_history() -> None:
    story, _ = story_then(0)
    async with open_harness("openai", reply_pacing=1.0) as h:
        await h.send(story)
        first = await h.wait_for(antiphon.ReplyStarted)
        await h.wait_until(lambda: len(h.assistant_audio(first.generation_id)) >= 400 * 48)
        await h.session.interrupt(played_ms=300)
        await h.wait_for(antiphon.ReplyEnded, lambda e: e.generation_id == first.generation_id)
        await h.wait_until(
            lambda: bool(sent_of_type(h.emu.records[0], "conversation.item.truncated"))
        )
        # The emulator sent the truncation; give the client time to decode it.
        with anyio.move_on_after(0.5):
            await h.wait_until(
                lambda: any(
                    isinstance(i, AssistantMessage) and i.heard_ms is not None
                    for i in h.session.state.items
                )
            )
    sent = [f["type"] for f in h.emu.records[0].sent]
    assert sent.index("conversation.item.truncated") < sent.index("response.done")
    message = [i for i in h.session.state.items if isinstance(i, AssistantMessage)]
    assert [(m.interrupted, m.heard_ms) for m in message] == [(True, 300)]


# --------------------------------------------------------------------------------- faults


def check_reseeded(h: Harness, connection: int) -> list[dict[str, Any]]:
    """Connection ``connection`` started with the history: OpenAI re-seeded (one item.create
    per item), xAI resumed (the server replayed the conversation; nothing seeded twice)."""
    rec = h.emu.records[connection]
    assert rec.frames[0]["type"] == "session.update"
    if h.emu.variant == "xai":
        assert rec.resumed, "xAI resumed the conversation"
        assert h.session.state.conversation_id == rec.conversation_id
    seeds = primed(rec)
    assert seeds, "the new connection got the conversation history"
    return seeds


def seed_summary(seeds: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for item in seeds:
        if item["type"] == "message":
            content = item["content"][0]
            out.append((item["role"], content.get("text") or content.get("transcript") or ""))
        elif item["type"] == "function_call":
            out.append(("function_call", item["name"]))
        else:
            out.append(("function_call_output", item["output"]))
    return out


@pytest.mark.parametrize("variant", VARIANTS)
async def test_drop_during_user_speech(variant: Variant) -> None:
    pcm, _ = conversation_audio([0, 3], sample_rate=24_000, gap_s=0.6)
    async with open_harness(variant, faults=[(Fault.drop(), Trigger.user_speech())]) as h:
        await h.send(pcm)
        await h.wait_until(lambda: len(completed(h)) >= 2)
    reconnected = h.reconnects()
    assert len(reconnected) == 1
    assert reconnected[0].state_restored is True
    assert reconnected[0].epoch == 2
    assert "1006" in reconnected[0].cause  # the socket died without a close frame
    assert [c.closed_by for c in h.emu.records] == [ClosedBy.FAULT, ClosedBy.CLIENT]
    # The utterance in progress was re-sent whole: the new connection heard it from the start.
    report = check_resends(h)
    assert report.spans[1][0] == 0
    finals = [e.text for e in h.of(antiphon.UserTranscript) if e.final]
    assert finals == [user_text(0), user_text(3)]
    assert [e.text for e in completed(h)] == [reply_text(0), reply_text(3)]
    assert [type(i).__name__ for i in h.session.state.items] == [
        "UserMessage",
        "AssistantMessage",
        "UserMessage",
        "AssistantMessage",
    ]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", ["drop", "close"])
async def test_failure_during_generation(variant: Variant, kind: str) -> None:
    pcm, _ = conversation_audio([0, 3], sample_rate=24_000, gap_s=0.6)
    fault = Fault.drop() if kind == "drop" else Fault.close()
    async with open_harness(variant, faults=[(fault, Trigger.reply_audio(2))]) as h:
        await h.send(pcm)
        await h.wait_until(lambda: len(completed(h)) >= 1)
    reconnected = h.reconnects()
    assert len(reconnected) == 1
    assert reconnected[0].state_restored is False  # the reply was cut off mid-way
    assert ("1006" if kind == "drop" else "1011") in reconnected[0].cause
    ends = h.of(antiphon.ReplyEnded)
    assert ends[0].reason is GenerationEndReason.INTERRUPTED
    assert ends[-1].reason is GenerationEndReason.COMPLETED
    assert ends[-1].text == reply_text(3)
    # The interruption precedes the reconnect in the app's stream.
    assert h.events.index(ends[0]) < h.events.index(reconnected[0])
    first = h.emu.records[0]
    assert first.closed_by is ClosedBy.FAULT
    if kind == "close":
        assert first.close_code == 1011
    # Only the audio the cut reply had sent reached the app.
    cut_audio = b"".join(
        base64.b64decode(ev["delta"]) for ev in sent_of_type(first, "response.output_audio.delta")
    )
    assert h.assistant_audio(ends[0].generation_id) == cut_audio
    # The new connection was primed with what the user said (and what was said back).
    seeds = seed_summary(check_reseeded(h, 1))
    assert seeds[0] == ("user", user_text(0))
    assert all(role != "user" or text != user_text(3) for role, text in seeds)
    report = check_resends(h)
    assert report.spans[1][0] >= committed_frames(first, 0)
    finals = [e.text for e in h.of(antiphon.UserTranscript) if e.final]
    assert finals == [user_text(0), user_text(3)]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("weather", [get_weather, slow_weather], ids=["instant", "slow"])
async def test_drop_while_tool_call_pending(
    variant: Variant, weather: antiphon.Tool | Callable[..., Any]
) -> None:
    pcm, _ = conversation_audio([1], sample_rate=24_000, gap_s=0.6)
    async with open_harness(
        variant, tools=[weather], faults=[(Fault.drop(), Trigger.tool_call())]
    ) as h:
        await h.send(pcm)
        follow_up = await h.wait_for(
            antiphon.ReplyEnded, lambda e: e.reason is GenerationEndReason.COMPLETED
        )
    output = f"{WEATHER} in Paris"
    reconnected = h.reconnects()
    assert len(reconnected) == 1
    assert reconnected[0].state_restored is True
    assert [c.closed_by for c in h.emu.records] == [ClosedBy.FAULT, ClosedBy.CLIENT]
    ended = h.of(antiphon.ToolCallFinished)
    assert len(ended) == 1
    call_id = ended[0].call_id
    # The output reached the emulator exactly once, on the new connection.
    per_connection = [
        [i for i in primed(c) if i["type"] == "function_call_output"] for c in h.emu.records
    ]
    assert per_connection[0] == []
    assert [(o["call_id"], o["output"]) for o in per_connection[1]] == [(call_id, output)]
    new = h.emu.records[1]
    assert [
        (i["call_id"], i["output"]) for i in new.items if i["type"] == "function_call_output"
    ] == [(call_id, output)]
    # The new connection was re-seeded with the call (xAI: resumed with it) before its output
    # was delivered.
    assert new.resumed is (variant == "xai")
    seeds = primed(new)
    kinds = [i["type"] for i in seeds]
    assert kinds[:2] == ["message", "function_call"]
    call = seeds[1]
    assert (call["call_id"], call["name"], json.loads(call["arguments"])) == (
        call_id,
        "get_weather",
        {"city": "Paris"},
    )
    assert kinds.index("function_call") < kinds.index("function_call_output")
    assert follow_up.text == f"The weather in Paris is {output}."
    items = h.session.state.items
    assert [type(i) for i in items] == [UserMessage, FunctionCall, FunctionOutput, AssistantMessage]
    check_resends(h)


def split_after_first_turn(pcm: bytes, spans: list[tuple[int, int]]) -> tuple[bytes, bytes]:
    """Cut the user audio on a frame boundary halfway between the first two utterances."""
    middle = (spans[0][1] + spans[1][0]) // 2 * 2
    cut = middle // 960 * 960
    return pcm[:cut], pcm[cut:]


@pytest.mark.parametrize("variant", VARIANTS)
async def test_expire_between_turns(variant: Variant) -> None:
    pcm, spans = conversation_audio([0, 3], sample_rate=24_000, gap_s=0.8)
    head, tail = split_after_first_turn(pcm, spans)
    async with open_harness(variant) as h:
        await h.send(head)
        await h.wait_for(antiphon.ReplyEnded)
        h.emu.fault(Fault.expire())
        reconnected = await h.wait_for(antiphon.Reconnected)
        await h.send(tail)
        await h.wait_until(lambda: len(completed(h)) >= 2)
    assert reconnected.cause == "session_expired"
    assert reconnected.state_restored is True
    assert len(h.reconnects()) == 1
    first = h.emu.records[0]
    assert (first.closed_by, first.close_code) == (ClosedBy.FAULT, 1001)
    errors = sent_of_type(first, "error")
    assert [e["error"]["code"] for e in errors] == ["session_expired"]
    # The expiry is reported to the app, then the session carries on with its history.
    notices = h.of(antiphon.ProviderNotice)
    assert [n.code for n in notices] == ["session_expired"]
    seeds = seed_summary(check_reseeded(h, 1))
    assert seeds == [("user", user_text(0)), ("assistant", reply_text(0))]
    assert [e.text for e in completed(h)] == [reply_text(0), reply_text(3)]
    report = check_resends(h)
    # Everything up to the end of the first turn was committed: at most the silence after it
    # is repeated.
    assert report.spans[1][0] >= committed_frames(first, 0)


STALL_TIMEOUT_S = 0.3


async def stall_with_reply_due(h: Harness) -> tuple[antiphon.Reconnected, float]:
    """First turn answered; then the server goes quiet while a reply to typed text is due."""
    pcm, _ = conversation_audio([0], sample_rate=24_000, gap_s=0.6)
    await h.send(pcm)
    await h.wait_for(antiphon.ReplyEnded)
    h.emu.fault(Fault.stall(2.0))
    asked_at = anyio.current_time()
    await h.session.send_text(user_text(3))  # a reply is now due
    reconnected = await h.wait_for(antiphon.Reconnected)
    return reconnected, anyio.current_time() - asked_at


@pytest.mark.parametrize("variant", VARIANTS)
async def test_stall_is_replaced_after_the_stall_timeout(variant: Variant) -> None:
    async with open_harness(variant, limits={"stall_timeout_s": STALL_TIMEOUT_S}) as h:
        reconnected, replaced_after = await stall_with_reply_due(h)
        # The reply is asked again on the new connection, after its priming.
        await h.wait_until(lambda: bool(frames_of_type(h.emu.records[1], "response.create")))
    assert "stall" in reconnected.cause or "sent nothing" in reconnected.cause
    assert reconnected.state_restored is True
    assert STALL_TIMEOUT_S <= replaced_after < STALL_TIMEOUT_S + 0.5
    assert len(h.reconnects()) == 1
    first = h.emu.records[0]
    assert first.closed_by is ClosedBy.CLIENT  # the client gave up on it; the server never did
    # The stalled connection got the request; the new one was primed with it as history.
    assert [i["content"][0]["text"] for i in history_seeds(first.frames)] == [user_text(3)]
    assert len(frames_of_type(first, "response.create")) == 1
    seeds = seed_summary(check_reseeded(h, 1))
    assert seeds == [
        ("user", user_text(0)),
        ("assistant", reply_text(0)),
        ("user", user_text(3)),
    ]
    if variant == "xai":
        # The server kept the reply it generated while stalled, which the user never heard:
        # the resumed connection deleted it before asking for the reply again.
        (deleted,) = frames_of_type(h.emu.records[1], "conversation.item.delete")
        assert all(i["id"] != deleted["item_id"] for i in h.emu.records[1].items)
    check_resends(h)


@pytest.mark.parametrize("variant", VARIANTS)
async def test_stall_reply_still_comes_after_reconnect(variant: Variant) -> None:
    async with open_harness(variant, limits={"stall_timeout_s": STALL_TIMEOUT_S}) as h:
        await stall_with_reply_due(h)
        with anyio.move_on_after(1.0):
            await h.wait_for(antiphon.ReplyEnded, count=2)
    second = h.emu.records[1]
    assert len(frames_of_type(second, "response.create")) == 1
    assert [e.text for e in completed(h)] == [reply_text(0), reply_text(3)]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", ["malformed", "unknown"])
async def test_bad_frames_keep_the_connection(variant: Variant, kind: str) -> None:
    pcm, _ = conversation_audio([0, 3], sample_rate=24_000, gap_s=0.6)
    fault = Fault.malformed() if kind == "malformed" else Fault.unknown()
    async with open_harness(variant, faults=[(fault, Trigger.reply_audio(3))]) as h:
        await h.send(pcm)
        await h.wait_until(lambda: len(completed(h)) >= 2)
    assert len(h.emu.records) == 1
    assert h.reconnects() == []
    rec = h.emu.records[0]
    assert rec.closed_by is ClosedBy.CLIENT
    notices = h.of(antiphon.ProviderNotice)
    if kind == "malformed":
        assert sum(1 for f in rec.sent if "_malformed" in f) == 1
        assert [(n.code, n.recoverable) for n in notices] == [("malformed_frame", True)]
        assert h.session.state.unknown_events == 0
    else:
        assert len(sent_of_type(rec, "emulator.unknown_event")) == 1
        assert notices == []
        assert h.session.state.unknown_events == 1
    # The reply the bad frame landed in is complete, audio and text.
    ends = completed(h)
    assert [e.text for e in ends] == [reply_text(0), reply_text(3)]
    for end in ends:
        audio = b"".join(
            base64.b64decode(ev["delta"])
            for ev in sent_of_type(rec, "response.output_audio.delta")
            if ev["response_id"] == end.generation_id
        )
        assert h.assistant_audio(end.generation_id) == audio
    report = check_resends(h)
    assert report.duplicates == 0
    assert h.session.statistics().audio["frames_resent"] == 0


# --------------------------------------------------------------------------------- rotation


class OverlapWatch:
    """Polls the emulator: was connection k-1 still open when connection k was ready?"""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.overlapped: set[int] = set()
        self.seen_ready: set[int] = set()

    async def run(self) -> None:
        conns = self.h.emu.records
        while True:
            for k in range(1, len(conns)):
                if k in self.seen_ready or not sent_of_type(conns[k], "session.updated"):
                    continue
                self.seen_ready.add(k)
                if conns[k - 1].closed_by is None:
                    self.overlapped.add(k)
            await anyio.sleep(0.0005)


# OpenAI announces expires_at: with a 3 s cap (whole seconds, so 2-3 s left when a connection
# opens) and a 2.5 s margin, each connection is due to rotate 0-0.5 s in, at the next turn
# boundary. xAI announces no expiry: the preset rotates by age (rotate_after_s), here 0.5 s.
# OpenAI: the emulator's sessions last 2 s (expires_at in whole seconds, so 1-2 s from the
# connection's start); a 1 s margin, capped at half the lifetime, rotates 0.5-1 s in.
ROTATION = {
    "openai": (
        {
            "rotate_before_expiry_s": 1.0,
            "min_connection_lifetime_s": 0.5,
            "min_rotation_interval_s": 0.1,
        },
        "rotation:expiry",
    ),
    "xai": ({"rotate_after_s": 0.5, "min_rotation_interval_s": 0.1}, "rotation:age"),
}


@pytest.mark.parametrize("variant", VARIANTS)
async def test_rotation_before_expiry(variant: Variant) -> None:
    limits, cause = ROTATION[variant]
    pcm, _ = conversation_audio([0, 3], sample_rate=24_000, gap_s=0.6)
    async with open_harness(variant, session_duration_s=2, limits=limits) as h:
        watch = OverlapWatch(h)
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch.run)
            opened = anyio.current_time()
            first = await h.wait_for(antiphon.Reconnected, timeout=30.0)
            first_after = anyio.current_time() - opened
            await h.send(pcm, pause_s=0.02)  # real time: later rotations fall mid-call
            await h.wait_until(lambda: len(completed(h)) >= 2)
            await anyio.sleep(0.1)
            tg.cancel_scope.cancel()
    assert first.cause == cause
    assert first.state_restored is True
    assert first_after < 2.0  # before the provider's cap
    rotations = h.reconnects()
    assert all(r.cause == cause for r in rotations)
    assert all(r.state_restored for r in rotations)  # always at a turn boundary
    conns = h.emu.records
    # (one more may have been opening for the next rotation when the session closed)
    assert len(rotations) + 1 <= len(conns) <= len(rotations) + 2
    # Every connection was closed by the client before the server's cap: none expired.
    assert all(c.closed_by is ClosedBy.CLIENT for c in conns)
    assert all(not sent_of_type(c, "error") for c in conns)
    # Make-before-break: the next connection was ready while the old one was still open.
    assert watch.overlapped, (watch.seen_ready, watch.overlapped)
    # History: a connection opened after the first turn was primed with it.
    first_done = h.events.index(completed(h)[0])
    later = [r for r in rotations if h.events.index(r) > first_done]
    assert later, "a rotation happened after the first reply"
    seeds = seed_summary(primed(conns[later[0].epoch - 1]))
    assert seeds[:2] == [("user", user_text(0)), ("assistant", reply_text(0))]
    assert [e.text for e in completed(h)] == [reply_text(0), reply_text(3)]
    finals = [e.text for e in h.of(antiphon.UserTranscript) if e.final]
    assert finals == [user_text(0), user_text(3)]
    check_resends(h)


@pytest.mark.parametrize(
    ("cap_s", "limits", "window_s", "max_connections"),
    [
        # A 60 s cap under the preset's 600 s margin: every connection has the same cap, so
        # rotating cannot help; at most one rotation is reasonable.
        (60.0, {}, 1.0, 2),
        # The rotation scenario's settings: 2-3 s left per connection, 2.5 s margin. A new
        # connection opened within the same wall-clock second has the same expires_at.
        (
            3.0,
            {
                "rotate_before_expiry_s": 2.5,
                "min_connection_lifetime_s": 0.5,
                "min_rotation_interval_s": 0.1,
            },
            1.5,
            3,
        ),
    ],
)
async def test_short_session_cap_does_not_cause_a_rotation_storm(
    cap_s: float, limits: dict[str, float], window_s: float, max_connections: int
) -> None:
    # OpenAI only: xAI announces no expiry.
    async with open_harness("openai", session_duration_s=cap_s, limits=limits) as h:
        await anyio.sleep(window_s)
    assert len(h.emu.records) <= max_connections
