"""Tools as plain Python callables: schema derivation and argument checking.

A tool is a sync or async function. Its JSON schema comes from the type hints and the
Google-style docstring (first paragraph = description, ``Args:`` = parameter descriptions),
or is given explicitly. Arguments from the model are parsed and converted with msgspec
against the hints, so a bad argument becomes a clear error result for the model instead of an
exception in the session.

A tool without a callable is *app-executed*: the app runs it (the LiveKit integration runs
its agent's tools itself). The session records each of its calls, does not run it, and waits
for the app's ``Session.submit_tool_result``.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..errors import ToolError
from ..protocol import ToolSpec

_JSON_TYPES: dict[type, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
}


def _schema_for(hint: Any) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[hint]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, tuple, set, frozenset) or hint in (list, tuple):
        item = _schema_for(args[0]) if args else {}
        return {"type": "array", "items": item} if item else {"type": "array"}
    if origin is dict or hint is dict:
        return {"type": "object"}
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _schema_for(non_none[0])
        return {"anyOf": [_schema_for(a) for a in non_none]}
    if hint is Any or hint is inspect.Parameter.empty:
        return {}
    raise ToolError(f"cannot derive a JSON schema for parameter type {hint!r}")


def _doc_parts(doc: str | None) -> tuple[str, dict[str, str]]:
    if not doc:
        return "", {}
    doc = inspect.cleandoc(doc)
    description = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    params: dict[str, str] = {}
    match = re.search(r"^Args:\s*\n((?:[ \t]+.*\n?)+)", doc, re.MULTILINE)
    if match:
        current = ""
        for line in match.group(1).splitlines():
            m = re.match(r"\s+(\w+)(?:\s*\([^)]*\))?:\s*(.*)", line)
            if m and (len(line) - len(line.lstrip())) <= 8:
                current = m.group(1)
                params[current] = m.group(2).strip()
            elif current:
                params[current] += " " + line.strip()
    return description, params


@dataclass(frozen=True, kw_only=True)
class Tool:
    """A tool the model may call: its spec and, unless the app runs it, its callable.

    Build one with :func:`tool`; ``open_session(tools=[...])`` also accepts plain callables.

    A tool without a callable, ``Tool(spec=ToolSpec(name=..., parameters=...))``, is
    *app-executed*: the session never runs its calls. The app sees each call as a
    ``ToolCallRequested`` event and answers it with ``Session.submit_tool_result(call_id,
    output)``; the runtime records that output and delivers it to the provider exactly once,
    also across reconnects and after ``resume_session``. The spec's ``timeout_s`` does not
    apply (the app decides how long its tool may take).
    """

    spec: ToolSpec
    fn: Callable[..., Any] | None = None
    hints: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def app_executed(self) -> bool:
        """The app runs this tool (it has no callable)."""
        return self.fn is None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def parse_arguments(self, arguments: str) -> dict[str, Any]:
        """Parse and check the model's JSON arguments.

        Raises:
            ToolError: not a JSON object, a missing required argument, or a wrong type.
        """
        try:
            raw = msgspec.json.decode(arguments.strip() or "{}")
        except msgspec.DecodeError as exc:
            raise ToolError(f"arguments are not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise ToolError(f"arguments must be a JSON object, got {type(raw).__name__}")
        if not self.hints or self.fn is None:  # explicit schema without hints: pass through
            return raw
        out: dict[str, Any] = {}
        sig = inspect.signature(self.fn)
        for pname, param in sig.parameters.items():
            if pname not in raw:
                if param.default is inspect.Parameter.empty:
                    raise ToolError(f"missing required argument {pname!r}")
                continue
            hint = self.hints.get(pname, Any)
            try:
                out[pname] = msgspec.convert(raw[pname], type=hint, strict=False)
            except (msgspec.ValidationError, TypeError) as exc:
                raise ToolError(f"argument {pname!r}: {exc}") from exc
        unknown = set(raw) - set(sig.parameters)
        if unknown and not any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()
        ):
            raise ToolError(f"unknown argument(s): {', '.join(sorted(unknown))}")
        return out

    async def call(self, arguments: dict[str, Any]) -> Any:
        """Run the tool's callable with parsed ``arguments``.

        Raises:
            ToolError: the tool is app-executed (it has no callable).
        """
        if self.fn is None:
            raise ToolError(f"tool {self.name!r} is executed by the app, not the session")
        result = self.fn(**arguments)
        if isinstance(result, Awaitable):
            result = await result
        return result


@typing.overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@typing.overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: dict[str, Any] | None = None,
    timeout_s: float = 30.0,
    idempotent: bool = True,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: dict[str, Any] | None = None,
    timeout_s: float = 30.0,
    idempotent: bool = True,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a :class:`Tool` from a function; usable as ``@tool`` or ``@tool(timeout_s=5)``.

    Args:
        fn: The function (sync or async).
        name: Name the model sees (default: the function's name).
        description: Default: the docstring's first paragraph.
        parameters: Explicit JSON schema (default: derived from the type hints).
        timeout_s: Per-call timeout; a call past it gets a timeout result.
        idempotent: False for tools with effects that must not happen twice; such a call whose
            outcome is unknown after a crash is not re-run.

    Raises:
        ToolError: a parameter type has no JSON schema equivalent.
    """

    def build(f: Callable[..., Any]) -> Tool:
        doc_description, doc_params = _doc_parts(f.__doc__)
        hints: dict[str, Any] = {}
        schema = parameters
        if schema is None:
            try:
                all_hints = typing.get_type_hints(f)
            except Exception as exc:
                raise ToolError(f"cannot read type hints of {f!r}: {exc}") from exc
            props: dict[str, Any] = {}
            required: list[str] = []
            for pname, param in inspect.signature(f).parameters.items():
                if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                    continue
                hint = all_hints.get(pname, Any)
                hints[pname] = hint
                prop = _schema_for(hint)
                if pname in doc_params:
                    prop["description"] = doc_params[pname]
                props[pname] = prop
                if param.default is inspect.Parameter.empty:
                    required.append(pname)
            schema = {"type": "object", "properties": props}
            if required:
                schema["required"] = required
        spec = ToolSpec(
            name=name or f.__name__,
            description=description if description is not None else doc_description,
            parameters=schema,
            timeout_s=timeout_s,
            idempotent=idempotent,
        )
        return Tool(spec=spec, fn=f, hints=hints)

    if fn is None:
        return build
    return build(fn)


def as_tool(obj: Tool | Callable[..., Any]) -> Tool:
    return obj if isinstance(obj, Tool) else tool(obj)


def encode_output(value: Any) -> str:
    """A tool's return value as the JSON text the model receives (a str is passed as is)."""
    if isinstance(value, str):
        return value
    try:
        return msgspec.json.encode(value).decode()
    except (TypeError, msgspec.EncodeError):
        return msgspec.json.encode(repr(value)).decode()


def error_output(outcome: str, message: str) -> str:
    return msgspec.json.encode({"error": message, "outcome": outcome}).decode()
