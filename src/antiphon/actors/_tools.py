"""Tools as plain Python callables: schema derivation, argument conversion, result encoding.

A tool is a sync or async function. Its JSON schema comes from its signature through
msgspec (``msgspec.json.schema`` of a Struct whose fields are the parameters), so every type
msgspec knows works as a parameter: ``Enum``, ``Literal``, ``TypedDict``, dataclasses,
msgspec ``Struct``s, nested containers, ``Optional`` and unions, defaults, and constraints
(``Annotated[int, msgspec.Meta(ge=1)]``). Pydantic models work too when pydantic is
installed (it is not a dependency). Descriptions come from the docstring (Google, NumPy or
reST, read by ``docstring_parser``). The model's arguments are converted with
``msgspec.convert`` against the same Struct, so the tool receives real ``Enum`` members,
dataclass instances and so on; a bad argument is an error result that tells the model which
field is wrong and why, never an exception in the session.

The schema is provider-neutral JSON Schema (``$defs``/``$ref`` for named types); each
provider's translator turns it into the dialect that provider accepts
(:mod:`antiphon.adapters._schema`).

A tool without a callable is *app-executed*: the app runs it (the LiveKit integration runs
its agent's tools itself). The session records each of its calls, does not run it, and waits
for the app's ``Session.submit_tool_result``.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import docstring_parser
import msgspec

from ..errors import ToolError
from ..protocol import ToolSpec

MAX_OUTPUT_BYTES = 1 << 20
"""Largest tool output, as UTF-8 JSON text, that the model is sent: 1 MiB is already far
beyond a realtime model's context window (~128k tokens), and far below what a journal record
holds (64 MiB), so an oversized result is an error output rather than a journal failure."""

# How much of an exception's text an error output repeats: enough to say what went wrong,
# never enough to flood the model's context.
_MAX_MESSAGE_CHARS = 2000

_ARGS_NAME = "arguments"


def _is_pydantic_model(tp: Any) -> bool:
    # Duck-typed so pydantic stays optional: a pydantic v2 model class has both.
    return (
        isinstance(tp, type) and hasattr(tp, "model_json_schema") and hasattr(tp, "model_validate")
    )


def _schema_hook(tp: Any) -> dict[str, Any]:
    if _is_pydantic_model(tp):
        schema: dict[str, Any] = tp.model_json_schema(ref_template="#/$defs/{model}")
        return schema
    raise NotImplementedError  # msgspec's hook protocol: "no schema for this type"


def _dec_hook(tp: Any, obj: Any) -> Any:
    if _is_pydantic_model(tp):
        try:
            return tp.model_validate(obj)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise msgspec.ValidationError(f"{tp.__name__}: {_pydantic_errors(exc)}") from None
    raise NotImplementedError  # msgspec's hook protocol: "cannot convert to this type"


def _pydantic_errors(exc: ValueError) -> str:
    """Each of a pydantic ValidationError's errors as ``field.path: message``."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return _one_line(str(exc))
    return "; ".join(
        f"{'.'.join(str(part) for part in e.get('loc', ())) or '$'}: {e.get('msg', '')}"
        for e in errors()
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _hoist_defs(node: Any, defs: dict[str, Any]) -> Any:
    """Move ``$defs`` nested by pydantic schemas up to the top, where their refs point."""
    if isinstance(node, dict):
        inner = node.pop("$defs", None)
        if isinstance(inner, dict):
            for key, value in inner.items():
                defs.setdefault(key, _hoist_defs(value, defs))
        for key, value in node.items():
            node[key] = _hoist_defs(value, defs)
    elif isinstance(node, list):
        return [_hoist_defs(item, defs) for item in node]
    return node


def _doc_parts(doc: str | None) -> tuple[str, dict[str, str]]:
    if not doc:
        return "", {}
    try:
        parsed = docstring_parser.parse(doc)
    except docstring_parser.ParseError:
        # A docstring that looks like a style but is malformed still has a summary.
        return _one_line(inspect.cleandoc(doc).split("\n\n", 1)[0]), {}
    description = _one_line(parsed.short_description or "")
    params = {p.arg_name: _one_line(p.description or "") for p in parsed.params}
    return description, {k: v for k, v in params.items() if v}


class Progress:
    """A running tool's progress reporter. A tool that wants one declares a parameter typed
    ``antiphon.Progress`` (the model never sees it) and calls it, from a coroutine or from a
    sync tool's thread: ``progress("3 of 10 files", 0.3)``. Each report is journalled and
    reaches the app as a ``ToolCallProgress`` event.
    """

    def __init__(self, report: Callable[[object, object], None]) -> None:
        self._report = report

    def __call__(self, message: str = "", fraction: float | None = None) -> None:
        """Report progress: what is happening, and how much is done (``[0, 1]``)."""
        self._report(message, fraction)


_SKIPPED_KINDS = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _arguments_struct(
    fn: Callable[..., Any], doc_params: dict[str, str]
) -> tuple[type[msgspec.Struct], dict[str, Any], str | None]:
    """A Struct with one field per parameter of ``fn``, the JSON schema of its fields, and
    the name of the parameter that takes a :class:`Progress` (not the model's), if any.

    Raises:
        ToolError: the hints cannot be read, or a parameter type has no JSON schema.
    """
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # a NameError, or anything a broken annotation raises
        raise ToolError(f"cannot read type hints of {fn!r}: {exc}") from exc
    signature = inspect.signature(fn)
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    progress: str | None = None
    for pname, param in signature.parameters.items():
        if param.kind in _SKIPPED_KINDS:
            continue
        hint: Any = hints.get(pname, Any)
        if hint is Progress:
            progress = pname
            continue
        if pname in doc_params:
            hint = typing.Annotated[hint, msgspec.Meta(description=doc_params[pname])]
        if param.default is inspect.Parameter.empty:
            fields.append((pname, hint))
            continue
        try:
            msgspec.json.encode(param.default)
        except Exception:
            # A default JSON cannot show (a sentinel object): the schema omits it and the
            # function applies it itself.
            fields.append((pname, hint | msgspec.UnsetType, msgspec.UNSET))
        else:
            fields.append((pname, hint, param.default))
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    struct = msgspec.defstruct(
        _ARGS_NAME, fields, kw_only=True, forbid_unknown_fields=not open_ended
    )
    try:
        raw = msgspec.json.schema(struct, schema_hook=_schema_hook)
    except (TypeError, ValueError) as exc:
        raise ToolError(
            f"cannot derive a JSON schema for the parameters of {fn!r}: {exc}"
        ) from None
    defs: dict[str, Any] = raw.get("$defs", {})
    schema: dict[str, Any] = dict(defs.pop(_ARGS_NAME))
    schema.pop("title", None)
    schema.pop("additionalProperties", None)  # unknown arguments are refused on conversion
    schema = _hoist_defs(schema, defs)
    for key in list(defs):
        defs[key] = _hoist_defs(defs[key], defs)
    if defs:
        schema["$defs"] = defs
    return struct, schema, progress


def _too_deep(what: str) -> str:
    return f"{what} nested too deeply (or refers to itself)"


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

    Attributes:
        spec: What the model sees, and the call policies (timeout, idempotency, interruption,
            approval).
        fn: The callable, or None for an app-executed tool.
        arguments: The Struct the model's arguments are converted to (one field per
            parameter of ``fn``), or None to pass the decoded JSON object through as it is
            (an explicit ``parameters`` schema).
        progress_parameter: The parameter of ``fn`` that takes a :class:`Progress`, if any.
    """

    spec: ToolSpec
    fn: Callable[..., Any] | None = None
    arguments: type[msgspec.Struct] | None = None
    progress_parameter: str | None = None

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
        """Parse the model's JSON arguments and convert them to the parameters' types.

        Raises:
            ToolError: not a JSON object, nested too deeply, a missing required argument, an
                unknown one, or a value of the wrong type (the message names the field).
        """
        try:
            raw = msgspec.json.decode(arguments.strip() or "{}")
        except msgspec.DecodeError as exc:
            raise ToolError(f"arguments are not valid JSON: {exc}") from None
        except RecursionError:
            raise ToolError(_too_deep("arguments are")) from None
        if not isinstance(raw, dict):
            raise ToolError(f"arguments must be a JSON object, got {type(raw).__name__}")
        struct = self.arguments
        if struct is None or self.fn is None:  # explicit schema: pass the object through
            return raw
        try:
            converted = msgspec.convert(raw, type=struct, strict=False, dec_hook=_dec_hook)
        except msgspec.ValidationError as exc:
            raise ToolError(str(exc)) from None
        except RecursionError:
            raise ToolError(_too_deep("arguments are")) from None
        out = {
            name: value
            for name in struct.__struct_fields__
            if (value := getattr(converted, name)) is not msgspec.UNSET
        }
        # Extra keys reach here only for a function with **kwargs (else they are refused).
        out.update((k, v) for k, v in raw.items() if k not in struct.__struct_fields__)
        return out

    def invoke(self, arguments: dict[str, Any]) -> Any:
        """Call the callable with parsed ``arguments``; an async tool returns its awaitable.

        Raises:
            ToolError: the tool is app-executed (it has no callable).
        """
        fn = self.fn
        if fn is None:
            raise ToolError(f"tool {self.name!r} is executed by the app, not the session")
        kwargs = dict(arguments)
        positional = [
            kwargs.pop(p.name)
            for p in inspect.signature(fn).parameters.values()
            if p.kind is inspect.Parameter.POSITIONAL_ONLY and p.name in kwargs
        ]
        return fn(*positional, **kwargs)

    async def call(self, arguments: dict[str, Any]) -> Any:
        """Run the tool's callable with parsed ``arguments``.

        Raises:
            ToolError: the tool is app-executed (it has no callable).
        """
        result = self.invoke(arguments)
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
    cancel_on_interruption: bool = True,
    requires_approval: bool = False,
    approval_timeout_s: float = 300.0,
    long_running: bool = False,
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
    cancel_on_interruption: bool = True,
    requires_approval: bool = False,
    approval_timeout_s: float = 300.0,
    long_running: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a :class:`Tool` from a function; usable as ``@tool`` or ``@tool(timeout_s=5)``.

    Args:
        fn: The function (sync or async). Any parameter type msgspec can describe works
            (``Enum``, ``Literal``, ``TypedDict``, dataclasses, ``Struct``s, unions,
            ``Annotated`` constraints), and pydantic models when pydantic is installed.
        name: Name the model sees (default: the function's name).
        description: Default: the docstring's summary (Google, NumPy or reST docstrings;
            their parameter sections describe the parameters).
        parameters: Explicit JSON schema (default: derived from the signature); the model's
            arguments then reach the function as decoded JSON.
        timeout_s: Per-call timeout; a call past it gets a timeout result.
        idempotent: False for tools with effects that must not happen twice; such a call whose
            outcome is unknown after a crash is not re-run.
        cancel_on_interruption: Whether a call still running when the provider withdraws it
            (a barge-in) is cancelled. False for a tool with effects that should finish
            anyway; either way the call gets exactly one output.
        requires_approval: The call waits for ``Session.approve(call_id)`` or
            ``Session.deny(call_id, reason)`` before it runs.
        approval_timeout_s: How long a call waits for approval before it is denied.
        long_running: The model is told at once that the tool is running (that is the
            call's one output) and carries on; the result follows as a message when it is
            ready, at the end of the reply in progress if there is one. ``timeout_s`` still
            bounds the whole run.

    Raises:
        ToolError: a parameter type has no JSON schema equivalent, or ``approval_timeout_s``
            is not a positive number.
    """

    approval_timeout: object = approval_timeout_s  # typed float; a caller may pass anything
    if (
        isinstance(approval_timeout, bool)
        or not isinstance(approval_timeout, int | float)
        or not 0 < approval_timeout < float("inf")
    ):
        raise ToolError(f"approval_timeout_s must be a positive number, got {approval_timeout!r}")

    def build(f: Callable[..., Any]) -> Tool:
        doc_description, doc_params = _doc_parts(f.__doc__)
        struct: type[msgspec.Struct] | None = None
        progress: str | None = None
        schema = parameters
        if schema is None:
            struct, schema, progress = _arguments_struct(f, doc_params)
        spec = ToolSpec(
            name=name or f.__name__,
            description=description if description is not None else doc_description,
            parameters=schema,
            timeout_s=timeout_s,
            idempotent=idempotent,
            cancel_on_interruption=cancel_on_interruption,
            requires_approval=requires_approval,
            approval_timeout_s=approval_timeout_s,
            long_running=long_running,
        )
        return Tool(spec=spec, fn=f, arguments=struct, progress_parameter=progress)

    if fn is None:
        return build
    return build(fn)


@typing.runtime_checkable
class ToolSource(typing.Protocol):
    """Something that supplies tools while it is open, such as an MCP server
    (:class:`antiphon.mcp.Server`). Give it in ``open_session(tools=[...])``: the session
    opens it before it connects, adds its tools, and closes it when the session ends."""

    def open_tools(self) -> AbstractAsyncContextManager[Sequence[Tool]]:
        """Open the source; the context's value is its tools."""
        ...


def split_tool_sources(tools: object) -> tuple[list[ToolSource], object]:
    """Separate tool sources from tools and callables. Anything that is not a plain
    iterable is returned as it is, for the caller's argument check to refuse."""
    if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Iterable):
        return [], tools
    items = list(tools)
    sources = [t for t in items if isinstance(t, ToolSource) and not isinstance(t, Tool)]
    return sources, [t for t in items if not any(t is s for s in sources)]


def as_tool(obj: Tool | Callable[..., Any]) -> Tool:
    return obj if isinstance(obj, Tool) else tool(obj)


def _surrogate_error(text: str, exc: UnicodeEncodeError, what: str) -> ToolError:
    return ToolError(
        f"{what} holds a lone surrogate {text[exc.start]!r} at index {exc.start} (a non-UTF-8 "
        "file name?); it cannot be sent as UTF-8 — decode it with errors='replace' first"
    )


def encode_output(value: Any) -> str:
    """A tool's return value as the JSON text the model receives (a str is passed as is).

    Raises:
        ToolError: the value cannot be sent: not encodable as JSON, nested too deeply or
            self-referential, holding lone surrogates, or larger than
            :data:`MAX_OUTPUT_BYTES`. The message says which.
    """
    if isinstance(value, str):
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise _surrogate_error(value, exc, "the result") from None
        text = value
    else:
        try:
            data = msgspec.json.encode(value)
        except RecursionError:
            raise ToolError(_too_deep("the result is")) from None
        except UnicodeEncodeError:
            raise ToolError(
                "the result holds a lone surrogate (a non-UTF-8 file name?); it cannot be "
                "sent as UTF-8 — decode it with errors='replace' first"
            ) from None
        except Exception as exc:  # an object's own hooks may raise anything
            raise ToolError(f"the result cannot be encoded as JSON: {describe(exc)}") from None
        size = len(data)
        text = data.decode()
    if size > MAX_OUTPUT_BYTES:
        raise ToolError(f"the result is too large: {size} bytes, at most {MAX_OUTPUT_BYTES}")
    return text


def safe_text(text: str) -> str:
    """``text`` shortened for an error output, lone surrogates escaped so UTF-8 holds it."""
    if len(text) > _MAX_MESSAGE_CHARS:
        text = text[:_MAX_MESSAGE_CHARS] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def describe(exc: BaseException) -> str:
    """``"Type: message"`` of an exception, even one whose ``__str__`` raises."""
    try:
        message = str(exc)
    except Exception:
        message = "<the exception's message could not be read>"
    return safe_text(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


def error_output(outcome: str, message: str) -> str:
    """The JSON text of an error output: ``{"error": message, "outcome": outcome}``."""
    return msgspec.json.encode({"error": safe_text(message), "outcome": outcome}).decode()
