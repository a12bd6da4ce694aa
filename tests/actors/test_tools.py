"""Tools: schemas from hints and docstrings, argument checking, and the executor's promise of
exactly one output per call whatever the tool does."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from typing import Literal

import anyio
import pytest

from antiphon.actors import tool
from antiphon.actors.tool_executor import ToolExecutor, recover_calls
from antiphon.errors import ToolError
from antiphon.protocol import (
    Event,
    PendingToolCall,
    ToolCallFinished,
    ToolCallRequested,
    ToolCallStarted,
    ToolCallStatus,
    ToolOutcome,
)


def test_schema_from_hints_and_docstring() -> None:
    @tool(timeout_s=3, idempotent=False)
    def book(
        city: str,
        people: int,
        when: Literal["lunch", "dinner"] = "dinner",
        notes: list[str] | None = None,
    ) -> str:
        """Book a table.

        More details that are not the description.

        Args:
            city: Where.
            people: How many
                guests.
        """
        return "ok"

    spec = book.spec
    assert spec.name == "book"
    assert spec.description == "Book a table."
    assert (spec.timeout_s, spec.idempotent) == (3, False)
    assert spec.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "Where."},
            "people": {"type": "integer", "description": "How many guests."},
            "when": {"enum": ["dinner", "lunch"], "default": "dinner"},
            "notes": {
                "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                "default": None,
            },
        },
        "required": ["city", "people"],
    }


def test_explicit_schema_and_name() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}}
    t = tool(lambda **kw: kw, name="search", description="Search.", parameters=schema)
    assert (t.name, t.spec.parameters) == ("search", schema)
    assert t.parse_arguments('{"q": "x", "extra": 1}') == {"q": "x", "extra": 1}


def test_a_type_without_a_json_schema_is_refused() -> None:
    def f(x: threading.Lock) -> None: ...

    with pytest.raises(ToolError, match="cannot derive a JSON schema"):
        tool(f)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ("{}", "missing required field `city`"),
        ('{"city": "Paris", "people": "many"}', r"Expected `int`, got `str` - at `\$.people`"),
        ('{"city": "Paris", "people": 2, "pets": 1}', "unknown field `pets`"),
    ],
)
def test_bad_arguments_are_clear_errors(arguments: str, message: str) -> None:
    @tool
    def book(city: str, people: int = 1) -> str:
        return city

    with pytest.raises(ToolError, match=message):
        book.parse_arguments(arguments)


def test_arguments_are_converted_like_models_send_them() -> None:
    @tool
    def book(city: str, people: int = 1) -> str:
        return city

    # Models send whitespace-laden JSON, and sometimes numbers as strings.
    assert book.parse_arguments('{  \n "city": "Paris", "people": "2" \n} \n') == {
        "city": "Paris",
        "people": 2,
    }


class Recorded:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, events: Sequence[Event]) -> None:
        self.events.extend(events)

    def finished(self) -> list[ToolCallFinished]:
        return [e for e in self.events if isinstance(e, ToolCallFinished)]


async def run_calls(
    tools: list[object], calls: list[ToolCallRequested], *, cancel: list[str] | None = None
) -> Recorded:
    record = Recorded()
    built = [t if hasattr(t, "spec") else tool(t) for t in tools]  # type: ignore[arg-type]
    executor = ToolExecutor(tools={t.name: t for t in built}, record=record)  # type: ignore[attr-defined]
    expected = len({c.call_id for c in calls})
    async with anyio.create_task_group() as tg:
        await tg.start(executor.run)
        for call in calls:
            await executor.send(call)
        with anyio.fail_after(30):
            while len(record.finished()) < expected:
                started = {e.call_id for e in record.events if isinstance(e, ToolCallStarted)}
                if cancel and set(cancel) <= started:
                    executor.cancel(cancel, "withdrawn by the provider")
                    cancel = None
                await anyio.sleep(0.005)
        await anyio.sleep(0.05)  # a second output, if any, would show up now
        tg.cancel_scope.cancel()
    return record


def call(name: str, args: str = "{}", call_id: str = "c1") -> ToolCallRequested:
    return ToolCallRequested(call_id=call_id, name=name, arguments=args)


@pytest.mark.anyio
async def test_every_outcome_is_exactly_one_structured_result() -> None:
    @tool(timeout_s=0.05)
    async def slow() -> str:
        await anyio.sleep(10)
        return "never"

    async def fails() -> str:
        raise RuntimeError("backend down")

    def blocking(x: int) -> dict[str, int]:
        time.sleep(0.02)  # a sync tool runs in a worker thread
        return {"double": x * 2}

    async def hangs() -> str:
        await anyio.sleep_forever()
        return "never"

    record = await run_calls(
        [slow, fails, blocking, hangs],
        [
            call("slow", call_id="a"),
            call("fails", call_id="b"),
            call("blocking", '{"x": 21}', call_id="c"),
            call("missing", call_id="d"),
            call("blocking", '{"x": "y"}', call_id="e"),
            call("hangs", call_id="f"),
        ],
        cancel=["f"],
    )
    by_id = {f.call_id: f for f in record.finished()}
    assert sorted(by_id) == ["a", "b", "c", "d", "e", "f"]
    assert len(record.finished()) == 6, "exactly one output per call"
    outcomes = {k: (v.outcome, json.loads(v.output)) for k, v in by_id.items()}
    assert outcomes["a"][0] is ToolOutcome.TIMEOUT
    assert outcomes["b"] == (
        ToolOutcome.ERROR,
        {"error": "RuntimeError: backend down", "outcome": "error"},
    )
    assert outcomes["c"] == (ToolOutcome.OK, {"double": 42})
    assert outcomes["d"][0] is ToolOutcome.ERROR
    assert "unknown tool" in outcomes["d"][1]["error"]
    assert outcomes["e"][0] is ToolOutcome.ERROR
    assert "bad arguments" in outcomes["e"][1]["error"]
    assert outcomes["f"] == (
        ToolOutcome.CANCELLED,
        {"error": "withdrawn by the provider", "outcome": "cancelled"},
    )
    # Calls with bad arguments never start; the others are recorded as started first.
    started = {e.call_id for e in record.events if isinstance(e, ToolCallStarted)}
    assert started == {"a", "b", "c", "f"}


@pytest.mark.anyio
async def test_a_repeated_request_runs_once() -> None:
    runs: list[int] = []

    async def count() -> int:
        runs.append(1)
        return len(runs)

    record = await run_calls([count], [call("count"), call("count")])
    assert [f.output for f in record.finished()] == ["1"]
    assert runs == [1]


def test_recovery_after_a_crash() -> None:
    @tool(idempotent=False)
    def pay(amount: int) -> str:
        return "paid"

    @tool
    def lookup(q: str) -> str:
        return q

    pending = [
        PendingToolCall(call_id="1", name="pay", arguments="{}", status=ToolCallStatus.REQUESTED),
        PendingToolCall(call_id="2", name="pay", arguments="{}", status=ToolCallStatus.RUNNING),
        PendingToolCall(call_id="3", name="lookup", arguments="{}", status=ToolCallStatus.RUNNING),
        PendingToolCall(call_id="4", name="lookup", arguments="{}", status=ToolCallStatus.FINISHED),
    ]
    rerun, unknown = recover_calls(pending, {"pay": pay, "lookup": lookup})
    assert [c.call_id for c in rerun] == ["1", "3"]  # never started, or idempotent
    assert [(u.call_id, u.outcome) for u in unknown] == [("2", ToolOutcome.UNKNOWN)]
    assert "not run again" in json.loads(unknown[0].output)["error"]
