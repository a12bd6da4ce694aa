"""Fuzz invariant: any frame yields events or ProtocolError, never another exception."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from antiphon.adapters.gemini import GeminiTranslator
from antiphon.errors import ProtocolError

FIXTURES = (
    Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "recorded" / "google"
)

KEYS = [
    "setupComplete",
    "serverContent",
    "server_content",
    "toolCall",
    "toolCallCancellation",
    "goAway",
    "sessionResumptionUpdate",
    "usageMetadata",
    "voiceActivity",
    "modelTurn",
    "model_turn",
    "parts",
    "inlineData",
    "data",
    "text",
    "thought",
    "inputTranscription",
    "outputTranscription",
    "finished",
    "turnComplete",
    "interrupted",
    "generationComplete",
    "functionCalls",
    "id",
    "name",
    "args",
    "ids",
    "timeLeft",
    "newHandle",
    "resumable",
    "promptTokenCount",
    "seconds",
    "nanos",
    "sessionId",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["50s", "0.1s", "AAAA", "AA-_", "-1s", "1e9s"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


def check(frame: str | bytes) -> None:
    t = GeminiTranslator()
    try:
        events = t.decode(frame)
    except ProtocolError:
        return
    assert isinstance(events, list)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=3))
def test_structured_frames(message: dict[str, Any]) -> None:
    check(json.dumps(message))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64))
def test_arbitrary_bytes(frame: str | bytes) -> None:
    check(frame)


def _recorded() -> list[str]:
    if not FIXTURES.is_dir():
        return ['{"serverContent": {"turnComplete": true}}']
    out = []
    for path in sorted(FIXTURES.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["dir"] == "s2c":
                out.append(json.dumps(record["data"]))
    return out


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_recorded()), st.integers(min_value=0), st.binary(min_size=1, max_size=3))
def test_mutated_recorded_frames(frame: str, pos: int, junk: bytes) -> None:
    raw = frame.encode()
    i = pos % len(raw)
    check(raw[:i] + junk + raw[i + len(junk) :])  # overwrite
    check(raw[:i])  # truncate


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(_recorded()), max_size=20))
def test_any_sequence_of_recorded_frames_decodes(frames: list[str]) -> None:
    t = GeminiTranslator()
    for frame in frames:
        t.decode(frame)
