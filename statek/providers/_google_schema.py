"""JSON schema (as pydantic writes it) to the ``Schema`` object of Google's ``generateContent``.

One pure function, :func:`gemini_schema`, used for tool parameters (``functionDeclarations[].parameters``)
and structured output (``generationConfig.responseSchema``) on both the Gemini API (v1beta) and
Vertex AI (v1). Google's ``Schema`` is an OpenAPI 3.0 subset, and the live APIs are stricter than JSON
schema in three ways that matter for schemas built from Python signatures:

* ``enum`` is a list of *strings*, and the Gemini API allows it only on ``STRING`` nodes (HTTP 400
  "enum: only allowed for STRING type", "Invalid value at '...enum[0]' (TYPE_STRING), 1");
* every node needs a ``type`` unless it is an ``anyOf`` (HTTP 400 "type: must be specified when not
  using one_of, any_of or all_of fields");
* ``format`` is limited to ``date-time`` / ``enum`` on strings, ``int32`` / ``int64`` on integers and
  ``float`` / ``double`` on numbers (HTTP 400 "format: only 'enum' and 'date-time' are supported for
  STRING type" for pydantic's ``uri``, ``email``, ``date``, ``uuid``...);
* ``$ref``, ``const``, ``title``, ``default``, ``additionalProperties`` are not understood.

Decision: statek keeps sending ``parameters`` / ``responseSchema`` (the typed ``Schema`` both published
request schemas describe, accepted by every Gemini model on both endpoints) rather than the newer
``parametersJsonSchema`` / ``responseJsonSchema``, which both schemas declare as an opaque JSON value:
nothing published says which JSON-schema keywords Google honours there, so nothing could check what
statek sends. Non-string enums therefore keep their real ``type`` (``INTEGER``, ``NUMBER``,
``BOOLEAN``) and carry their allowed values in the ``description``: the model then answers with the
type the tool's signature declares (an ``int`` for ``Literal[1, 2, 3]``), where a string enum would
hand the tool ``"2"``. A node that admits any value (``Any``) becomes an ``anyOf`` of the scalar types.
Other formats move into the description too (``Format: uri.``), so the model still sees them.

Type names stay lower case as pydantic writes them; Google accepts them (a documented leniency).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..exceptions import ConfigurationError

__all__ = ["ANY_VALUE", "gemini_schema"]

_SCHEMA_KEYS = frozenset(
    {
        "description", "example", "format", "maxItems", "maxLength", "maxProperties", "maximum",
        "minItems", "minLength", "minProperties", "minimum", "nullable", "pattern", "propertyOrdering", "required",
    }
)  # fmt: skip
"""JSON-schema keywords Google's ``Schema`` accepts as they are (besides type/properties/items/anyOf/enum)."""

_FORMATS: Mapping[str, frozenset[str]] = {
    "string": frozenset({"date-time", "enum"}),
    "integer": frozenset({"int32", "int64"}),
    "number": frozenset({"float", "double"}),
}
"""The ``format`` values Google's ``Schema`` documents, per (lower-case) type."""

ANY_VALUE: tuple[Mapping[str, str], ...] = ({"type": "string"}, {"type": "number"}, {"type": "boolean"})
"""The ``anyOf`` branches standing for "any value": Google's ``Schema`` has no type for it."""


def gemini_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` (JSON schema, e.g. from pydantic) in the ``Schema`` subset Google accepts.

    ``$ref`` to ``$defs``/``definitions`` is inlined; ``anyOf``/``oneOf``/``allOf`` with ``null`` or a
    ``["x", "null"]`` type become ``nullable``; ``enum`` and ``const`` (a one-value enum) keep their
    string values as an ``enum`` of type ``string``, while other values keep their own type and are
    listed in the description (mixed kinds become an ``anyOf``); a ``format`` Google does not document
    for the node's type moves into the description; a node with no type becomes an ``anyOf`` of the
    scalar types; keywords Google does not know (``title``, ``default``, ``additionalProperties``,
    ``$schema``, ...) are dropped. Every node of the result has a ``type`` or an ``anyOf``, and every
    ``enum`` is a non-empty list of strings on a ``string`` node. Raises :class:`ConfigurationError`
    for recursive or unresolvable references.
    """
    definitions = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    return _convert(schema, definitions, ())


def _convert(
    node: Mapping[str, Any], definitions: Mapping[str, Any], seen: tuple[str, ...]
) -> dict[str, Any]:
    reference = node.get("$ref")
    if isinstance(reference, str):
        name = reference.rsplit("/", 1)[-1]
        if name in seen or name not in definitions:
            raise ConfigurationError(
                f"schema reference {reference!r} is recursive or unresolved: Gemini schemas cannot express it"
            )
        node = {**definitions[name], **{k: v for k, v in node.items() if k != "$ref"}}
        seen = (*seen, name)
    out: dict[str, Any] = {}
    # A one-element allOf is pydantic's way to attach a description to a $ref; longer ones have no
    # Google equivalent and are dropped.
    single_all_of = node.get("allOf") if len(node.get("allOf") or ()) == 1 else None
    variants = list(node.get("anyOf") or node.get("oneOf") or single_all_of or ())
    kind = node.get("type")
    if isinstance(kind, list):
        variants += [{"type": t} for t in kind]
        kind = None
    concrete = [v for v in variants if v.get("type") != "null"]
    if len(concrete) < len(variants):
        out["nullable"] = True
    if len(concrete) == 1:
        out.update(_convert(concrete[0], definitions, seen))
    elif concrete:
        out["anyOf"] = [_convert(v, definitions, seen) for v in concrete]
    if kind is not None:
        out["type"] = kind
    if isinstance(node.get("properties"), dict):
        out["properties"] = {k: _convert(v, definitions, seen) for k, v in node["properties"].items()}
    if isinstance(node.get("items"), dict):
        out["items"] = _convert(node["items"], definitions, seen)
    out.update({k: copy.deepcopy(v) for k, v in node.items() if k in _SCHEMA_KEYS})
    values = [node["const"]] if "const" in node else node.get("enum")
    if isinstance(values, list) and values:
        _restrict(out, values)
    if "type" not in out and "anyOf" not in out:
        out["anyOf"] = [dict(branch) for branch in ANY_VALUE]
    _check_format(out)
    return out


def _describe(out: dict[str, Any], text: str) -> None:
    """Append ``text`` to the node's description."""
    out["description"] = f"{out['description']} {text}" if out.get("description") else text


def _check_format(out: dict[str, Any]) -> None:
    fmt = out.get("format")
    if fmt is None:
        return
    allowed = _FORMATS.get(str(out.get("type", "")).lower(), frozenset())
    if fmt in allowed and (fmt != "enum" or out.get("enum")):
        return
    del out["format"]
    _describe(out, f"Format: {fmt}.")


def _json_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None  # null, arrays and objects cannot be listed in a Google enum


def _restrict(out: dict[str, Any], values: Sequence[Any]) -> None:
    """Limit ``out`` to ``values``: a string enum where Google allows one, else a described type."""
    if any(value is None for value in values):
        out["nullable"] = True
    groups: dict[str, list[Any]] = {}
    for value in values:
        kind = _json_type(value)
        if kind is not None:
            groups.setdefault(kind, []).append(value)
    branches = [_branch(kind, members, out.get("type")) for kind, members in groups.items()]
    if len(branches) == 1:
        branch = branches[0]
        out.pop("anyOf", None)
        out["type"] = branch.pop("type")
        if "description" in branch:
            _describe(out, branch.pop("description"))
        out.update(branch)
    elif branches:
        out.pop("type", None)
        out["anyOf"] = branches


def _branch(kind: str, members: list[Any], declared: Any) -> dict[str, Any]:
    if kind == "string":
        return {"type": "string", "enum": list(members)}
    # Keep a declared "number" for integer members (Literal[1, 2] under a float field).
    chosen = declared if declared in ("number", "integer") and kind != "boolean" else kind
    allowed = ", ".join(json.dumps(member) for member in members)
    return {"type": chosen, "description": f"One of: {allowed}."}
