"""OpenTelemetry spans and metrics of a call, checked with the SDK's in-memory exporters."""

from __future__ import annotations

import json

import anyio
import anyio.lowlevel
import numpy as np
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from antiphon.actors import Backoff, open_session
from antiphon.events import ReplyEnded
from antiphon.journal import MemoryJournal
from antiphon.protocol import (
    ConnectionLost,
    ConnectionOpened,
    Event,
    GenerationEnded,
    GenerationEndReason,
    GenerationStarted,
    GenerationTextDelta,
    InputTranscriptFinal,
    SessionClosed,
    SessionStarted,
    TokenDetails,
    ToolCallFinished,
    ToolCallRequested,
    ToolCallStarted,
    ToolResultDelivered,
    Usage,
)
from antiphon.telemetry import CallTracer, trace_journal, trace_session
from antiphon.testing import Fault, ScriptedProvider, Trigger

MS = 1_000_000
T0 = 1_700_000_000_000 * MS


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _by_name(finished: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in finished if s.name.startswith(prefix)]


def _parent(span: ReadableSpan, finished: tuple[ReadableSpan, ...]) -> ReadableSpan:
    assert span.parent is not None
    return next(s for s in finished if s.context.span_id == span.parent.span_id)


def test_spans_attributes_and_metrics_of_a_call(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    reader = InMemoryMetricReader()
    tracer = CallTracer(tracer_provider=provider, meter_provider=MeterProvider([reader]))
    timeline: list[tuple[int, int, Event]] = [
        (0, 0, SessionStarted(session_id="s1", provider="openai", model="gpt-realtime")),
        (10, 1, ConnectionOpened(epoch=1)),
        (900, 1, InputTranscriptFinal(item_id="u1", text="Weather in Paris?")),
        (950, 1, GenerationStarted(generation_id="g1")),
        (960, 1, ToolCallRequested(call_id="c1", name="get_weather", generation_id="g1")),
        (970, 1, GenerationEnded(generation_id="g1", reason=GenerationEndReason.TOOL_CALL)),
        (975, 1, ToolCallStarted(call_id="c1")),
        (990, 1, ToolCallFinished(call_id="c1", name="get_weather", output="sunny")),
        (1000, 1, ConnectionLost(epoch=1, cause="closed:1006", recoverable=True)),
        (1250, 2, ConnectionOpened(epoch=2)),
        (1260, 2, ToolResultDelivered(call_id="c1", epoch=2)),
        (1300, 2, GenerationStarted(generation_id="g2")),
        (1320, 2, GenerationTextDelta(generation_id="g2", text="It is sunny ")),
        (1340, 2, GenerationTextDelta(generation_id="g2", text="in Paris.")),
        (1400, 2, GenerationEnded(generation_id="g2", reason=GenerationEndReason.COMPLETED)),
        (
            1400,
            2,
            Usage(
                input_tokens=40,
                output_tokens=28,
                total_tokens=68,
                cached_input_tokens=8,
                ttft_ms=120.0,
                input_details=TokenDetails(text=10, audio=30),
                output_details=TokenDetails(text=7, audio=21),
            ),
        ),
        (1500, 2, SessionClosed()),
    ]
    for at_ms, epoch, event in timeline:
        tracer.on_event(event, epoch, T0 + at_ms * MS)
    finished = exporter.get_finished_spans()

    (session,) = _by_name(finished, "realtime")
    assert session.name == "realtime gpt-realtime"
    assert session.parent is None
    attrs = session.attributes or {}
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-realtime"
    assert attrs["gen_ai.conversation.id"] == "s1"
    assert (session.start_time, session.end_time) == (T0, T0 + 1500 * MS)
    (reconnect,) = [e for e in session.events if e.name == "reconnect"]
    assert reconnect.attributes == {
        "antiphon.cause": "closed:1006",
        "antiphon.gap_ms": 250.0,
        "antiphon.epoch": 2,
    }

    connections = _by_name(finished, "connection")
    assert [c.name for c in sorted(connections, key=lambda s: s.start_time or 0)] == [
        "connection 1",
        "connection 2",
    ]
    assert all(_parent(c, finished) is session for c in connections)

    g1, g2 = sorted(_by_name(finished, "chat"), key=lambda s: s.start_time or 0)
    assert _parent(g1, finished).name == "connection 1"
    assert _parent(g2, finished).name == "connection 2"
    a1, a2 = g1.attributes or {}, g2.attributes or {}
    assert a1["gen_ai.operation.name"] == "chat"
    assert a1["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert a1["antiphon.user_transcript"] == "Weather in Paris?"
    assert json.loads(str(a1["gen_ai.input.messages"]))[0]["parts"][0]["content"] == (
        "Weather in Paris?"
    )
    assert a2["antiphon.assistant_text"] == "It is sunny in Paris."
    assert json.loads(str(a2["gen_ai.output.messages"]))[0]["finish_reason"] == "completed"
    assert a2["gen_ai.usage.input_tokens"] == 40
    assert a2["gen_ai.usage.output_tokens"] == 28
    assert a2["gen_ai.usage.cache_read.input_tokens"] == 8
    assert a2["antiphon.usage.input_audio_tokens"] == 30
    assert a2["antiphon.usage.output_text_tokens"] == 7
    assert a2["gen_ai.response.time_to_first_chunk"] == pytest.approx(0.12)
    assert g2.end_time == T0 + 1400 * MS

    (tool,) = _by_name(finished, "execute_tool")
    assert tool.name == "execute_tool get_weather"
    assert _parent(tool, finished) is g1
    t = tool.attributes or {}
    assert (t["gen_ai.tool.name"], t["gen_ai.tool.call.id"]) == ("get_weather", "c1")
    assert t["gen_ai.tool.call.result"] == "sunny"
    assert [e.name for e in tool.events] == ["started", "result", "delivered"]
    assert tool.end_time == T0 + 1260 * MS  # delivered on the next connection

    data = reader.get_metrics_data()
    assert data is not None
    metrics = {
        m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    tokens = metrics["gen_ai.client.token.usage"].data.data_points
    assert {dict(p.attributes or {})["gen_ai.token.type"]: p.sum for p in tokens} == {
        "input": 40,
        "output": 28,
    }
    (reconnects,) = metrics["antiphon.reconnects"].data.data_points
    assert reconnects.value == 1


async def _scripted_call(journal: MemoryJournal, provider_spans: TracerProvider | None) -> str:
    provider = ScriptedProvider(commit_every=8)
    provider.fault(Fault.drop(), at=Trigger.reply_audio(2))
    rng = np.random.default_rng(2)

    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return f"sunny in {city}"

    backoff = Backoff(base_s=0.01, max_s=0.05)
    async with open_session(
        provider, journal=journal, backoff=backoff, tools=[get_weather]
    ) as session:
        if provider_spans is not None:
            trace_session(session, tracer_provider=provider_spans)
        for _ in range(24):
            pcm = rng.integers(-3000, 3000, 320, dtype=np.int16).tobytes()
            await session.send_audio(pcm, sample_rate=16_000)
            await anyio.lowlevel.checkpoint()
        with anyio.fail_after(30):
            ended = 0
            async for event in session.events():
                ended += isinstance(event, ReplyEnded)
                if ended >= 4 and session.state.turns == 3:
                    break
        return session.session_id


def _shape(finished: tuple[ReadableSpan, ...]) -> tuple[int, int, int, int, bool]:
    session = _by_name(finished, "realtime")
    connections = _by_name(finished, "connection")
    chats = _by_name(finished, "chat")
    tools = _by_name(finished, "execute_tool")
    reconnect = any(e.name == "reconnect" for s in session for e in s.events)
    for chat in chats:
        assert _parent(chat, finished).name.startswith("connection")
    for tool in tools:
        assert _parent(tool, finished).name.startswith("chat")
    return len(session), len(connections), len(chats), len(tools), reconnect


@pytest.mark.anyio
async def test_a_journal_and_a_live_session_give_the_same_trace(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    live_provider, live = spans
    journal = MemoryJournal()
    sid = await _scripted_call(journal, live_provider)
    live_shape = _shape(live.get_finished_spans())

    exporter = InMemorySpanExporter()
    replayed = TracerProvider()
    replayed.add_span_processor(SimpleSpanProcessor(exporter))
    trace_journal(journal, sid, tracer_provider=replayed)
    journal_shape = _shape(exporter.get_finished_spans())

    assert journal_shape == live_shape
    sessions, connections, chats, tools, reconnect = journal_shape
    assert (sessions, connections, tools, reconnect) == (1, 2, 1, True)
    assert chats >= 4
