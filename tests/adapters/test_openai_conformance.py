"""Recorded real OpenAI / xAI traffic replayed through the translator.

Expectations (transcripts, tool calls, turn boundaries, audio sizes, usage) are computed here
from the raw recorded JSON, independently of the translator, then compared with the events
``decode`` produced and with the state ``fold`` builds from them. The client frames of each
recording are compared with what ``handshake``/``encode`` build for the same intent.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from antiphon.adapters.openai import OpenAIRealtime, OpenAITranslator, XAIRealtime
from antiphon.protocol import (
    AssistantMessage,
    AudioFrame,
    DeliverToolResult,
    Event,
    FunctionCall,
    GenerateReply,
    GenerationAudioDelta,
    GenerationEnded,
    GenerationStarted,
    GenerationTextDelta,
    SendText,
    SessionState,
    ToolCallRequested,
    ToolSpec,
    UnknownProviderEvent,
    UserMessage,
    fold,
)

RECORDED = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "recorded"
FILES = sorted([*RECORDED.glob("openai/*.jsonl"), *RECORDED.glob("xai/*.jsonl")])

pytestmark = pytest.mark.skipif(
    not FILES, reason=f"recorded fixtures not found under {RECORDED} (shared/ beside the repo)"
)


def _load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _s2c(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r["data"] for r in records if r["dir"] == "s2c"]


def _c2s(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r["data"] for r in records if r["dir"] == "c2s"]


def _translator(path: Path) -> OpenAITranslator:
    return (XAIRealtime() if path.parent.name == "xai" else OpenAIRealtime()).new_translator()


def _decode_file(path: Path, *, as_bytes: bool) -> tuple[OpenAITranslator, list[Event]]:
    translator = _translator(path)
    events: list[Event] = []
    for data in _s2c(_load(path)):
        text = json.dumps(data)
        events.extend(translator.decode(text.encode() if as_bytes else text))
    return translator, events


# --- expectations from the raw recording --------------------------------------------------


def _expected_turns(frames: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    for f in frames:
        if f["type"] == "response.done":
            resp = f["response"]
            has_call = any(o.get("type") == "function_call" for o in resp.get("output") or [])
            status = resp["status"]
            reason = {"completed": "tool_call" if has_call else "completed"}.get(status, status)
            out.append((resp["id"], reason))
    return out


def _expected_assistant_text(frames: list[dict[str, Any]]) -> dict[str, str]:
    """Per response: its transcript/text from the ``.done`` events, else from the deltas."""
    done: dict[str, str] = defaultdict(str)
    deltas: dict[str, str] = defaultdict(str)
    for f in frames:
        t = f["type"]
        if t in ("response.output_audio_transcript.done", "response.audio_transcript.done"):
            done[f["response_id"]] += f["transcript"]
        elif t in ("response.output_text.done", "response.text.done"):
            done[f["response_id"]] += f["text"]
        elif t in (
            "response.output_audio_transcript.delta",
            "response.audio_transcript.delta",
            "response.output_text.delta",
            "response.text.delta",
        ):
            deltas[f["response_id"]] += f["delta"]
    return {rid: done.get(rid, text) for rid, text in deltas.items()} | dict(done)


def _expected_user_finals(frames: list[dict[str, Any]]) -> dict[str, str]:
    out = {}
    for f in frames:
        if f["type"] == "conversation.item.input_audio_transcription.completed" and f.get(
            "status", "completed"
        ) in ("completed",):
            out[f["item_id"]] = f["transcript"]
    return out


def _expected_tool_calls(frames: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    seen: dict[str, tuple[str, str, Any]] = {}
    for f in frames:
        if f["type"] == "response.function_call_arguments.done":
            seen.setdefault(f["call_id"], (f["call_id"], f["name"], json.loads(f["arguments"])))
    return list(seen.values())


def _expected_audio_bytes(frames: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for f in frames:
        if f["type"] in ("response.output_audio.delta", "response.audio.delta"):
            out[f["response_id"]] += len(base64.b64decode(f["delta"]))
    return dict(out)


def _expected_usage(frames: list[dict[str, Any]]) -> tuple[int, int, int]:
    i = o = t = 0
    for f in frames:
        if f["type"] == "response.done":
            usage = f.get("usage") or f["response"].get("usage") or {}
            i += usage.get("input_tokens", 0)
            o += usage.get("output_tokens", 0)
            t += usage.get("total_tokens", 0)
    return i, o, t


# --- decode conformance -------------------------------------------------------------------


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_replay_decodes_every_frame(path: Path, as_bytes: bool) -> None:
    translator, events = _decode_file(path, as_bytes=as_bytes)
    assert translator.ready
    # Every server event in these recordings is one the translator knows.
    assert not [e for e in events if isinstance(e, UnknownProviderEvent)]


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_replay_turn_boundaries(path: Path) -> None:
    frames = _s2c(_load(path))
    _, events = _decode_file(path, as_bytes=True)
    started = [e.generation_id for e in events if isinstance(e, GenerationStarted)]
    ended = [(e.generation_id, e.reason.value) for e in events if isinstance(e, GenerationEnded)]
    expected = _expected_turns(frames)
    assert ended == expected
    assert started == [f["response"]["id"] for f in frames if f["type"] == "response.created"]
    assert started == [rid for rid, _ in expected]
    # Each generation's deltas lie between its start and its end.
    open_id: str | None = None
    for e in events:
        if isinstance(e, GenerationStarted):
            assert open_id is None
            open_id = e.generation_id
        elif isinstance(e, GenerationEnded):
            assert e.generation_id == open_id
            open_id = None
        elif isinstance(e, GenerationTextDelta | GenerationAudioDelta | ToolCallRequested):
            assert getattr(e, "generation_id", None) == open_id


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_replay_transcripts(path: Path) -> None:
    frames = _s2c(_load(path))
    _, events = _decode_file(path, as_bytes=True)
    text: dict[str, str] = defaultdict(str)
    for e in events:
        if isinstance(e, GenerationTextDelta):
            text[e.generation_id] += e.text
    assert dict(text) == _expected_assistant_text(frames)

    state = fold(events)
    assert state.generation is None
    said = "".join(i.text for i in state.items if isinstance(i, AssistantMessage))
    assert said == "".join(_expected_assistant_text(frames).values())
    users = {i.id: i.text for i in state.items if isinstance(i, UserMessage)}
    assert users == _expected_user_finals(frames)
    assert all(i.final for i in state.items if isinstance(i, UserMessage))


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_replay_tool_calls(path: Path) -> None:
    frames = _s2c(_load(path))
    _, events = _decode_file(path, as_bytes=True)
    calls = [
        (e.call_id, e.name, json.loads(e.arguments))
        for e in events
        if isinstance(e, ToolCallRequested)
    ]
    assert calls == _expected_tool_calls(frames)
    state = fold(events)
    items = [
        (i.id, i.name, json.loads(i.arguments)) for i in state.items if isinstance(i, FunctionCall)
    ]
    assert items == calls
    assert [c.call_id for c in state.pending_tools] == [c[0] for c in calls]


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_replay_audio_and_usage(path: Path) -> None:
    frames = _s2c(_load(path))
    _, events = _decode_file(path, as_bytes=False)
    audio: dict[str, int] = defaultdict(int)
    for e in events:
        if isinstance(e, GenerationAudioDelta):
            assert e.sample_rate == 24_000
            audio[e.generation_id] += len(e.audio)
    assert dict(audio) == _expected_audio_bytes(frames)
    state = fold(events)
    u = state.usage
    assert (u.input_tokens, u.output_tokens, u.total_tokens) == _expected_usage(frames)
    assert state.assistant_audio_bytes == sum(_expected_audio_bytes(frames).values())


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_replay_repeated_tool_call_is_reported_once(path: Path) -> None:
    translator = _translator(path)
    events: list[Event] = []
    for data in _s2c(_load(path)):
        frame = json.dumps(data)
        events.extend(translator.decode(frame))
        if data["type"] == "response.function_call_arguments.done":
            events.extend(translator.decode(frame))  # the provider repeats itself
    calls = [e.call_id for e in events if isinstance(e, ToolCallRequested)]
    assert calls == [c[0] for c in _expected_tool_calls(_s2c(_load(path)))]


# --- client frames: our encoder builds what the real client sent ---------------------------


def _recorded_session_update(path: Path) -> dict[str, Any]:
    return next(f for f in _c2s(_load(path)) if f["type"] == "session.update")


def _key_shape(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _key_shape(v) for k, v in obj.items() if k not in ("tools",)}
    return type(obj).__name__


def _contains_shape(ours: Any, theirs: Any, where: str = "session") -> None:
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), where
        for key, value in theirs.items():
            assert key in ours, f"{where}.{key} missing"
            _contains_shape(ours[key], value, f"{where}.{key}")


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_handshake_session_update_has_the_real_clients_shape(path: Path) -> None:
    recorded = _recorded_session_update(path)["session"]
    tools = tuple(
        ToolSpec(name=t["name"], description=t["description"], parameters=t["parameters"])
        for t in recorded.get("tools", [])
    )
    options: dict[str, Any] = {}
    if "output_modalities" in recorded:
        options["output_modalities"] = recorded["output_modalities"]
    state = SessionState(instructions=recorded["instructions"], tools=tools, options=options)
    frames = _translator(path).handshake(state).frames
    ours = json.loads(frames[0])
    assert ours["type"] == "session.update"
    session = ours["session"]
    _contains_shape(_key_shape(session), _key_shape(recorded))
    assert session["instructions"] == recorded["instructions"]
    assert session.get("tools", []) == recorded.get("tools", [])
    if path.parent.name == "xai":
        assert "type" not in session
        assert session["turn_detection"]["type"] == "server_vad"  # explicitly on
        assert session["audio"]["input"]["format"] == recorded["audio"]["input"]["format"]
    else:
        assert session["type"] == "realtime"
        assert session["output_modalities"] == recorded["output_modalities"]
        assert session["audio"]["input"]["format"] == recorded["audio"]["input"]["format"]
        assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"


def _reply_follows(sent: list[dict[str, Any]], i: int) -> bool:
    return i + 1 < len(sent) and sent[i + 1]["type"] == "response.create"


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_encoded_client_frames_match_recording(path: Path) -> None:
    """Replays the recorded client intents through encode/handshake: same frames."""
    records = _load(path)
    translator = _translator(path)
    sent = _c2s(records)[1:]  # after the session.update
    ours: list[dict[str, Any]] = []
    seeded: list[dict[str, Any]] = []
    i = 0
    state = SessionState()
    while i < len(sent):
        frame = sent[i]
        item = frame.get("item") or {}
        if frame["type"] == "input_audio_buffer.append":
            pcm = base64.b64decode(frame["audio"])
            ours += [json.loads(f) for f in translator.encode(AudioFrame(pcm=pcm, index=i), state)]
        elif item.get("type") == "function_call_output":
            respond = _reply_follows(sent, i)
            result = DeliverToolResult(
                call_id=item["call_id"], name="get_weather", output=item["output"], respond=respond
            )
            ours += [json.loads(f) for f in translator.encode(result, state)]
            i += respond
        elif item.get("type") == "message" and _reply_follows(sent, i):
            # A user message sent live, with a reply asked for.
            send = SendText(text=item["content"][0]["text"])
            ours += [json.loads(f) for f in translator.encode(send, state)]
            i += 1
        elif item.get("type") == "message":
            # History: re-built below through the handshake's seeding.
            seeded.append(frame)
            ours.append(frame)
            text = item["content"][0]["text"]
            history: UserMessage | AssistantMessage = (
                AssistantMessage(id=f"a{i}", text=text)
                if item["role"] == "assistant"
                else UserMessage(id=f"u{i}", text=text)
            )
            state = SessionState(items=(*state.items, history))
        elif frame["type"] == "response.create":
            ours += [json.loads(f) for f in translator.encode(GenerateReply(), state)]
        i += 1
    assert ours == sent
    if seeded:
        handshake = [json.loads(f) for f in translator.handshake(state).frames[1:]]
        assert handshake == seeded
