"""Journalled events -> OpenTelemetry spans and metrics. See the package docstring."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ..protocol import (
    ConnectionLost,
    ConnectionOpened,
    ConnectionRotated,
    Event,
    GenerationEnded,
    GenerationStarted,
    GenerationTextDelta,
    InputTranscriptFinal,
    ProviderErrorEvent,
    ProviderSwitched,
    SessionClosed,
    SessionStarted,
    ToolCallFinished,
    ToolCallRequested,
    ToolCallStarted,
    ToolResultDelivered,
    Usage,
)

if TYPE_CHECKING:
    from ..actors import Session
    from ..journal import JournalBackend

__all__ = ["CallTracer", "trace_journal", "trace_session"]

_SCOPE: Final = "antiphon"


class _Generation:
    __slots__ = ("ended_at", "span", "started_at", "text", "usage_seen")

    def __init__(self, span: Span, started_at: int) -> None:
        self.span = span
        self.started_at = started_at
        self.text: list[str] = []
        self.ended_at: int | None = None  # ended, span kept open for a late Usage
        self.usage_seen = False


class CallTracer:
    """Turns one session's events, in journal order, into spans and metrics.

    Feed it with :meth:`on_event` (the event, its connection epoch and its wall time in unix
    ns); :meth:`close` ends whatever is still open. :func:`trace_session` and
    :func:`trace_journal` do this for a live session and a journal.

    Args:
        tracer_provider: Where spans go (default: the global provider).
        meter_provider: Where metrics go (default: the global provider).
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens used per reply"
        )
        self._reconnects = meter.create_counter(
            "antiphon.reconnects", unit="{reconnect}", description="Provider reconnects"
        )
        self._provider = ""
        self._model = ""
        self._session: Span | None = None
        self._epochs: dict[int, Span] = {}
        self._lost_at: tuple[int, str] | None = None  # (wall ns, cause) of the last loss
        self._generations: dict[str, _Generation] = {}
        self._last_generation: _Generation | None = None
        self._tools: dict[str, Span] = {}
        self._user_text: list[str] = []
        self._closed = False

    # --- feeding ------------------------------------------------------------------------

    def on_event(self, event: Event, epoch: int, wall_ns: int) -> None:
        """Account for one journalled event (``wall_ns``: when it was recorded)."""
        if self._closed:
            return
        if not isinstance(event, Usage):
            self._end_pending_generation(wall_ns)
        match event:
            case SessionStarted():
                self._start_session(event, wall_ns)
            case ConnectionOpened(epoch=opened):
                self._open_epoch(opened, wall_ns)
            case ConnectionLost(epoch=lost, cause=cause, recoverable=recoverable):
                span = self._epochs.pop(lost, None)
                if span is not None:
                    span.set_attribute("antiphon.connection.end_cause", cause)
                    if not recoverable:
                        span.set_status(Status(StatusCode.ERROR, cause))
                    span.end(end_time=wall_ns)
                self._lost_at = (wall_ns, cause)
            case ConnectionRotated(previous_epoch=previous, cause=cause):
                span = self._epochs.pop(previous, None)
                if span is not None:
                    span.set_attribute("antiphon.connection.end_cause", f"rotation:{cause}")
                    span.end(end_time=wall_ns)
                self._event("reconnect", wall_ns, cause=f"rotation:{cause}", gap_ms=0.0)
            case ProviderSwitched(provider=provider, previous_provider=previous, cause=cause):
                self._event(
                    "provider_switched", wall_ns, provider=provider, previous=previous, cause=cause
                )
                # Spans from here on name the provider and model that produced them.
                self._provider, self._model = provider, event.model
            case InputTranscriptFinal(text=text):
                self._user_text.append(text)
            case GenerationStarted(generation_id=gid):
                self._start_generation(gid, epoch, wall_ns)
            case GenerationTextDelta(generation_id=gid, text=text):
                generation = self._generations.get(gid)
                if generation is not None:
                    generation.text.append(text)
            case GenerationEnded(generation_id=gid, reason=reason):
                self._end_generation(gid, str(reason), wall_ns)
            case Usage():
                self._usage(event)
            case ToolCallRequested(call_id=call_id, name=name, arguments=arguments):
                self._start_tool(call_id, name, arguments, event.generation_id, wall_ns)
            case ToolCallStarted(call_id=call_id):
                if (span := self._tools.get(call_id)) is not None:
                    span.add_event("started", timestamp=wall_ns)
            case ToolCallFinished(call_id=call_id, output=output, outcome=outcome):
                if (span := self._tools.get(call_id)) is not None:
                    span.add_event("result", {"outcome": str(outcome)}, timestamp=wall_ns)
                    span.set_attribute("gen_ai.tool.call.result", output)
                    span.set_attribute("antiphon.tool.outcome", str(outcome))
                    if str(outcome) != "ok":
                        span.set_status(Status(StatusCode.ERROR, str(outcome)))
            case ToolResultDelivered(call_id=call_id, epoch=delivered_on):
                span = self._tools.pop(call_id, None)
                if span is not None:
                    span.add_event("delivered", {"antiphon.epoch": delivered_on}, timestamp=wall_ns)
                    span.end(end_time=wall_ns)
            case ProviderErrorEvent(code=code, message=message, recoverable=recoverable):
                if self._session is not None:
                    self._session.add_event(
                        "provider_error",
                        {"code": code, "message": message[:500], "recoverable": recoverable},
                        timestamp=wall_ns,
                    )
            case SessionClosed(reason=reason):
                if self._session is not None:
                    self._session.set_attribute("antiphon.session.close_reason", reason)
                self.close(wall_ns)
            case _:
                pass

    def close(self, wall_ns: int | None = None) -> None:
        """End every span still open (at ``wall_ns``, default now). Idempotent."""
        if self._closed:
            return
        self._closed = True
        now = wall_ns if wall_ns is not None else time.time_ns()
        self._end_pending_generation(now)
        for span in self._tools.values():
            span.end(end_time=now)
        for generation in self._generations.values():
            generation.span.end(end_time=now)
        for span in self._epochs.values():
            span.end(end_time=now)
        self._tools.clear()
        self._generations.clear()
        self._epochs.clear()
        if self._session is not None:
            self._session.end(end_time=now)

    # --- spans --------------------------------------------------------------------------

    def _start_session(self, event: SessionStarted, wall_ns: int) -> None:
        self._provider = event.provider
        self._model = event.model
        self._session = self._tracer.start_span(
            f"realtime {event.model or event.provider}",
            kind=SpanKind.CLIENT,
            start_time=wall_ns,
            attributes={
                "gen_ai.operation.name": "realtime",
                "gen_ai.provider.name": event.provider,
                "gen_ai.request.model": event.model,
                "gen_ai.conversation.id": event.session_id,
                "gen_ai.system_instructions": event.instructions,
                "gen_ai.tool.definitions": json.dumps([t.name for t in event.tools]),
            },
        )

    def _context(self, parent: Span | None) -> Any:
        return trace.set_span_in_context(parent) if parent is not None else None

    def _open_epoch(self, epoch: int, wall_ns: int) -> None:
        if self._lost_at is not None:
            lost_ns, cause = self._lost_at
            self._lost_at = None
            gap_ms = (wall_ns - lost_ns) / 1e6
            self._event("reconnect", wall_ns, cause=cause, gap_ms=gap_ms, epoch=epoch)
        self._epochs[epoch] = self._tracer.start_span(
            f"connection {epoch}",
            context=self._context(self._session),
            start_time=wall_ns,
            attributes={"antiphon.epoch": epoch, "gen_ai.provider.name": self._provider},
        )

    def _event(self, name: str, wall_ns: int, **attributes: Any) -> None:
        if name == "reconnect":
            self._reconnects.add(1, {"antiphon.reconnect.cause": str(attributes["cause"])})
        if self._session is not None:
            self._session.add_event(
                name, {f"antiphon.{k}": v for k, v in attributes.items()}, timestamp=wall_ns
            )

    def _start_generation(self, gid: str, epoch: int, wall_ns: int) -> None:
        parent = self._epochs.get(epoch) or self._latest_epoch() or self._session
        span = self._tracer.start_span(
            f"chat {self._model or self._provider}",
            context=self._context(parent),
            start_time=wall_ns,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": self._provider,
                "gen_ai.request.model": self._model,
                "gen_ai.response.id": gid,
                "antiphon.epoch": epoch,
            },
        )
        if self._user_text:
            transcript = " ".join(self._user_text)
            self._user_text = []
            span.set_attribute("antiphon.user_transcript", transcript)
            span.set_attribute(
                "gen_ai.input.messages",
                json.dumps([{"role": "user", "parts": [{"type": "text", "content": transcript}]}]),
            )
        self._generations[gid] = _Generation(span, wall_ns)

    def _latest_epoch(self) -> Span | None:
        return self._epochs[max(self._epochs)] if self._epochs else None

    def _end_generation(self, gid: str, reason: str, wall_ns: int) -> None:
        generation = self._generations.pop(gid, None)
        if generation is None:
            return
        text = "".join(generation.text)
        span = generation.span
        span.set_attribute("gen_ai.response.finish_reasons", [reason])
        span.set_attribute("antiphon.assistant_text", text)
        span.set_attribute(
            "gen_ai.output.messages",
            json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": text}],
                        "finish_reason": reason,
                    }
                ]
            ),
        )
        if reason == "failed":
            span.set_status(Status(StatusCode.ERROR, reason))
        # Usage often arrives with or just after the end: the span ends at the next event.
        generation.ended_at = wall_ns
        self._last_generation = generation

    def _end_pending_generation(self, wall_ns: int) -> None:
        generation = self._last_generation
        if generation is not None and generation.ended_at is not None:
            generation.span.end(end_time=generation.ended_at)
            self._last_generation = None

    def _usage(self, usage: Usage) -> None:
        target = self._last_generation
        if target is None and self._generations:
            target = list(self._generations.values())[-1]
        attributes: dict[str, Any] = {
            "gen_ai.usage.input_tokens": usage.input_tokens,
            "gen_ai.usage.output_tokens": usage.output_tokens,
            "gen_ai.usage.cache_read.input_tokens": usage.cached_input_tokens,
            "gen_ai.usage.reasoning.output_tokens": usage.reasoning_tokens,
            "antiphon.usage.total_tokens": usage.total_tokens,
        }
        for side, details in (
            ("input", usage.input_details),
            ("output", usage.output_details),
            ("cached", usage.cached_details),
        ):
            for modality in ("text", "audio", "image", "video"):
                count = getattr(details, modality)
                if count:
                    attributes[f"antiphon.usage.{side}_{modality}_tokens"] = count
        if usage.ttft_ms is not None:
            attributes["gen_ai.response.time_to_first_chunk"] = usage.ttft_ms / 1000.0
        if target is not None:
            target.span.set_attributes(attributes)
        base = {"gen_ai.provider.name": self._provider, "gen_ai.request.model": self._model}
        self._tokens.record(usage.input_tokens, {**base, "gen_ai.token.type": "input"})
        self._tokens.record(usage.output_tokens, {**base, "gen_ai.token.type": "output"})

    def _start_tool(self, call_id: str, name: str, arguments: str, gid: str, wall_ns: int) -> None:
        generation = self._generations.get(gid) if gid else None
        if generation is None and self._generations:
            generation = list(self._generations.values())[-1]
        parent = generation.span if generation is not None else self._session
        self._tools[call_id] = self._tracer.start_span(
            f"execute_tool {name}",
            context=self._context(parent),
            start_time=wall_ns,
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": name,
                "gen_ai.tool.call.id": call_id,
                "gen_ai.tool.type": "function",
                "gen_ai.tool.call.arguments": arguments,
            },
        )


def trace_journal(
    journal: JournalBackend,
    session_id: str,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> CallTracer:
    """Spans and metrics of a finished (or interrupted) call, from its journal, at the times
    recorded. Spans still open at the journal's end are ended at its last record.

    Args:
        journal: A :class:`~antiphon.journal.JournalBackend`.
        session_id: The session.

    Raises:
        antiphon.errors.JournalError: the session does not exist.
    """
    tracer = CallTracer(tracer_provider=tracer_provider, meter_provider=meter_provider)
    last = 0
    for record in journal.records(session_id):
        tracer.on_event(record.event, record.epoch, record.wall_ns)
        last = record.wall_ns
    tracer.close(last or None)
    return tracer


def trace_session(
    session: Session,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> CallTracer:
    """Follow a live session: what it journalled so far, then every event as it is recorded.

    The spans end when the session closes.
    """
    tracer = CallTracer(tracer_provider=tracer_provider, meter_provider=meter_provider)
    for record in session.journal.records(session.session_id):
        tracer.on_event(record.event, record.epoch, record.wall_ns)

    def listener(events: Sequence[Event], epoch: int) -> None:
        now = time.time_ns()
        for event in events:
            tracer.on_event(event, epoch, now)

    # The recorder calls its listeners synchronously after each batch is journalled; nothing
    # is recorded between the read above and this subscription (no await in between).
    session.subscribe(listener)
    return tracer
