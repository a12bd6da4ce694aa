"""Each provider receives a tool's schema in its own dialect: references inlined where they
can be, Gemini's OpenAPI subset for Gemini. Table tests of the pure conversions, then each
translator's handshake checked for the schema it really sends."""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec
import pytest

from antiphon.actors import tool
from antiphon.adapters._schema import gemini_schema, json_schema
from antiphon.protocol import SessionState, ToolSpec


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0


class Node(msgspec.Struct):
    name: str
    children: list[Node] = []


def paint(
    color: Color,
    at: Point,
    level: Level = Level.LOW,
    note: str | None = None,
    count: Annotated[int, msgspec.Meta(ge=1)] = 1,
    mode: Literal["fast", "slow"] = "fast",
    pair: tuple[int, str] | None = None,
) -> None:
    """Paint a point.

    Args:
        color: Which colour.
    """


PAINT = tool(paint).spec


def _tree(root: Node) -> None: ...


TREE_SPEC = tool(_tree).spec


POINT = {
    "type": "object",
    "properties": {"x": {"type": "number"}, "y": {"type": "number", "default": 0.0}},
    "required": ["x"],
}

JSON_SCHEMA_PAINT = {
    "type": "object",
    "properties": {
        "color": {"description": "Which colour.", "enum": ["blue", "red"]},
        "at": POINT,
        "level": {"enum": [1, 2], "default": 1},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "count": {"type": "integer", "minimum": 1, "default": 1},
        "mode": {"enum": ["fast", "slow"], "default": "fast"},
        "pair": {
            "anyOf": [
                {
                    "type": "array",
                    "minItems": 2,
                    "maxItems": 2,
                    "items": False,
                    "prefixItems": [{"type": "integer"}, {"type": "string"}],
                },
                {"type": "null"},
            ],
            "default": None,
        },
    },
    "required": ["color", "at"],
}

GEMINI_PAINT = {
    "type": "object",
    "properties": {
        "color": {"description": "Which colour.", "enum": ["blue", "red"], "type": "string"},
        "at": POINT,
        "level": {"enum": ["1", "2"], "type": "string", "default": "1"},
        "note": {"type": "string", "default": None, "nullable": True},
        "count": {"type": "integer", "minimum": 1, "default": 1},
        "mode": {"enum": ["fast", "slow"], "type": "string", "default": "fast"},
        "pair": {
            "type": "array",
            "minItems": 2,
            "maxItems": 2,
            "items": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "default": None,
            "nullable": True,
        },
    },
    "required": ["color", "at"],
}

RECURSIVE = {
    "type": "object",
    "properties": {"root": {"$ref": "#/$defs/Node"}},
    "required": ["root"],
    "$defs": {
        "Node": {
            "title": "Node",
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}, "default": []},
            },
            "required": ["name"],
        }
    },
}

PLAIN = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.mark.parametrize(
    ("convert", "schema", "expected"),
    [
        (json_schema, PAINT.parameters, JSON_SCHEMA_PAINT),
        (gemini_schema, PAINT.parameters, GEMINI_PAINT),
        (json_schema, TREE_SPEC.parameters, RECURSIVE),  # no finite inline form: kept
        (gemini_schema, TREE_SPEC.parameters, RECURSIVE),  # sent as parametersJsonSchema
        (json_schema, PLAIN, PLAIN),
        (gemini_schema, PLAIN, PLAIN),
        (
            gemini_schema,
            {"type": "object", "properties": {"a": {"type": ["integer", "null"]}}},
            {"type": "object", "properties": {"a": {"type": "integer", "nullable": True}}},
        ),
        (
            gemini_schema,
            {"type": "object", "properties": {"k": {"const": "x", "exclusiveMinimum": 0}}},
            {
                "type": "object",
                "properties": {"k": {"enum": ["x"], "type": "string", "minimum": 0}},
            },
        ),
    ],
    ids=[
        "json-refs",
        "gemini-refs",
        "json-recursive",
        "gemini-recursive",
        "json-plain",
        "gemini-plain",
        "gemini-type-list",
        "gemini-const",
    ],
)
def test_dialect(
    convert: Callable[[dict[str, Any]], dict[str, Any]],
    schema: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    before = json.dumps(schema, sort_keys=True)
    assert convert(schema) == expected
    assert json.dumps(schema, sort_keys=True) == before, "the tool's own schema is kept"


def _no_refs(node: Any) -> bool:
    if isinstance(node, dict):
        return "$ref" not in node and "$defs" not in node and all(map(_no_refs, node.values()))
    if isinstance(node, list):
        return all(map(_no_refs, node))
    return True


def _find_tool_schema(node: Any) -> dict[str, Any] | None:
    """The schema sent for the tool named ``paint``, wherever a provider puts it."""
    if isinstance(node, dict):
        if node.get("name") == "paint":
            for key in ("parameters", "inputSchema"):
                if key in node:
                    value = node[key]
                    if key == "inputSchema":
                        value = json.loads(value["json"])
                    assert isinstance(value, dict)
                    return value
        for value in node.values():
            found = _find_tool_schema(value)
            if found is not None:
                return found
    elif isinstance(node, list):
        for value in node:
            found = _find_tool_schema(value)
            if found is not None:
                return found
    return None


def _translator(name: str) -> Any:
    import antiphon.providers as providers

    match name:
        case "gemini":
            pytest.importorskip("google.genai")
            return providers.GeminiLive(api_key="k").new_translator()
        case "nova":
            pytest.importorskip("smithy_aws_core")
            return providers.NovaSonic().new_translator()
        case "openai":
            return providers.OpenAIRealtime().new_translator()
        case "xai":
            return providers.XAIRealtime().new_translator()
        case _:
            return providers.Phonic().new_translator()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("openai", JSON_SCHEMA_PAINT),
        ("xai", JSON_SCHEMA_PAINT),
        ("phonic", JSON_SCHEMA_PAINT),
        ("nova", JSON_SCHEMA_PAINT),
        ("gemini", GEMINI_PAINT),
    ],
)
def test_each_translator_sends_its_dialect(name: str, expected: dict[str, Any]) -> None:
    frames = _translator(name).handshake(SessionState(tools=(PAINT,))).frames
    sent = [_find_tool_schema(json.loads(f)) for f in frames]
    schemas = [s for s in sent if s is not None]
    assert schemas == [expected]
    assert _no_refs(schemas[0])


def test_the_tool_spec_keeps_the_neutral_schema() -> None:
    assert "$defs" in PAINT.parameters
    assert isinstance(PAINT, ToolSpec)
