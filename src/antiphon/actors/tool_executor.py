"""tool-executor: runs the model's tool calls, guaranteeing exactly one output per call.

How this works: the tracker hands over a call only after its ``ToolCallRequested`` is in the
journal. The executor records ``ToolCallStarted`` (so after a crash we know the call may have
run), then runs the tool in its own task under the tool's timeout. Whatever happens — a
return value, an exception, bad arguments, a timeout, a cancellation by interruption or by
the provider — exactly one ``ToolCallFinished`` is recorded for the call id, and the tracker
then has it delivered. Sync tools run in a worker thread so they never block the event loop.

After a crash (``resume_session``), calls that were requested but never started run again;
calls that had started run again only when the tool is idempotent — otherwise the model is
told the outcome is unknown.

Calls of app-executed tools (a :class:`~antiphon.actors.Tool` without a callable) never come
here: the app answers them, and :func:`app_tool_result` turns its answer into the call's one
``ToolCallFinished`` — or refuses it, so a call never gets two outputs. After a crash they
stay pending for the app.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import anyio
from anyio.abc import TaskGroup, TaskStatus

from ..errors import ToolError
from ..protocol import (
    Event,
    FunctionOutput,
    PendingToolCall,
    SessionState,
    SubmitToolResult,
    ToolCallFinished,
    ToolCallRequested,
    ToolCallStarted,
    ToolCallStatus,
    ToolOutcome,
)
from ._actor import Actor
from ._tools import Tool, encode_output, error_output

# 64 calls: models issue a handful of calls per turn; a burst beyond this waits for room
# (calls are never dropped; the tracker only posts after journalling).
MAILBOX_SIZE = 64

Record = Callable[[Sequence[Event]], None]


class ToolExecutor(Actor[ToolCallRequested]):
    """The tool-executor actor. See the module docstring."""

    def __init__(self, *, tools: Mapping[str, Tool], record: Record) -> None:
        super().__init__("tool-executor", mailbox_size=MAILBOX_SIZE)
        self.tools = dict(tools)
        self._record = record
        self._running: dict[str, anyio.CancelScope] = {}
        self._cancel_reasons: dict[str, str] = {}
        self._finished: set[str] = set()
        self._tg: TaskGroup | None = None
        self.completed = 0

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                await super().run(task_status=task_status)
            finally:
                self._tg = None

    async def handle(self, message: ToolCallRequested, epoch: int) -> None:
        if message.call_id in self._running or message.call_id in self._finished:
            return
        assert self._tg is not None
        scope = anyio.CancelScope()
        self._running[message.call_id] = scope
        self._tg.start_soon(self._run_call, message, scope)

    def cancel(self, call_ids: Sequence[str], reason: str) -> None:
        """Cancel running calls (interruption, provider cancellation)."""
        for call_id in call_ids:
            scope = self._running.get(call_id)
            if scope is not None:
                self._cancel_reasons[call_id] = reason
                scope.cancel()

    def update_tools(self, tools: Mapping[str, Tool]) -> None:
        self.tools = dict(tools)

    def _finish(self, call: ToolCallRequested, output: str, outcome: ToolOutcome) -> None:
        if call.call_id in self._finished:
            return
        self._finished.add(call.call_id)
        self.completed += 1
        self._record(
            [ToolCallFinished(call_id=call.call_id, name=call.name, output=output, outcome=outcome)]
        )

    async def _run_call(self, call: ToolCallRequested, scope: anyio.CancelScope) -> None:
        try:
            tool = self.tools.get(call.name)
            if tool is None:
                self._finish(
                    call, error_output("error", f"unknown tool {call.name!r}"), ToolOutcome.ERROR
                )
                return
            fn = tool.fn
            if fn is None:
                return  # app-executed: the session leaves its calls to the app
            try:
                arguments = tool.parse_arguments(call.arguments)
            except ToolError as exc:
                self._finish(
                    call, error_output("error", f"bad arguments: {exc}"), ToolOutcome.ERROR
                )
                return
            self._record([ToolCallStarted(call_id=call.call_id)])
            timeout = tool.spec.timeout_s
            result: object = None
            failed: BaseException | None = None
            with scope:
                with anyio.move_on_after(timeout) as timer:
                    try:
                        if tool.is_async:
                            result = await tool.call(arguments)
                        else:
                            result = await anyio.to_thread.run_sync(
                                lambda: fn(**arguments), abandon_on_cancel=True
                            )
                    except Exception as exc:
                        failed = exc
                if timer.cancelled_caught:
                    self._finish(
                        call,
                        error_output("timeout", f"timed out after {timeout} s"),
                        ToolOutcome.TIMEOUT,
                    )
                    return
            if scope.cancelled_caught:
                reason = self._cancel_reasons.get(call.call_id, "cancelled")
                self._finish(call, error_output("cancelled", reason), ToolOutcome.CANCELLED)
            elif failed is not None:
                message = f"{type(failed).__name__}: {failed}"
                self._finish(call, error_output("error", message), ToolOutcome.ERROR)
            else:
                self._finish(call, encode_output(result), ToolOutcome.OK)
        finally:
            self._running.pop(call.call_id, None)
            self._cancel_reasons.pop(call.call_id, None)


def recover_calls(
    pending: Sequence[PendingToolCall], tools: Mapping[str, Tool]
) -> tuple[list[ToolCallRequested], list[ToolCallFinished]]:
    """After a crash: which pending calls to run again, and which get an 'unknown' result.
    Calls of app-executed tools are neither: they wait for the app's result.

    Returns:
        (calls to re-run, results to record now).
    """
    rerun: list[ToolCallRequested] = []
    unknown: list[ToolCallFinished] = []
    for call in pending:
        app_tool = tools.get(call.name)
        if app_tool is not None and app_tool.app_executed:
            continue
        request = ToolCallRequested(call_id=call.call_id, name=call.name, arguments=call.arguments)
        if call.status.value == "requested":
            rerun.append(request)
        elif call.status.value in ("running", "cancel_requested"):
            tool = tools.get(call.name)
            if tool is not None and tool.spec.idempotent:
                rerun.append(request)
            else:
                unknown.append(
                    ToolCallFinished(
                        call_id=call.call_id,
                        name=call.name,
                        output=error_output(
                            "unknown",
                            "the call was interrupted by a restart; whether it took effect is "
                            "unknown and it was not run again",
                        ),
                        outcome=ToolOutcome.UNKNOWN,
                    )
                )
    return rerun, unknown


def app_tool_result(
    state: SessionState, command: SubmitToolResult, tools: Mapping[str, Tool]
) -> ToolCallFinished:
    """The record of the app's result for a call of an app-executed tool.

    Raises:
        ToolError: no call ``command.call_id`` is waiting for the app: the model never made
            it, it already has its result, or its tool is run by the session.
    """
    call_id = command.call_id
    call = state.pending_tool(call_id)
    if call is None:
        answered = any(isinstance(i, FunctionOutput) and i.id == call_id for i in state.items)
        raise ToolError(
            f"tool call {call_id!r} already has its result"
            if answered
            else f"no tool call {call_id!r} is waiting for a result"
        )
    if call.status is ToolCallStatus.FINISHED:
        raise ToolError(f"tool call {call_id!r} already has its result")
    tool = tools.get(call.name)
    if tool is None or not tool.app_executed:
        raise ToolError(
            f"tool call {call_id!r} of {call.name!r} is run by the session; only calls of "
            "app-executed tools (a Tool without a callable) take the app's result"
        )
    return ToolCallFinished(
        call_id=call_id, name=call.name, output=command.output, outcome=command.outcome
    )
