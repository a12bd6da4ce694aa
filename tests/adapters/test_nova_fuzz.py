"""Fuzzing the Nova translator: any frame yields events or ProtocolError, never a crash;
generation invariants hold over any sequence of plausible output events."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from antiphon.adapters.nova import NovaTranslator
from antiphon.errors import ProtocolError
from antiphon.protocol import (
    Event,
    GenerationAudioDelta,
    GenerationEnded,
    GenerationStarted,
    GenerationTextDelta,
    SessionState,
    apply,
)

_ids = st.sampled_from(["c1", "c2", "c3", "c4", ""])
_roles = st.sampled_from(["USER", "ASSISTANT", "TOOL", "SYSTEM", "", "weird"])
_kinds = st.sampled_from(["TEXT", "AUDIO", "TOOL", ""])
_stages = st.sampled_from(["FINAL", "SPECULATIVE", "", None, "{bad json"])
_stops = st.sampled_from(["END_TURN", "PARTIAL_TURN", "INTERRUPTED", "TOOL_USE", ""])
_texts = st.one_of(
    st.text(max_size=20),
    st.sampled_from(['{ "interrupted" : true }', '{"interrupted":true}', "Hello."]),
)


def _content_start(cid: str, kind: str, role: str, stage: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"contentId": cid, "type": kind, "role": role, "completionId": "k"}
    if stage is not None:
        body["additionalModelFields"] = (
            stage if stage.startswith("{") else json.dumps({"generationStage": stage})
        )
    return {"contentStart": body}


_events = st.one_of(
    st.builds(_content_start, _ids, _kinds, _roles, _stages),
    st.builds(
        lambda cid, role, text: {"textOutput": {"contentId": cid, "role": role, "content": text}},
        _ids,
        _roles,
        _texts,
    ),
    st.builds(
        lambda cid, pcm: {
            "audioOutput": {"contentId": cid, "content": base64.b64encode(pcm).decode()}
        },
        _ids,
        st.binary(max_size=8),
    ),
    st.builds(
        lambda cid, uid, content: {
            "toolUse": {"contentId": cid, "toolName": "f", "toolUseId": uid, "content": content}
        },
        _ids,
        st.sampled_from(["t1", "t2"]),
        st.one_of(st.text(max_size=10), st.just('"{\\"a\\": 1}"')),
    ),
    st.builds(
        lambda cid, kind, stop: {
            "contentEnd": {"contentId": cid, "type": kind, "stopReason": stop}
        },
        _ids,
        _kinds,
        _stops,
    ),
    st.just({"completionStart": {"completionId": "k"}}),
    st.just({"completionEnd": {"completionId": "k", "stopReason": "END_TURN"}}),
    st.builds(
        lambda a, b: {"usageEvent": {"totalInputTokens": a, "totalOutputTokens": b}},
        st.integers(0, 100),
        st.integers(0, 100),
    ),
    st.just({"somethingNew": {}}),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_events, max_size=40))
def test_generation_invariants_over_plausible_sequences(bodies: list[dict[str, Any]]) -> None:
    tr = NovaTranslator()
    tr.handshake(SessionState(session_id="s", epoch=1))
    events: list[Event] = []
    for body in bodies:
        # A toolUse without an id is a ProtocolError: reported, never a crash.
        with contextlib.suppress(ProtocolError):
            events += tr.decode(json.dumps({"event": body}))
    started: set[str] = set()
    ended: set[str] = set()
    state = SessionState()
    for event in events:
        state = apply(state, event)  # the reducer takes everything the translator emits
        if isinstance(event, GenerationStarted):
            assert event.generation_id not in started
            started.add(event.generation_id)
        elif isinstance(event, (GenerationAudioDelta, GenerationTextDelta)):
            assert event.generation_id in started
            assert event.generation_id not in ended  # nothing after the end
            if isinstance(event, GenerationTextDelta):
                assert "interrupted" not in event.text or "true" not in event.text
        elif isinstance(event, GenerationEnded):
            assert event.generation_id in started
            assert event.generation_id not in ended  # ended once
            ended.add(event.generation_id)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=100),
        st.builds(lambda v: json.dumps(v).encode(), _json),
        st.builds(
            lambda name, body: json.dumps({"event": {name: body}}).encode(),
            st.sampled_from(
                [
                    "contentStart",
                    "textOutput",
                    "audioOutput",
                    "toolUse",
                    "contentEnd",
                    "completionEnd",
                    "usageEvent",
                ]
            ),
            _json,
        ),
    )
)
def test_any_frame_yields_events_or_protocol_error(frame: bytes) -> None:
    tr = NovaTranslator()
    tr.handshake(SessionState())
    try:
        tr.decode(frame)
    except ProtocolError as exc:
        provider = exc.provider
    else:
        provider = "nova"
    assert provider == "nova"
