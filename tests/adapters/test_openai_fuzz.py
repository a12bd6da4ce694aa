"""Fuzz invariant of the OpenAI / xAI decoder: any frame yields events or a ProtocolError.

Inputs: arbitrary bytes and text, arbitrary JSON values, objects with known and random
``type`` strings and random field values, and real recorded frames with fields replaced,
removed or the text cut short. Whatever comes out must be valid events that the reducer
folds without raising.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from antiphon.adapters.openai import OpenAIRealtime, OpenAITranslator, XAIRealtime, _wire
from antiphon.errors import ProtocolError
from antiphon.protocol import EVENT_TYPES, fold

RECORDED = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "recorded"


def _real_frames() -> list[dict[str, Any]]:
    frames = []
    for path in sorted([*RECORDED.glob("openai/*.jsonl"), *RECORDED.glob("xai/*.jsonl")]):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["dir"] == "s2c":
                frames.append(record["data"])
    # Without the recordings, fall back to a few hand-written frames of each shape.
    return frames or [
        {
            "type": "response.output_audio.delta",
            "response_id": "r",
            "item_id": "i",
            "delta": "AAAA",
        },
        {"type": "response.done", "response": {"id": "r", "status": "completed", "output": []}},
        {"type": "session.created", "session": {"id": "s", "expires_at": 1}},
    ]


REAL_FRAMES = _real_frames()
KNOWN_TYPES = sorted(
    {f["type"] for f in REAL_FRAMES}
    | set(_wire.IGNORED_TYPES)
    | {
        tag
        for cls in _wire.ServerEvent.__args__
        if isinstance(tag := cls.__struct_config__.tag, str)
    }
)
FIELD_NAMES = sorted(
    {key for f in REAL_FRAMES for key in f}
    | {"delta", "transcript", "status", "call_id", "name", "arguments", "audio_end_ms", "error"}
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

translators = st.sampled_from(["openai", "xai", "beta"]).map(
    lambda v: (
        XAIRealtime().new_translator()
        if v == "xai"
        else OpenAIRealtime(beta=v == "beta").new_translator()
    )
)


def _check(translator: OpenAITranslator, frame: str | bytes) -> None:
    error: ProtocolError | None = None
    try:
        events = translator.decode(frame)
    except ProtocolError as exc:
        error = exc
        events = []
    if error is not None:
        assert error.provider == translator.provider
    assert isinstance(events, list)
    assert all(isinstance(e, EVENT_TYPES) for e in events)
    fold(events)  # the reducer takes whatever decode produced


@FAST
@given(translators, st.binary(max_size=200))
def test_arbitrary_bytes(translator: OpenAITranslator, frame: bytes) -> None:
    _check(translator, frame)


@FAST
@given(translators, st.text(max_size=200))
def test_arbitrary_text(translator: OpenAITranslator, frame: str) -> None:
    _check(translator, frame)


@FAST
@given(translators, json_values)
def test_arbitrary_json_values(translator: OpenAITranslator, value: Any) -> None:
    _check(translator, json.dumps(value))


@FAST
@given(
    translators,
    st.sampled_from(KNOWN_TYPES) | st.text(max_size=30),
    st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=6),
)
def test_typed_objects_with_random_fields(
    translator: OpenAITranslator, type_: str, fields: dict[str, Any]
) -> None:
    _check(translator, json.dumps({**fields, "type": type_}))


@FAST
@given(
    translators,
    st.sampled_from(REAL_FRAMES),
    st.sampled_from(FIELD_NAMES),
    json_values,
    st.booleans(),
)
def test_mutated_real_frames(
    translator: OpenAITranslator, frame: dict[str, Any], key: str, value: Any, drop: bool
) -> None:
    mutated = dict(frame)
    if drop:
        mutated.pop(key, None)
    else:
        mutated[key] = value
    _check(translator, json.dumps(mutated).encode())


@FAST
@given(translators, st.sampled_from(REAL_FRAMES), st.integers(min_value=0, max_value=2000))
def test_truncated_real_frames(
    translator: OpenAITranslator, frame: dict[str, Any], cut: int
) -> None:
    text = json.dumps(frame)
    _check(translator, text[: cut % (len(text) + 1)])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(REAL_FRAMES), max_size=30))
def test_real_frames_in_any_order(frames: list[dict[str, Any]]) -> None:
    """Real frames out of their order (a lost frame, a reconnect mid-turn) never crash."""
    translator = OpenAIRealtime().new_translator()
    events = []
    for frame in frames:
        events.extend(translator.decode(json.dumps(frame)))
    fold(events)
