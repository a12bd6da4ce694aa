"""Recorded real Gemini Live traffic replayed through the translator.

Expected values are computed from the recordings themselves (the transcripts, calls and
turn markers they carry), so the checks hold for any recording of the same kind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from antiphon.adapters.gemini import GeminiTranslator
from antiphon.codecs import b64decode
from antiphon.protocol import (
    AssistantMessage,
    DeliverToolResult,
    Event,
    FunctionCall,
    GenerationAudioDelta,
    GenerationEnded,
    GenerationEndReason,
    GenerationStarted,
    GenerationTextDelta,
    ProviderSessionInfo,
    SendText,
    SessionState,
    ToolCallRequested,
    Usage,
    fold,
)

FIXTURES = (
    Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "recorded" / "google"
)
FILES = sorted(FIXTURES.glob("*.jsonl")) if FIXTURES.is_dir() else []

pytestmark = pytest.mark.skipif(not FILES, reason=f"no recorded Gemini traffic in {FIXTURES}")


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def server_frames(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r["data"] for r in records if r["dir"] == "s2c"]


def replay(path: Path) -> tuple[list[dict[str, Any]], list[Event]]:
    frames = server_frames(load(path))
    t = GeminiTranslator()
    events: list[Event] = []
    for data in frames:
        # The real service sends JSON in binary frames; feed bytes as the connector would.
        events.extend(t.decode(json.dumps(data).encode()))
    assert t.ready
    return frames, events


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_recorded_transcripts_audio_and_turns(path: Path) -> None:
    frames, events = replay(path)
    contents = [f["serverContent"] for f in frames if "serverContent" in f]
    transcript = "".join(c.get("outputTranscription", {}).get("text", "") for c in contents)
    audio = b"".join(
        b64decode(p["inlineData"]["data"])
        for c in contents
        for p in c.get("modelTurn", {}).get("parts", [])
        if "inlineData" in p
    )
    turn_completes = sum(1 for c in contents if c.get("turnComplete"))

    assert isinstance(events[0], ProviderSessionInfo)
    text = "".join(e.text for e in events if isinstance(e, GenerationTextDelta))
    assert text == transcript  # thought parts never leak into the text
    assert b"".join(e.audio for e in events if isinstance(e, GenerationAudioDelta)) == audio
    completed = [
        e
        for e in events
        if isinstance(e, GenerationEnded) and e.reason is GenerationEndReason.COMPLETED
    ]
    assert len(completed) == turn_completes
    usages = [e for e in events if isinstance(e, Usage)]
    assert [u.total_tokens for u in usages] == [
        f["usageMetadata"]["totalTokenCount"] for f in frames if "usageMetadata" in f
    ]
    # every generation that starts also ends
    started = {e.generation_id for e in events if isinstance(e, GenerationStarted)}
    ended = {e.generation_id for e in events if isinstance(e, GenerationEnded)}
    assert started == ended
    state = fold(events)
    assert state.generation is None
    spoken = [i.text for i in state.items if isinstance(i, AssistantMessage)]
    assert "".join(spoken) == transcript


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_recorded_tool_calls(path: Path) -> None:
    frames, events = replay(path)
    recorded = [c for f in frames if "toolCall" in f for c in f["toolCall"]["functionCalls"]]
    calls = [e for e in events if isinstance(e, ToolCallRequested)]
    assert [(c.call_id, c.name, json.loads(c.arguments)) for c in calls] == [
        (r["id"], r["name"], r["args"]) for r in recorded
    ]
    for call in calls:  # a tool call closes its generation so the result can go out
        i = events.index(call)
        assert any(
            isinstance(e, GenerationEnded)
            and e.reason is GenerationEndReason.TOOL_CALL
            and e.generation_id == call.generation_id
            for e in events[i:]
        )
    state = fold(events)
    assert [i.id for i in state.items if isinstance(i, FunctionCall)] == [r["id"] for r in recorded]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_our_client_frames_match_the_recorded_ones(path: Path) -> None:
    """Our encodings of the recorded client messages say the same (casing aside)."""
    t = GeminiTranslator()
    for record in load(path):
        if record["dir"] == "s2c":
            t.decode(json.dumps(record["data"]))  # as live: the translator sees the tool calls
            continue
        if record["dir"] != "c2s":
            continue
        data = record["data"]
        if "client_content" in data:
            content = data["client_content"]
            (turn,) = content["turns"]
            cmd = SendText(text=turn["parts"][0]["text"], generate_reply=content["turnComplete"])
            (ours,) = t.encode(cmd, SessionState())
            assert json.loads(ours) == {"clientContent": content}
        elif "tool_response" in data:
            (resp,) = data["tool_response"]["functionResponses"]
            cmd2 = DeliverToolResult(
                call_id=resp["id"], name=resp["name"], output=json.dumps(resp["response"]["output"])
            )
            (ours,) = t.encode(cmd2, SessionState())
            assert json.loads(ours) == {"toolResponse": data["tool_response"]}
        elif "setup" in data:
            setup = data["setup"]
            instructions = setup["systemInstruction"]["parts"][0]["text"]
            ours_setup = json.loads(t.handshake(SessionState(instructions=instructions)).frames[0])[
                "setup"
            ]
            for key in ("model", "generationConfig", "inputAudioTranscription"):
                assert ours_setup[key] == setup[key]
            assert ours_setup["systemInstruction"]["parts"] == setup["systemInstruction"]["parts"]
            assert ours_setup["sessionResumption"] == {}
