"""Fuzz invariant of the Phonic decoder: any frame yields events or a ProtocolError.

Inputs: arbitrary bytes and text, arbitrary JSON values, objects with known and random
``type`` strings and random field values, well-formed frames of every message with fields
replaced, removed or the text cut short, and well-formed frames in any order (a lost frame,
a reconnect mid-turn). Whatever comes out must be valid events that the reducer folds
without raising — for PCM and for mu-law output.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from antiphon.adapters.phonic import PhonicTranslator, _wire
from antiphon.errors import ProtocolError
from antiphon.protocol import EVENT_TYPES, SessionState, fold

PCM = base64.b64encode(b"\x01\x02" * 240).decode()

FRAMES: list[dict[str, Any]] = [
    {"type": "conversation_created", "conversation_id": "conv_1"},
    {"type": "conversation_reconnected", "conversation_id": "conv_1"},
    {"type": "ready_to_start_conversation"},
    {"type": "input_text", "text": "Hello there.", "language": "en"},
    {"type": "input_cancelled"},
    {"type": "user_started_speaking"},
    {"type": "user_finished_speaking"},
    {"type": "dtmf", "digits": "12#"},
    {"type": "audio_chunk", "audio": PCM, "text": "Hi", "timings": {"ttft": 120.0}},
    {"type": "audio_chunk", "audio": PCM, "text": ""},
    {"type": "assistant_started_speaking"},
    {"type": "assistant_finished_speaking"},
    {"type": "interrupted_response", "text": "Hi"},
    {"type": "assistant_chose_not_to_respond"},
    {"type": "assistant_ended_conversation"},
    {"type": "tool_call", "tool_call_id": "t1", "tool_name": "w", "parameters": {"a": 1}},
    {"type": "tool_call_output_processed", "tool_call_id": "t1", "tool": {"name": "w"}},
    {"type": "tool_call_interrupted", "tool_call_id": "t1", "tool_name": "w"},
    {"type": "error", "error": {"message": "bad", "code": "x"}, "param_errors": {"a": "b"}},
    {"type": "warning", "warning": {"message": "careful"}},
]
KNOWN_TYPES = sorted(
    {f["type"] for f in FRAMES}
    | {
        tag
        for cls in _wire.ServerMessage.__args__
        if isinstance(tag := cls.__struct_config__.tag, str)
    }
)
FIELD_NAMES = sorted({key for f in FRAMES for key in f})

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


def _translator(mulaw: bool) -> PhonicTranslator:
    fmt = "mulaw_8000" if mulaw else "pcm_24000"
    translator = PhonicTranslator(input_format=fmt, output_format=fmt)
    translator.handshake(SessionState(epoch=1))
    translator.decode('{"type": "assistant_started_speaking"}')  # audio is read, not skipped
    return translator


translators = st.booleans().map(_translator)


def _check(translator: PhonicTranslator, frame: str | bytes) -> None:
    error: ProtocolError | None = None
    try:
        events = translator.decode(frame)
    except ProtocolError as exc:
        error, events = exc, []
    if error is not None:
        assert error.provider == "phonic"
    assert isinstance(events, list)
    assert all(isinstance(e, EVENT_TYPES) for e in events)
    fold(events)  # the reducer takes whatever decode produced


@FAST
@given(translators, st.binary(max_size=200))
def test_arbitrary_bytes(translator: PhonicTranslator, frame: bytes) -> None:
    _check(translator, frame)


@FAST
@given(translators, st.text(max_size=200))
def test_arbitrary_text(translator: PhonicTranslator, frame: str) -> None:
    _check(translator, frame)


@FAST
@given(translators, json_values)
def test_arbitrary_json_values(translator: PhonicTranslator, value: Any) -> None:
    _check(translator, json.dumps(value))


@FAST
@given(
    translators,
    st.sampled_from(KNOWN_TYPES) | st.text(max_size=30),
    st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=6),
)
def test_typed_objects_with_random_fields(
    translator: PhonicTranslator, type_: str, fields: dict[str, Any]
) -> None:
    _check(translator, json.dumps({**fields, "type": type_}))


@FAST
@given(
    translators, st.sampled_from(FRAMES), st.sampled_from(FIELD_NAMES), json_values, st.booleans()
)
def test_mutated_frames(
    translator: PhonicTranslator, frame: dict[str, Any], key: str, value: Any, drop: bool
) -> None:
    mutated = dict(frame)
    if drop:
        mutated.pop(key, None)
    else:
        mutated[key] = value
    _check(translator, json.dumps(mutated).encode())


@FAST
@given(translators, st.sampled_from(FRAMES), st.integers(min_value=0, max_value=500))
def test_truncated_frames(translator: PhonicTranslator, frame: dict[str, Any], cut: int) -> None:
    text = json.dumps(frame)
    _check(translator, text[: cut % (len(text) + 1)])


@settings(max_examples=60, deadline=None)
@given(st.booleans(), st.lists(st.sampled_from(FRAMES), max_size=40))
def test_frames_in_any_order(mulaw: bool, frames: list[dict[str, Any]]) -> None:
    """Well-formed messages in any order never crash, and the state folds."""
    translator = _translator(mulaw)
    events = []
    for frame in frames:
        events.extend(translator.decode(json.dumps(frame)))
    fold(events)
