"""tool-executor: runs the model's tool calls, guaranteeing exactly one output per call.

How this works: the tracker hands over a call only after its ``ToolCallRequested`` is in the
journal. The executor records ``ToolCallStarted`` (so after a crash we know the call may have
run), then runs the tool in its own task under the tool's timeout. Whatever happens — a
return value, an exception (``CancelledError`` raised by the tool itself included), bad or
absurdly nested arguments, a result that cannot be encoded or is too large, a timeout, a
cancellation by the provider — exactly one ``ToolCallFinished`` is recorded for the call id,
and the tracker then has it delivered. Sync tools run in a daemon worker thread, so they never
block the event loop and a hung one cannot keep the process alive once the session is over
(it is abandoned at its timeout).

A tool with ``cancel_on_interruption=False`` is not cancelled when the provider withdraws its
call: it finishes (its effects happen once), and its output is recorded but not sent.

A tool with ``requires_approval=True`` first records ``ToolApprovalRequested`` and waits for
``Session.approve`` (``ToolApprovalGranted``, then it runs) or ``Session.deny``
(``ToolApprovalDenied`` and an error output); past ``approval_timeout_s`` it is denied. The
decision is journalled, so after a crash a call still awaiting approval waits again (the app
is told again) and an approved one runs at most once.

A tool with ``long_running=True`` gets, once started, its one output at once: a note that it
runs and that its result will follow. The model carries on; when the tool is done, its result
(or error, or timeout) goes to ``late_result``, which the session sends as a message. A
result still running at a crash is lost (the call was answered; the note said so).

After a crash (``resume_session``), calls that were requested but never started run again;
calls that had started run again only when the tool is idempotent — otherwise the model is
told the outcome is unknown.

Calls of app-executed tools (a :class:`~antiphon.actors.Tool` without a callable) never come
here: the app answers them, and :func:`app_tool_result` turns its answer into the call's one
``ToolCallFinished`` — or refuses it, so a call never gets two outputs. After a crash they
stay pending for the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import msgspec
from anyio.abc import TaskGroup, TaskStatus

from ..errors import ToolError
from ..protocol import (
    Event,
    FunctionOutput,
    PendingToolCall,
    SessionState,
    SubmitToolResult,
    ToolApproval,
    ToolApprovalDenied,
    ToolApprovalRequested,
    ToolCallFinished,
    ToolCallProgress,
    ToolCallRequested,
    ToolCallStarted,
    ToolCallStatus,
    ToolOutcome,
)
from ._actor import Actor
from ._tools import Progress, Tool, describe, encode_output, error_output, safe_text

# 64 calls: models issue a handful of calls per turn; a burst beyond this waits for room
# (calls are never dropped; the tracker only posts after journalling).
MAILBOX_SIZE = 64

Record = Callable[[Sequence[Event]], None]
LateResult = Callable[[ToolCallRequested, str, ToolOutcome], None]


def running_output(name: str) -> str:
    """The one output of a long-running call: it runs, and its result will follow."""
    return msgspec.json.encode(
        {
            "status": "running",
            "message": f"{name} is running; its result will follow in a later message. "
            "Carry on with the conversation meanwhile.",
        }
    ).decode()


async def run_in_daemon_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a new daemon thread and wait for its result.

    Unlike a worker-pool thread, a daemon thread that never returns (a hung sync tool, which
    cannot be interrupted) does not keep the process alive after the event loop is done: when
    the waiting task is cancelled the thread is abandoned.
    """
    done = anyio.Event()
    box: dict[str, Any] = {}
    token = anyio.lowlevel.current_token()

    def work() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # handed to the waiting task, which decides
            box["error"] = exc
        # When the event loop is gone, the result has no one left to wait for it.
        with contextlib.suppress(Exception):
            anyio.from_thread.run_sync(done.set, token=token)

    threading.Thread(target=work, name="antiphon-tool", daemon=True).start()
    await done.wait()
    if "error" in box:
        raise box["error"]
    return box.get("result")


def _is_real_cancellation(exc: BaseException, *scopes: anyio.CancelScope) -> bool:
    """Whether ``exc`` is this task being cancelled, rather than a tool that raised
    ``CancelledError`` on its own (which is the tool's failure, not ours)."""
    if not isinstance(exc, anyio.get_cancelled_exc_class()):
        return False  # e.g. asyncio.CancelledError raised under trio: an ordinary failure
    if any(scope.cancel_called for scope in scopes):
        return True
    if isinstance(exc, asyncio.CancelledError):
        task = asyncio.current_task()
        return task is None or task.cancelling() > 0
    return True  # trio's Cancelled cannot be raised by user code


class _Approval:
    """A call waiting for the app's decision."""

    def __init__(self) -> None:
        self.decided = anyio.Event()
        self.granted = False


class ToolExecutor(Actor[ToolCallRequested]):
    """The tool-executor actor. See the module docstring.

    Args:
        tools: The session's tools, by name.
        record: Journals events (and has the tracker act on them).
        state: The session's current state, to know a call's journalled approval; without
            it, every call of a tool that requires approval asks for it.
        late_result: Receives the result of a long-running call (whose one output said it
            was running) when it is ready; a cancelled call has none.
    """

    def __init__(
        self,
        *,
        tools: Mapping[str, Tool],
        record: Record,
        state: Callable[[], SessionState] | None = None,
        late_result: LateResult | None = None,
    ) -> None:
        super().__init__("tool-executor", mailbox_size=MAILBOX_SIZE)
        self.tools = dict(tools)
        self._record = record
        self._state = state
        self._late_result = late_result
        self._running: dict[str, anyio.CancelScope] = {}
        self._started: set[str] = set()
        self._cancel_reasons: dict[str, str] = {}
        self._approvals: dict[str, _Approval] = {}
        self._call_names: dict[str, str] = {}  # running call id -> tool name
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
        self._call_names[message.call_id] = message.name
        self._tg.start_soon(self._run_call, message, scope)

    def cancel(self, call_ids: Sequence[str], reason: str) -> None:
        """Cancel running calls (interruption, provider cancellation). A started call of a
        tool with ``cancel_on_interruption=False`` is left to finish."""
        for call_id in call_ids:
            scope = self._running.get(call_id)
            if scope is None:
                continue
            tool = self._tool_of(call_id)
            if (
                call_id in self._started
                and tool is not None
                and not tool.spec.cancel_on_interruption
            ):
                continue
            self._cancel_reasons[call_id] = reason
            scope.cancel()

    def decide(self, call_id: str, *, granted: bool) -> None:
        """Hand the app's journalled decision to a call waiting for approval."""
        waiting = self._approvals.get(call_id)
        if waiting is not None:
            waiting.granted = granted
            waiting.decided.set()

    def awaiting_approval(self, call_id: str) -> bool:
        """Whether ``call_id`` is waiting here for the app's decision."""
        return call_id in self._approvals

    def update_tools(self, tools: Mapping[str, Tool]) -> None:
        self.tools = dict(tools)

    def _tool_of(self, call_id: str) -> Tool | None:
        return self.tools.get(self._call_names.get(call_id, ""))

    def _finish(self, call: ToolCallRequested, output: str, outcome: ToolOutcome) -> None:
        if call.call_id in self._finished:
            return
        self._finished.add(call.call_id)
        self.completed += 1
        self._record(
            [ToolCallFinished(call_id=call.call_id, name=call.name, output=output, outcome=outcome)]
        )

    def _fail(self, call: ToolCallRequested, message: str) -> None:
        self._finish(call, error_output("error", message), ToolOutcome.ERROR)

    async def _run_call(self, call: ToolCallRequested, scope: anyio.CancelScope) -> None:
        try:
            with scope:
                await self._settle(call, scope)
            if scope.cancelled_caught:
                reason = self._cancel_reasons.get(call.call_id, "cancelled")
                self._finish(call, error_output("cancelled", reason), ToolOutcome.CANCELLED)
        except Exception as exc:
            # The last guard of "every call gets one output": a failure of the runtime's own
            # code for this call (never the tool's, which _settle turns into outputs).
            self._fail(call, f"the call could not be completed: {describe(exc)}")
        finally:
            self._running.pop(call.call_id, None)
            self._started.discard(call.call_id)
            self._cancel_reasons.pop(call.call_id, None)
            self._approvals.pop(call.call_id, None)
            self._call_names.pop(call.call_id, None)

    async def _settle(self, call: ToolCallRequested, scope: anyio.CancelScope) -> None:
        tool = self.tools.get(call.name)
        if tool is None:
            self._fail(call, f"unknown tool {call.name!r}")
            return
        fn = tool.fn
        if fn is None:
            return  # app-executed: the session leaves its calls to the app
        try:
            arguments = tool.parse_arguments(call.arguments)
        except ToolError as exc:
            self._fail(call, f"bad arguments: {exc}")
            return
        if tool.spec.requires_approval and not await self._approved(call, tool):
            return
        if tool.progress_parameter is not None:
            arguments[tool.progress_parameter] = self._progress(call.call_id)
        self._record([ToolCallStarted(call_id=call.call_id)])
        self._started.add(call.call_id)
        long_running = tool.spec.long_running
        if long_running:
            self._finish(call, running_output(call.name), ToolOutcome.OK)
        timeout = tool.spec.timeout_s
        result: object = None
        failed: BaseException | None = None
        with anyio.move_on_after(timeout) as timer:
            try:
                if tool.is_async:
                    result = await tool.call(arguments)
                else:
                    result = await run_in_daemon_thread(lambda: tool.invoke(arguments))
            except BaseException as exc:
                if _is_real_cancellation(exc, scope, timer) or isinstance(
                    exc, KeyboardInterrupt | SystemExit
                ):
                    raise
                failed = exc
        if timer.cancelled_caught:
            output = error_output("timeout", f"timed out after {timeout} s")
            outcome = ToolOutcome.TIMEOUT
        elif failed is not None:
            output, outcome = error_output("error", describe(failed)), ToolOutcome.ERROR
        else:
            try:
                output, outcome = encode_output(result), ToolOutcome.OK
            except ToolError as exc:
                output, outcome = error_output("error", str(exc)), ToolOutcome.ERROR
        if not long_running:
            self._finish(call, output, outcome)
        elif self._late_result is not None:
            self._late_result(call, output, outcome)

    def _progress(self, call_id: str) -> Progress:
        """A reporter for one call: journals each report, from the loop or a tool's thread,
        and only while the call runs."""
        token = anyio.lowlevel.current_token()
        loop_thread = threading.get_ident()

        def record(message: object, fraction: object) -> None:
            if call_id not in self._running:
                return  # the call is over: a late report has nothing to describe
            # Lenient: a report is for people, so a bad one is shown as well as it can be
            # rather than failing the tool.
            text = message if isinstance(message, str) else f"{type(message).__name__} object"
            done: float | None = None
            if isinstance(fraction, int | float) and not isinstance(fraction, bool):
                done = min(max(float(fraction), 0.0), 1.0) if fraction == fraction else None
            event = ToolCallProgress(call_id=call_id, message=safe_text(text), fraction=done)
            self._record([event])

        def report(message: object, fraction: object) -> None:
            if threading.get_ident() == loop_thread:
                record(message, fraction)
            else:
                # When the event loop is gone, the report has no one left to read it.
                with contextlib.suppress(Exception):
                    anyio.from_thread.run_sync(record, message, fraction, token=token)

        return Progress(report)

    async def _approved(self, call: ToolCallRequested, tool: Tool) -> bool:
        """Wait for the app's decision on ``call``; False when it was denied (its output is
        recorded). A decision already in the journal (a resumed session) is used as is."""
        pending = self._state().pending_tool(call.call_id) if self._state is not None else None
        approval = pending.approval if pending is not None else ToolApproval.NONE
        if approval is ToolApproval.GRANTED:
            return True
        waiting = _Approval()
        self._approvals[call.call_id] = waiting
        if approval is ToolApproval.NONE:
            self._record(
                [
                    ToolApprovalRequested(
                        call_id=call.call_id, name=call.name, arguments=call.arguments
                    )
                ]
            )
        timeout = tool.spec.approval_timeout_s
        with anyio.move_on_after(timeout):
            await waiting.decided.wait()
        if waiting.decided.is_set():
            return waiting.granted  # the session journalled the decision (and a denial's output)
        reason = f"not approved within {timeout} s"
        self._record([ToolApprovalDenied(call_id=call.call_id, reason=reason)])
        self._finish(call, error_output("timeout", reason), ToolOutcome.TIMEOUT)
        return False


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
