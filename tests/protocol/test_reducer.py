"""The reducer: total (never raises on valid events) and replay-equivalent (a journal's events
fold into exactly the state the live session had)."""

from __future__ import annotations

import typing
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from antiphon.journal import FileJournal, MemoryJournal
from antiphon.protocol import (
    EVENT_TYPES,
    AssistantMessage,
    AssistantTruncated,
    AudioSpan,
    ConnectionLost,
    ConnectionOpened,
    Event,
    FunctionCall,
    FunctionOutput,
    GenerationAudioDelta,
    GenerationEnded,
    GenerationEndReason,
    GenerationStarted,
    GenerationTextDelta,
    InputTranscriptDelta,
    InputTranscriptFinal,
    ResumptionHandleUpdated,
    SessionState,
    ToolCallCancelRequested,
    ToolCallFinished,
    ToolCallRequested,
    ToolCallStarted,
    ToolCallStatus,
    ToolResultDelivered,
    ToolSpec,
    UserAudioCommitted,
    UserMessage,
    apply,
    decode_event,
    encode_event,
    fold,
)

# A small universe of ids and texts, so that generated events refer to each other.
IDS = st.sampled_from(["a", "b", "c", ""])
TEXT = st.sampled_from(["", "hi", " there", "héllo", "{}", '{"x": 1}'])


def _strategy(hint: Any) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is str:
        return st.one_of(IDS, TEXT)
    if hint is bool:
        return st.booleans()
    if hint is int:
        return st.integers(min_value=-5, max_value=50_000)
    if hint is float:
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    if hint is bytes:  # PCM16: whole samples
        return st.binary(max_size=4).map(lambda b: b + b)
    if hint is AudioSpan:
        return st.builds(
            AudioSpan,
            stream=st.sampled_from(["user", "assistant"]),
            offset=st.integers(0, 10_000),
            length=st.integers(0, 4_000).map(lambda n: n * 2),
            sample_rate=st.just(24_000),
        )
    if hint is ToolSpec:
        return st.builds(ToolSpec, name=IDS)
    if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        return _struct(hint)
    if isinstance(hint, type) and issubclass(hint, str) and hasattr(hint, "__members__"):
        return st.sampled_from(list(hint))  # enums
    if origin is tuple:
        return st.lists(_strategy(args[0]), max_size=3).map(tuple)
    if origin is dict:
        return st.dictionaries(IDS, st.integers(-1000, 1000), max_size=2)
    if origin in (typing.Union, __import__("types").UnionType):
        return st.one_of(*(_strategy(a) for a in args))
    if hint is type(None):
        return st.none()
    raise AssertionError(f"no strategy for {hint!r}")


def _struct(cls: type[msgspec.Struct]) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    fields = {name: _strategy(hints[name]) for name in cls.__struct_fields__}
    if "sample_rate" in fields:
        # One rate per audio stream, as the runtime writes them.
        fields["sample_rate"] = st.just(16_000 if cls.__name__ == "UserAudio" else 24_000)
    built = st.builds(cls, **fields)
    if "audio" in fields and "span" in fields:
        # Audio is inline (before journalling) or a span (after), never both.
        built = built.map(lambda e: msgspec.structs.replace(e, span=None) if e.audio else e)
    return built


EVENTS = st.one_of(*(_struct(t) for t in EVENT_TYPES))


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENTS, max_size=60))
def test_the_reducer_is_total(events: list[Event]) -> None:
    state = SessionState()
    for event in events:
        state = apply(state, event)
    assert isinstance(state, SessionState)
    assert fold(events) == state
    # Invariants that hold whatever the events: one pending entry per call id, and every
    # function output answers a call in the history.
    pending = [c.call_id for c in state.pending_tools]
    assert len(pending) == len(set(pending))
    calls = {i.id for i in state.items if isinstance(i, FunctionCall)}
    assert {i.id for i in state.items if isinstance(i, FunctionOutput)} <= calls


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENTS, max_size=40))
def test_events_survive_their_binary_encoding(events: list[Event]) -> None:
    assert [decode_event(encode_event(e)) for e in events] == events


@pytest.mark.parametrize("backend", ["memory", "file"])
@settings(max_examples=40, deadline=None)
@given(batches=st.lists(st.lists(EVENTS, min_size=1, max_size=5), max_size=25))
def test_replaying_a_journal_gives_the_live_state(
    backend: str, batches: list[list[Event]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    journal = (
        MemoryJournal(snapshot_every=7)
        if backend == "memory"
        else FileJournal(tmp_path_factory.mktemp("j"), snapshot_every=7)
    )
    writer = journal.writer("s1")
    live = SessionState()
    for batch in batches:
        # The runtime's way: fold, append with the state after (so snapshots are taken).
        live = fold(batch, live)
        writer.append(
            batch, expected_seq=writer.next_seq, epoch=1, mono_ns=0, wall_ns=0, state=live
        )
    writer.close()
    assert journal.replay("s1") == live
    journal.close()


def test_a_conversation_folds_into_its_history() -> None:
    events: list[Event] = [
        ConnectionOpened(epoch=1),
        UserAudioCommitted(item_id="u1"),
        InputTranscriptDelta(item_id="u1", text="What's the"),
        GenerationStarted(generation_id="g1"),
        GenerationTextDelta(generation_id="g1", item_id="m1", text="Let me check."),
        ToolCallRequested(call_id="c1", name="get_weather", arguments='{"city":"Paris"}'),
        InputTranscriptFinal(item_id="u1", text="What's the weather?"),
        GenerationEnded(generation_id="g1", reason=GenerationEndReason.TOOL_CALL),
        ToolCallStarted(call_id="c1"),
        ToolCallFinished(call_id="c1", name="get_weather", output='"sunny"'),
        ToolCallFinished(call_id="c1", name="get_weather", output='"rain"'),  # ignored
        ToolResultDelivered(call_id="c1", epoch=1),
        GenerationAudioDelta(generation_id="g2", audio=b"\x00\x01" * 10),
        GenerationTextDelta(generation_id="g2", text="It is sunny."),
        ConnectionLost(epoch=1, cause="closed:1006", recoverable=True),
    ]
    state = fold(events)
    assert state.items == (
        UserMessage(id="u1", text="What's the weather?", from_audio=True, final=True),
        AssistantMessage(id="m1", text="Let me check."),
        FunctionCall(id="c1", name="get_weather", arguments='{"city":"Paris"}'),
        FunctionOutput(id="c1", name="get_weather", output='"sunny"'),
        AssistantMessage(id="g2", text="It is sunny.", interrupted=True),
    )
    assert state.pending_tools == ()
    assert state.generation is None
    assert state.assistant_audio_bytes == 20
    assert state.interrupted_generations == 1
    assert not state.connected


def test_tool_lifecycle_and_history_for_priming() -> None:
    state = fold(
        [
            ToolCallRequested(call_id="c1", name="t"),
            ToolCallRequested(call_id="c2", name="t"),
            ToolCallStarted(call_id="c1"),
            ToolCallCancelRequested(call_ids=("c2",), reason="provider"),
            ToolCallFinished(call_id="c1", name="t", output="1"),
        ]
    )
    statuses = {c.call_id: c.status for c in state.pending_tools}
    assert statuses == {"c1": ToolCallStatus.FINISHED, "c2": ToolCallStatus.CANCEL_REQUESTED}
    assert [c.call_id for c in state.undelivered_results()] == ["c1"]
    # The output waits for delivery: priming leaves it out, the runtime delivers it once.
    assert [type(i).__name__ for i in state.history()] == ["FunctionCall", "FunctionCall"]


def test_only_resumable_handles_are_kept() -> None:
    state = fold(
        [
            ResumptionHandleUpdated(handle="h1", received_at_s=5.0),
            ResumptionHandleUpdated(handle="h2", resumable=False),
            ResumptionHandleUpdated(handle="", resumable=True),
        ]
    )
    assert (state.resumption_handle, state.resumption_handle_at_s) == ("h1", 5.0)


@pytest.mark.parametrize("before_end", [True, False])
def test_a_truncation_with_text_keeps_what_was_heard(before_end: bool) -> None:
    said = [
        GenerationStarted(generation_id="g1"),
        GenerationTextDelta(generation_id="g1", item_id="g1", text="Once upon a time,"),
        GenerationTextDelta(generation_id="g1", item_id="g1", text=" a robot."),
    ]
    cut = AssistantTruncated(item_id="g1", audio_end_ms=400, text="Once upon")
    ended = GenerationEnded(generation_id="g1", reason=GenerationEndReason.INTERRUPTED)
    state = fold([*said, cut, ended] if before_end else [*said, ended, cut])
    assert state.items == (
        AssistantMessage(id="g1", text="Once upon", interrupted=True, heard_ms=400),
    )
    # Without text (OpenAI's truncate) the generated text stays.
    kept = fold([*said, ended, AssistantTruncated(item_id="g1", audio_end_ms=400)])
    assert kept.items == (
        AssistantMessage(
            id="g1", text="Once upon a time, a robot.", interrupted=True, heard_ms=400
        ),
    )
