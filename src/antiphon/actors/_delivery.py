"""Tool results to the provider, exactly once.

How this works: a result is delivered only after its ``ToolCallFinished`` is recorded
(write-ahead), and it counts as delivered only once ``ToolResultDelivered`` is recorded, right
after transport-send sent it. A result recorded while a connection is up is queued at once; when
a connection is activated, every recorded but undelivered result is queued again for it (the
previous connection's queued deliveries are dropped first), so each reaches the provider
exactly once whatever connection it lands on. A call the provider withdrew (Gemini
``toolCallCancellation``, Phonic ``tool_call_interrupted``) expects no output: it is settled
as delivered without sending anything.

Several calls of one turn: only the last result asks the model to go on (``respond``).
"""

from __future__ import annotations

from ..protocol import (
    DeliverToolResult,
    PendingToolCall,
    ToolCallFinished,
    ToolCallStatus,
    ToolResultDelivered,
)
from ._outbox import Outbox
from .recorder import Recorder


class ToolResultDelivery:
    """Queues tool results for transport-send and records their delivery. See the module
    docstring."""

    def __init__(self, *, recorder: Recorder, outbox: Outbox) -> None:
        self._recorder = recorder
        self._outbox = outbox

    def result_recorded(self, event: ToolCallFinished, *, epoch: int) -> None:
        """A result was recorded while ``epoch`` is the active connection: queue it."""
        state = self._recorder.state
        call = state.pending_tool(event.call_id)
        if call is None or call.status is not ToolCallStatus.FINISHED:
            return
        if call.withdrawn:
            self._settle_withdrawn(call.call_id, epoch=epoch)
            return
        self._outbox.put(_delivery(call, respond=not state.tools_outstanding()))

    def queue_undelivered(self, *, epoch: int) -> bool:
        """Queue every recorded, undelivered result once, for the newly active ``epoch``.

        Returns:
            True when one of them asks the model to respond.
        """
        self._outbox.drop_tool_results()
        state = self._recorder.state
        results = []
        for call in state.undelivered_results():
            if call.withdrawn:
                self._settle_withdrawn(call.call_id, epoch=epoch)
            else:
                results.append(call)
        outstanding = state.tools_outstanding()
        for i, call in enumerate(results):
            last = i == len(results) - 1
            self._outbox.put(_delivery(call, respond=last and not outstanding))
        return bool(results) and not outstanding

    def sent(self, command: DeliverToolResult, *, epoch: int) -> None:
        """transport-send sent ``command`` on ``epoch``: the result is delivered."""
        self._recorder.record([ToolResultDelivered(call_id=command.call_id, epoch=epoch)])

    def _settle_withdrawn(self, call_id: str, *, epoch: int) -> None:
        self._recorder.record([ToolResultDelivered(call_id=call_id, epoch=epoch)])


def _delivery(call: PendingToolCall, *, respond: bool) -> DeliverToolResult:
    return DeliverToolResult(
        call_id=call.call_id,
        name=call.name,
        output=call.output,
        outcome=call.outcome,
        respond=respond,
    )
