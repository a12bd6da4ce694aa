"""Tool vocabulary: what a tool is, a call the model made, and the one result each call gets."""

from __future__ import annotations

import enum
from typing import Any

import msgspec

from ._base import Message


class ToolSpec(Message, frozen=True, kw_only=True):
    """A tool the model may call.

    Attributes:
        name: Function name the model sees.
        description: What the tool does, for the model.
        parameters: JSON Schema (an ``object`` schema) of the arguments.
        timeout_s: How long one call may run before it gets a timeout result.
        idempotent: False when running the tool twice has effects (a payment, an email).
            A non-idempotent call whose outcome is unknown after a crash is never re-run.
        cancel_on_interruption: Whether a running call the provider withdraws (a barge-in)
            is cancelled; False lets a tool with effects finish. Its one output is recorded
            either way (and not sent for a withdrawn call).
        requires_approval: A call waits for the app's approval before it runs.
        approval_timeout_s: How long a call waits for approval before it is denied.
        long_running: The call's one output, sent at once, tells the model the tool is
            running; its result follows as a message when ready (at the end of the reply in
            progress, if any), and the model is asked to respond to it.
    """

    name: str
    description: str = ""
    parameters: dict[str, Any] = msgspec.field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    timeout_s: float = 30.0
    idempotent: bool = True
    cancel_on_interruption: bool = True
    requires_approval: bool = False
    approval_timeout_s: float = 300.0
    long_running: bool = False


class ToolOutcome(enum.StrEnum):
    """How a tool call ended, as the model is told."""

    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"  # the process died while a non-idempotent call ran


class ToolCall(Message, frozen=True, kw_only=True):
    """A call the model asked for. ``arguments`` is the provider's JSON text, unparsed."""

    call_id: str
    name: str
    arguments: str = "{}"


class ToolResult(Message, frozen=True, kw_only=True):
    """The single output a call gets. ``output`` is JSON text."""

    call_id: str
    name: str
    output: str
    outcome: ToolOutcome = ToolOutcome.OK
