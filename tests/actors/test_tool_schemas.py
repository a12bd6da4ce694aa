"""Tool schemas and argument conversion, table-driven: for every kind of parameter type msgspec
covers (and pydantic models), the schema the model sees and the value the tool receives."""

from __future__ import annotations

import dataclasses
import enum
from typing import Annotated, Any, Literal, TypedDict

import msgspec
import pydantic
import pytest

from antiphon.actors import tool
from antiphon.errors import ToolError


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


class Address(TypedDict):
    street: str
    number: int


@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0


class Item(msgspec.Struct, frozen=True):
    sku: str
    quantity: int = 1


class Node(msgspec.Struct):
    name: str
    children: list[Node] = []


class Person(pydantic.BaseModel):
    name: str
    age: int


Positive = Annotated[int, msgspec.Meta(ge=1, le=10)]

# (parameter type, its schema, JSON argument, the value the tool receives)
CASES: list[tuple[str, Any, dict[str, Any], Any, Any]] = [
    ("str", str, {"type": "string"}, "a", "a"),
    ("int from a numeric string", int, {"type": "integer"}, "7", 7),
    ("float", float, {"type": "number"}, 1.5, 1.5),
    ("bool", bool, {"type": "boolean"}, True, True),
    ("Enum", Color, {"$ref": "#/$defs/Color"}, "red", Color.RED),
    ("IntEnum", Size, {"$ref": "#/$defs/Size"}, 2, Size.LARGE),
    ("Literal", Literal["a", "b"], {"enum": ["a", "b"]}, "b", "b"),
    (
        "TypedDict",
        Address,
        {"$ref": "#/$defs/Address"},
        {"street": "Main", "number": 3},
        {"street": "Main", "number": 3},
    ),
    ("dataclass", Point, {"$ref": "#/$defs/Point"}, {"x": 1}, Point(x=1.0)),
    ("Struct", Item, {"$ref": "#/$defs/Item"}, {"sku": "k"}, Item(sku="k")),
    (
        "recursive Struct",
        Node,
        {"$ref": "#/$defs/Node"},
        {"name": "a", "children": [{"name": "b"}]},
        Node(name="a", children=[Node(name="b")]),
    ),
    (
        "list of Structs",
        list[Item],
        {"type": "array", "items": {"$ref": "#/$defs/Item"}},
        [{"sku": "k", "quantity": 2}],
        [Item(sku="k", quantity=2)],
    ),
    (
        "dict",
        dict[str, int],
        {"type": "object", "additionalProperties": {"type": "integer"}},
        {"a": 1},
        {"a": 1},
    ),
    (
        "tuple",
        tuple[int, str],
        {
            "type": "array",
            "minItems": 2,
            "maxItems": 2,
            "items": False,
            "prefixItems": [{"type": "integer"}, {"type": "string"}],
        },
        [1, "a"],
        (1, "a"),
    ),
    ("Optional", int | None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}, None, None),
    ("union", int | str, {"anyOf": [{"type": "integer"}, {"type": "string"}]}, "x", "x"),
    ("Annotated constraint", Positive, {"type": "integer", "minimum": 1, "maximum": 10}, 3, 3),
    ("Any", Any, {}, {"free": ["form"]}, {"free": ["form"]}),
]


@pytest.mark.parametrize(
    ("hint", "schema", "argument", "received"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_each_type_has_a_schema_and_converts(
    hint: Any, schema: dict[str, Any], argument: Any, received: Any
) -> None:
    def f(value: Any) -> None: ...

    f.__annotations__["value"] = hint
    t = tool(f)
    assert t.spec.parameters["properties"]["value"] == schema
    assert t.spec.parameters["required"] == ["value"]
    assert t.parse_arguments(msgspec.json.encode({"value": argument}).decode()) == {
        "value": received
    }


def test_named_types_are_defined_once_at_the_top() -> None:
    def f(color: Color, items: list[Item], point: Point | None = None) -> None: ...

    params = tool(f).spec.parameters
    assert sorted(params["$defs"]) == ["Color", "Item", "Point"]
    assert params["$defs"]["Color"] == {"title": "Color", "enum": ["blue", "red"]}
    assert params["properties"]["point"] == {
        "anyOf": [{"$ref": "#/$defs/Point"}, {"type": "null"}],
        "default": None,
    }


def test_pydantic_models_work_without_being_a_dependency() -> None:
    def f(person: Person) -> None: ...

    t = tool(f)
    person = t.spec.parameters["properties"]["person"]
    assert person["properties"] == {
        "name": {"title": "Name", "type": "string"},
        "age": {"title": "Age", "type": "integer"},
    }
    assert t.parse_arguments('{"person": {"name": "Ann", "age": "40"}}') == {
        "person": Person(name="Ann", age=40)
    }
    with pytest.raises(ToolError, match="Person: age: Input should be a valid integer"):
        t.parse_arguments('{"person": {"name": "Ann", "age": "old"}}')


BAD: list[tuple[str, Any, str, str]] = [
    ("enum value", Color, '"green"', r"Invalid enum value 'green' - at `\$.value`"),
    ("nested field", Item, '{"sku": 5}', r"Expected `str`, got `int` - at `\$.value.sku`"),
    ("constraint", Positive, "11", r"Expected `int` <= 10 - at `\$.value`"),
    ("TypedDict key", Address, '{"street": "x"}', r"missing required field `number`"),
]


@pytest.mark.parametrize(
    ("hint", "argument", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_a_bad_argument_names_the_field_and_the_reason(
    hint: Any, argument: str, message: str
) -> None:
    def f(value: Any) -> None: ...

    f.__annotations__["value"] = hint
    with pytest.raises(ToolError, match=message):
        tool(f).parse_arguments('{"value": ' + argument + "}")


def google(city: str, days: int = 1) -> None:
    """Forecast for a city.

    Args:
        city: The city's name.
        days: How many days
            ahead.
    """


def numpy(city: str, days: int = 1) -> None:
    """Forecast for a city.

    Parameters
    ----------
    city : str
        The city's name.
    days : int
        How many days ahead.
    """


def rest(city: str, days: int = 1) -> None:
    """Forecast for a city.

    :param city: The city's name.
    :param days: How many days ahead.
    """


@pytest.mark.parametrize("fn", [google, numpy, rest], ids=["google", "numpy", "rest"])
def test_docstrings_of_each_style_describe_the_tool(fn: Any) -> None:
    spec = tool(fn).spec
    assert spec.description == "Forecast for a city."
    props = spec.parameters["properties"]
    assert props["city"] == {"type": "string", "description": "The city's name."}
    assert props["days"] == {
        "type": "integer",
        "description": "How many days ahead.",
        "default": 1,
    }


def test_a_default_json_cannot_show_is_applied_by_the_function() -> None:
    sentinel = object()

    def f(x: int | None = sentinel) -> object:  # type: ignore[assignment]
        return x

    t = tool(f)
    assert t.spec.parameters["properties"]["x"] == {
        "anyOf": [{"type": "integer"}, {"type": "null"}]
    }
    assert t.parse_arguments("{}") == {}
    assert t.parse_arguments('{"x": 2}') == {"x": 2}


def test_positional_only_and_keyword_arguments_are_passed_right() -> None:
    def f(a: int, /, b: int, **extra: Any) -> tuple[int, int, dict[str, Any]]:
        return a, b, extra

    t = tool(f)
    args = t.parse_arguments('{"a": 1, "b": 2, "c": 3}')
    assert t.invoke(args) == (1, 2, {"c": 3})
