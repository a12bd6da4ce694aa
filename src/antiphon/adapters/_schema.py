"""Tool parameter schemas in each provider's dialect. Pure.

How this works: a tool's ``parameters`` is provider-neutral JSON Schema, as msgspec derives
it: named types (enums, dataclasses, Structs, TypedDicts) are ``$defs`` entries referenced by
``$ref``. Not every provider resolves references, so :func:`json_schema` inlines every
reference that can be inlined; only a recursive type (a tree node that holds nodes) keeps its
``$defs`` entry, since it has no finite inline form. OpenAI (and xAI), Phonic and Nova take
that JSON Schema. Gemini's function declarations take an OpenAPI 3.0 subset instead
(:func:`gemini_schema`): no ``$ref``, ``nullable`` instead of a ``null`` branch, ``enum`` of
strings only, and none of the keywords outside its ``Schema`` message; a schema that still
holds a reference after inlining is left as JSON Schema, which the Gemini connector sends as
``parametersJsonSchema``.
"""

from __future__ import annotations

from typing import Any

_REF_PREFIX = "#/$defs/"

# The keywords of Gemini's ``Schema`` message (google.ai.generativelanguage v1beta), in JSON
# Schema spelling. Anything else is dropped: the API refuses unknown fields.
_GEMINI_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)


def _recursive_defs(defs: dict[str, Any]) -> set[str]:
    """Names of ``$defs`` entries that reach themselves through references."""

    def refs(node: Any) -> set[str]:
        if isinstance(node, dict):
            found = set().union(*(refs(v) for v in node.values())) if node else set()
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
                found.add(ref[len(_REF_PREFIX) :])
            return found
        if isinstance(node, list):
            return set().union(*(refs(v) for v in node)) if node else set()
        return set()

    direct = {name: refs(body) for name, body in defs.items()}
    recursive: set[str] = set()
    for start in defs:
        seen: set[str] = set()
        stack = list(direct.get(start, ()))
        while stack:
            name = stack.pop()
            if name == start:
                recursive.add(start)
                break
            if name not in seen:
                seen.add(name)
                stack.extend(direct.get(name, ()))
    return recursive


def json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every non-recursive ``$ref`` inlined (a new dict; the input is kept).

    Sibling keywords of a ``$ref`` (a parameter's ``description``) are kept next to the
    inlined body and win over the body's own.
    """
    defs = schema.get("$defs")
    if not isinstance(defs, dict) or not defs:
        return schema
    keep = _recursive_defs(defs)

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
                name = ref[len(_REF_PREFIX) :]
                if name not in keep and name in defs:
                    siblings = {k: inline(v) for k, v in node.items() if k != "$ref"}
                    body = inline(defs[name])
                    body.pop("title", None)  # the type's name, not the parameter's
                    return {**body, **siblings}
            return {k: inline(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    out: dict[str, Any] = inline(schema)
    if keep:
        out["$defs"] = {name: inline(defs[name]) for name in sorted(keep)}
    return out


def gemini_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` in the OpenAPI subset Gemini's function declarations accept.

    A recursive schema keeps its references and comes back as :func:`json_schema` gives it
    (the connector sends it as ``parametersJsonSchema``).
    """
    inlined = json_schema(schema)
    if "$defs" in inlined:
        return inlined
    converted: dict[str, Any] = _openapi(inlined)
    return converted


def _openapi(node: Any) -> Any:
    if isinstance(node, list):
        return [_openapi(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "const" in node and "enum" not in node:
        node["enum"] = [node.pop("const")]
    for key in ("anyOf", "oneOf"):
        branches = node.pop(key, None)
        if isinstance(branches, list):
            others = [b for b in branches if b != {"type": "null"}]
            nullable = len(others) < len(branches)
            if len(others) == 1:
                node = {**others[0], **node}
            elif others:
                node["anyOf"] = others
            if nullable:
                node["nullable"] = True
    kind = node.get("type")
    if isinstance(kind, list):  # ["integer", "null"]
        kinds = [k for k in kind if k != "null"]
        if "null" in kind:
            node["nullable"] = True
        if len(kinds) == 1:
            node["type"] = kinds[0]
        else:
            del node["type"]
            node["anyOf"] = [{"type": k} for k in kinds]
    enum = node.get("enum")
    if isinstance(enum, list):
        # Gemini's enums are strings; a number enum becomes its text, described as such.
        if any(not isinstance(v, str) for v in enum):
            node["enum"] = [str(v) for v in enum if v is not None]
            if node.get("default") is not None:
                node["default"] = str(node["default"])
        node["type"] = "string"
    prefix = node.get("prefixItems")
    if isinstance(prefix, list) and prefix and not isinstance(node.get("items"), dict):
        # A tuple: Gemini has no positional items, so each item may be any of them.
        node["items"] = prefix[0] if len(prefix) == 1 else {"anyOf": prefix}
    if "exclusiveMinimum" in node and "minimum" not in node:
        node["minimum"] = node["exclusiveMinimum"]
    if "exclusiveMaximum" in node and "maximum" not in node:
        node["maximum"] = node["exclusiveMaximum"]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key not in _GEMINI_KEYS:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _openapi(sub) for name, sub in value.items()}
        elif key == "items":
            if isinstance(value, dict):  # not JSON Schema's `items: false` after prefixItems
                out[key] = _openapi(value)
        elif key == "anyOf":
            out[key] = _openapi(value)
        else:
            out[key] = value
    return out
