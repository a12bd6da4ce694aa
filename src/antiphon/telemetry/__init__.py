"""OpenTelemetry for antiphon sessions: spans and metrics (the ``otel`` extra).

A call becomes one trace::

    realtime <model>                       the session (gen_ai.conversation.id = session id)
      connection <epoch>                   one provider connection; reconnects are span
      │                                    events of the session ("reconnect": cause, gap_ms)
      ├─ chat <model>                      one generation: tokens (with their modality details),
      │    └─ execute_tool <name>          TTFT, the user transcript that prompted it and the
      │                                    assistant's text (gen_ai.input/output.messages)
      └─ ...

Attributes follow the OpenTelemetry GenAI semantic conventions (``gen_ai.provider.name``,
``gen_ai.request.model``, ``gen_ai.usage.input_tokens`` / ``output_tokens`` /
``cache_read.input_tokens`` / ``reasoning.output_tokens``, ``gen_ai.response.finish_reasons``,
``gen_ai.response.time_to_first_chunk``, ``gen_ai.tool.name`` / ``call.id``); what they have no
name for is under ``antiphon.*``. Metrics: ``gen_ai.client.token.usage`` (histogram, by
``gen_ai.token.type``) and ``antiphon.reconnects`` (counter, by cause).

Two ways in:

* a live session: ``trace_session(session)`` follows every event the session journals;
* a finished call: ``trace_journal(journal, session_id)`` builds the same spans from the
  journal, with the recorded times.

Both take an optional ``tracer_provider`` / ``meter_provider`` (default: the global ones).
Needs ``pip install 'antiphon[otel]'``.
"""

from __future__ import annotations

from ._tracer import CallTracer, trace_journal, trace_session

__all__ = ["CallTracer", "trace_journal", "trace_session"]
