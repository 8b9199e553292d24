"""Every request body statek builds is valid under the receiving provider's own published request schema.

Bodies come from the public API only (``LLM_API.get(...).preview_request(...)``, the exact body
``process_request`` sends) for every catalogue provider, Anthropic, the Gemini API and Vertex AI, over
every request feature statek supports. Schemas are in ``tests/schemas/`` with their provenance
(``PROVENANCE.md``): OpenAI's OpenAPI request schema for every OpenAI-compatible provider, plus
Mistral's and OpenRouter's own for those two (no other catalogue provider publishes a machine-readable
request schema); the Anthropic SDK's request types; the Gemini API v1beta protos; Vertex AI's v1
discovery document.

Google's front end is more lenient than its published schemas in exactly two documented ways, and
these two are allowed here, by widening the ``Schema`` definition and nothing else: lower-case type
names (``"string"``), and a ``Schema`` node with ``anyOf`` and no ``type``.
"""

from __future__ import annotations

import copy
import datetime
import enum
import inspect
import json
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal, Optional

import jsonschema
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_schema_validator import OAS31Validator

from statek import LLM_API, add_provider
from statek.chat import ChatHistoryItem
from statek.llm_api import CallParams
from statek.providers.catalog import CATALOG
from statek.providers.registry import _unregister
from statek.providers.vertex import gemini_schema

SCHEMAS = Path(__file__).parent / "schemas"
GOOGLE_TYPES = ("TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL")
MODEL = "some-model"


# ----------------------------------------------------------------------------- validators
def _load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return document


def _openapi(name: str, component: str) -> jsonschema.protocols.Validator:
    document = _load(name)
    return OAS31Validator({**document, "$ref": f"#/components/schemas/{component}"})


def _with_google_leniencies(document: dict[str, Any], schema_def: str) -> dict[str, Any]:
    """``document`` with its ``Schema`` definition widened by Google's two documented leniencies."""
    widened = copy.deepcopy(document)
    node = widened["$defs"][schema_def]
    type_choices = node["properties"]["type"]["anyOf"][0]["anyOf"]
    assert type_choices[0]["enum"] == list(GOOGLE_TYPES)  # the schema still has the shape widened here
    type_choices.append({"type": "string", "enum": [t.lower() for t in GOOGLE_TYPES]})
    if node.get("required") == ["type"]:  # v1beta: type is REQUIRED; the live API waives it for anyOf
        del node["required"]
        node["anyOf"] = [{"required": ["type"]}, {"required": ["anyOf"]}]
    return widened


@cache
def validators(name: str) -> jsonschema.protocols.Validator:
    if name == "openai":
        return _openapi("openai-chat-completions.openapi.json", "CreateChatCompletionRequest")
    if name == "mistral":
        return _openapi("mistral-chat-completions.openapi.json", "ChatCompletionRequest")
    if name == "openrouter":
        return _openapi("openrouter-chat-completions.openapi.json", "ChatRequest")
    if name == "anthropic":
        return jsonschema.Draft202012Validator(_load("anthropic-messages.schema.json"))
    if name == "gemini":
        document = _load("gemini-v1beta-generate-content.schema.json")
        widened = _with_google_leniencies(document, "google.ai.generativelanguage.v1beta.Schema")
        return jsonschema.Draft202012Validator(widened)
    if name == "vertex":
        document = _load("vertex-v1-generate-content.schema.json")
        return jsonschema.Draft202012Validator(
            _with_google_leniencies(document, "GoogleCloudAiplatformV1Schema")
        )
    raise KeyError(name)


def assert_valid(schema: str, body: Mapping[str, Any]) -> None:
    errors = sorted(validators(schema).iter_errors(body), key=lambda e: list(e.absolute_path))
    assert not errors, f"{schema} schema rejects the body:\n" + "\n".join(
        f"  at {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}" for e in errors[:10]
    )


# ----------------------------------------------------------------------------- providers
class Target:
    """One provider as a user would configure it, and the schemas its bodies must satisfy."""

    def __init__(self, name: str, key: str, schemas: tuple[str, ...], **options: Any) -> None:
        self.name, self.key, self.schemas, self.options = name, key, schemas, options

    def api(self, **options: Any) -> LLM_API:
        return LLM_API.get(self.key, MODEL, api_key="test-key", **{**self.options, **options})

    def __repr__(self) -> str:
        return self.name


def _catalogue_target(row: Any) -> Target:
    schemas = ("openai", *({"MISTRAL": ("mistral",), "OPENROUTER": ("openrouter",)}.get(row.key, ())))
    url = {} if row.default_api_url else {"api_url": "https://example.invalid/v1/chat/completions"}
    return Target(row.key, row.key, schemas, **url)


CUSTOM = "SCHEMA_TEST_CUSTOM"
"""A provider registered with ``add_provider`` and no implementation: the OpenAI-compatible default."""

TARGETS = (
    *(_catalogue_target(row) for row in CATALOG),
    Target(CUSTOM, CUSTOM, ("openai",)),
    Target("ANTHROPIC", "ANTHROPIC", ("anthropic",)),
    Target("GEMINI_API", "VERTEXAI", ("gemini",)),
    Target("VERTEX_AI", "VERTEXAI", ("vertex",), project="test-project", location="europe-west4"),
)


@pytest.fixture(autouse=True, scope="module")
def _custom_provider() -> Iterator[None]:
    add_provider(CUSTOM, api_url="http://127.0.0.1:9/v1/chat/completions")
    yield
    _unregister(CUSTOM)


def test_every_catalogue_provider_is_covered() -> None:
    assert {t.key for t in TARGETS} >= {row.key for row in CATALOG} | {"ANTHROPIC", "VERTEXAI"}
    assert "generativelanguage" in TARGETS[-2].api().api_url
    assert "aiplatform" in TARGETS[-1].api().api_url


# ----------------------------------------------------------------------------- tools
class Colour(str, enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(pydantic.BaseModel):
    street: str
    city: Optional[str] = None  # noqa: UP045 - the Optional spelling is what users write
    floor: Literal[1, 2, 3] = 1


class Parcel(pydantic.BaseModel):
    to: Address
    items: list[Address] = []
    colour: Colour = Colour.RED


def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Current weather.

    Args:
        city: City name.
        unit: Temperature unit.
    """
    return ""


def ship(
    parcel: Parcel,
    priority: Literal[1, 2, 3],
    express: Literal[True],
    mode: Literal["air", 2],
    weight: float | None = None,
    tags: list[str] | None = None,
    note=None,  # unannotated with a None default: typed Any
    copies=2,  # unannotated: typed from its default (int)
    extra: Any = None,
    anything: list[Any] | None = None,
    website: pydantic.AnyUrl | None = None,
    day: datetime.date | None = None,
    at: datetime.datetime | None = None,
) -> str:
    """Ship a parcel."""
    return ""


def ping() -> str:
    """No arguments at all."""
    return "pong"


TOOLS: tuple[Callable[..., Any], ...] = (get_weather, ship, ping)


# ----------------------------------------------------------------------------- features
CALL = CallParams(call_id="call_1", name="get_weather", kwargs={"city": "Paris"})
CALL_2 = CallParams(
    call_id="call_2", name="ship", kwargs={"parcel": {"to": {"street": "Main"}}, "priority": 2}
)
HISTORY = (
    ChatHistoryItem.user("What is the weather in Paris, and ship my parcel?"),
    ChatHistoryItem.assistant("Let me check.", [CALL, CALL_2]),
    ChatHistoryItem.tool_result(CALL, {"celsius": 21}),
    ChatHistoryItem.tool_result(CALL_2, "shipped"),
    ChatHistoryItem.assistant("It is 21 C; shipped."),
    ChatHistoryItem.user("Thanks. And tomorrow?"),
)
HELLO = (ChatHistoryItem.user("Hello"),)
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "rating": {"enum": [1, 2, 3]},
        "sunny": {"const": True},
        "extra": {},
    },
    "required": ["city"],
    "additionalProperties": False,
}


def _features() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, LLM_API.get options, preview_request arguments) for each request feature."""
    yield "plain chat", {}, {"chat_history": HELLO}
    yield (
        "system prompt",
        {},
        {
            "system_prompt": "Be brief.",
            "chat_history": (ChatHistoryItem("system", "Answer in French."), *HELLO),
        },
    )
    yield "tool history", {}, {"chat_history": HISTORY, "available_tools": TOOLS}
    yield "plain style", {}, {"chat_history": HISTORY, "available_tools": TOOLS, "chat_style": "plain"}
    yield "tools", {}, {"chat_history": HELLO, "available_tools": TOOLS}
    yield (
        "tool scope",
        {},
        {
            "chat_history": HELLO,
            "available_tools": TOOLS,
            "metadata": {"LLM_TOOLS_SCOPE": "APPLICATION-ship"},
        },
    )
    yield "temperature", {}, {"chat_history": HELLO, "temperature": 0.3}
    yield "temperature metadata", {}, {"chat_history": HELLO, "metadata": {"TEMPERATURE": "0.7"}}
    yield "max tokens", {}, {"chat_history": HELLO, "metadata": {"MAX_TOKENS": 300}}
    yield "reasoning", {}, {"chat_history": HELLO, "enable_reasoning": True}
    yield "reasoning metadata", {}, {"chat_history": HELLO, "metadata": {"ENABLE_REASONING": "yes"}}
    for effort in ("low", "medium", "high"):
        yield f"effort {effort}", {}, {"chat_history": HELLO, "metadata": {"REASONING_EFFORT": effort}}
    yield "reasoning budget", {}, {"chat_history": HELLO, "metadata": {"REASONING_BUDGET_TOKENS": 2000}}
    yield (
        "reasoning + max tokens",
        {},
        {
            "chat_history": HISTORY,
            "available_tools": TOOLS,
            "temperature": 0.5,
            "metadata": {"REASONING_BUDGET_TOKENS": 1500, "MAX_TOKENS": 4000},
        },
    )
    yield "response format (bare schema)", {"response_format_file": "bare"}, {"chat_history": HELLO}
    yield "response format (OpenAI object)", {"response_format_file": "openai"}, {"chat_history": HELLO}
    yield (
        "prompt caching",
        {"use_prompt_caching": True},
        {"system_prompt": "Long stable prefix.", "chat_history": HISTORY, "available_tools": TOOLS},
    )
    yield "streaming", {"stream": True}, {"chat_history": HISTORY, "available_tools": TOOLS}
    yield (
        "everything",
        {"stream": True, "use_prompt_caching": True, "response_format_file": "bare"},
        {
            "system_prompt": "Be brief.",
            "chat_history": HISTORY,
            "available_tools": TOOLS,
            "temperature": 0.2,
            "metadata": {"REASONING_EFFORT": "high", "MAX_TOKENS": 30000},
        },
    )


FEATURES = list(_features())


@pytest.fixture(scope="module")
def format_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("formats")
    bare, wrapped = folder / "answer.json", folder / "answer_openai.json"
    bare.write_text(json.dumps(ANSWER_SCHEMA))
    wrapped.write_text(json.dumps({"name": "answer", "schema": ANSWER_SCHEMA, "strict": False}))
    return {"bare": str(bare), "openai": str(wrapped)}


def offering_tools(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """``arguments`` with ``LLM_TOOLS_SCOPE=ALL`` added when tools are given (no scope offers none)."""
    if "available_tools" not in arguments:
        return dict(arguments)
    return {**arguments, "metadata": {"LLM_TOOLS_SCOPE": "ALL", **arguments.get("metadata", {})}}


def build(
    target: Target, options: Mapping[str, Any], arguments: Mapping[str, Any], files: Mapping[str, str]
) -> dict[str, Any]:
    options = dict(options)
    if "response_format_file" in options:
        options["response_format_file"] = files[options["response_format_file"]]
    return target.api(**options).preview_request(**offering_tools(arguments))


@pytest.mark.parametrize("target", TARGETS, ids=repr)
@pytest.mark.parametrize(("feature", "options", "arguments"), FEATURES, ids=[f[0] for f in FEATURES])
def test_body_is_valid_for_the_provider(
    target: Target,
    feature: str,
    options: dict[str, Any],
    arguments: dict[str, Any],
    format_files: dict[str, str],
) -> None:
    body = build(target, options, arguments, format_files)
    if "available_tools" in arguments and arguments.get("chat_style") != "plain":
        assert body["tools"], "tools were offered but the body has none: the check would be vacuous"
    for schema in target.schemas:
        assert_valid(schema, body)


@pytest.mark.parametrize("target", [t for t in TARGETS if "openai" in t.schemas], ids=repr)
def test_payload_fields_given_to_get_are_valid(target: Target) -> None:
    """OpenAI-compatible providers send extra ``LLM_API.get`` keywords as payload fields (original STATEK)."""
    body = target.api(top_p=0.9, stream=True).preview_request(chat_history=HELLO)
    assert body["top_p"] == 0.9
    for schema in target.schemas:
        assert_valid(schema, body)


# ----------------------------------------------------------------------------- the fixed problems
def _google_bodies() -> Iterator[tuple[str, dict[str, Any]]]:
    for target in TARGETS[-2:]:
        yield (
            target.schemas[0],
            target.api().preview_request(**offering_tools({"chat_history": HELLO, "available_tools": TOOLS})),
        )


def _ship_parameters(body: Mapping[str, Any]) -> dict[str, Any]:
    declarations = body["tools"][0]["functionDeclarations"]
    return next(d["parameters"] for d in declarations if d["name"] == "ship")


@pytest.mark.parametrize(("schema", "body"), list(_google_bodies()), ids=["gemini", "vertex"])
def test_google_non_string_enums_keep_their_type_and_list_values_in_the_description(
    schema: str, body: dict[str, Any]
) -> None:
    properties = _ship_parameters(body)["properties"]
    assert properties["priority"] == {"type": "integer", "description": "One of: 1, 2, 3."}
    assert properties["express"] == {"type": "boolean", "description": "One of: true."}
    assert properties["mode"]["anyOf"] == [
        {"type": "string", "enum": ["air"]},
        {"type": "integer", "description": "One of: 2."},
    ]
    floor = properties["parcel"]["properties"]["to"]["properties"]["floor"]
    assert floor == {"type": "integer", "description": "One of: 1, 2, 3."}
    colour = properties["parcel"]["properties"]["colour"]
    assert colour == {"type": "string", "enum": ["red", "green"]}
    assert_valid(schema, body)


@pytest.mark.parametrize(("schema", "body"), list(_google_bodies()), ids=["gemini", "vertex"])
def test_google_any_argument_gets_a_type(schema: str, body: dict[str, Any]) -> None:
    properties = _ship_parameters(body)["properties"]
    scalars = [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]
    assert properties["note"] == {"anyOf": scalars}
    assert properties["extra"] == {"anyOf": scalars}
    assert properties["anything"] == {"nullable": True, "type": "array", "items": {"anyOf": scalars}}
    assert properties["copies"] == {"type": "integer"}  # unannotated, typed from its default


def test_google_response_schema_has_string_enums_only(format_files: dict[str, str]) -> None:
    for target in TARGETS[-2:]:
        body = target.api(response_format_file=format_files["bare"]).preview_request(chat_history=HELLO)
        properties = body["generationConfig"]["responseSchema"]["properties"]
        assert properties["rating"] == {"type": "integer", "description": "One of: 1, 2, 3."}
        assert properties["sunny"] == {"type": "boolean", "description": "One of: true."}
        assert_valid(target.schemas[0], body)


def test_google_enum_fixes_are_what_the_unpatched_schema_checks() -> None:
    """The leniencies do not hide the two fixed faults: the published schemas alone reject them."""
    strict = jsonschema.Draft202012Validator(_load("gemini-v1beta-generate-content.schema.json"))
    declaration = {
        "name": "f",
        "description": "f",
        "parameters": {"type": "OBJECT", "properties": {"n": {"type": "INTEGER", "enum": [1, 2]}}},
    }
    assert not strict.is_valid({"contents": [], "tools": [{"functionDeclarations": [declaration]}]})
    declaration["parameters"]["properties"]["n"] = {"description": "any"}
    assert not strict.is_valid({"contents": [], "tools": [{"functionDeclarations": [declaration]}]})
    declaration["parameters"]["properties"]["n"] = {"type": "INTEGER", "description": "One of: 1, 2."}
    assert strict.is_valid({"contents": [], "tools": [{"functionDeclarations": [declaration]}]})


@pytest.mark.parametrize("effort", [None, "low", "high"])
def test_mistral_reasoning_is_sent_as_reasoning_effort(effort: str | None) -> None:
    metadata = {"REASONING_EFFORT": effort} if effort else None
    body = LLM_API.get("MISTRAL", "magistral-medium-latest", api_key="k").preview_request(
        chat_history=HELLO, enable_reasoning=True, metadata=metadata
    )
    assert body["reasoning_effort"] == (effort or "medium")
    assert_valid("mistral", body)
    assert_valid("openai", body)
    plain = LLM_API.get("MISTRAL", "mistral-small-latest", api_key="k").preview_request(chat_history=HELLO)
    assert "reasoning_effort" not in plain


GOOGLE_FORMATS = {
    "string": {"date-time", "enum"},
    "integer": {"int32", "int64"},
    "number": {"float", "double"},
}
"""The formats Google's ``Schema`` reference documents per type (the published schemas say only "a string")."""


def schema_nodes(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """``node`` and every ``Schema`` below it."""
    yield node
    for child in (*node.get("properties", {}).values(), *node.get("anyOf", ())):
        yield from schema_nodes(child)
    if "items" in node:
        yield from schema_nodes(node["items"])


def assert_google_live_rules(node: Mapping[str, Any]) -> None:
    """The rules the live Gemini API enforces beyond its published schema (each one a documented 400)."""
    assert "type" in node or "anyOf" in node, node  # "type: must be specified when not using ... any_of"
    if "enum" in node:  # "enum: only allowed for STRING type"
        assert node["type"] == "string" and node["enum"], node
    if "format" in node:  # "format: only 'enum' and 'date-time' are supported for STRING type"
        assert node["format"] in GOOGLE_FORMATS.get(node.get("type", ""), set()), node


@pytest.mark.parametrize(("schema", "body"), list(_google_bodies()), ids=["gemini", "vertex"])
def test_google_formats_are_the_documented_ones(schema: str, body: dict[str, Any]) -> None:
    parameters = _ship_parameters(body)
    properties = parameters["properties"]
    assert properties["at"] == {"nullable": True, "type": "string", "format": "date-time"}
    assert properties["day"] == {"nullable": True, "type": "string", "description": "Format: date."}
    assert properties["website"]["description"] == "Format: uri."
    assert "format" not in properties["website"]
    for node in schema_nodes(parameters):
        assert_google_live_rules(node)


# ----------------------------------------------------------------------------- generated signatures
_SCALARS = st.sampled_from(
    [str, int, float, bool, Colour, Address, Parcel, Any, pydantic.AnyUrl, datetime.date, datetime.datetime]
)
_LITERAL_VALUES = st.one_of(st.integers(-5, 5), st.booleans(), st.text("abcxyz", min_size=1, max_size=4))


def _annotations() -> st.SearchStrategy[Any]:
    literals = st.lists(_LITERAL_VALUES, min_size=1, max_size=4, unique_by=lambda v: (type(v), v)).map(
        lambda values: Literal[tuple(values)]  # type: ignore[misc]
    )
    base = st.one_of(_SCALARS, literals)
    return st.recursive(
        base,
        lambda inner: st.one_of(inner.map(lambda t: Optional[t]), inner.map(lambda t: list[t])),  # noqa: UP045
        max_leaves=3,
    )


@st.composite
def tool_functions(draw: st.DrawFn) -> Callable[..., Any]:
    names = draw(st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=5, unique=True))
    parameters, annotations = [], {}
    for name in names:
        style = draw(st.sampled_from(["annotated", "optional", "untyped default"]))
        if style == "untyped default":
            default = draw(
                st.one_of(
                    st.none(), st.integers(), st.floats(allow_nan=False), st.text(max_size=3), st.booleans()
                )
            )
            parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default))
            continue
        annotations[name] = draw(_annotations())
        default = None if style == "optional" else inspect.Parameter.empty
        parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default))

    def generated(**kwargs: Any) -> None:
        """A generated tool."""

    generated.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    generated.__annotations__ = annotations
    return generated


GENERATED_TARGETS = [
    t for t in TARGETS if t.key in ("OPENAI", "MISTRAL", "OPENROUTER", "ANTHROPIC", "VERTEXAI")
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(function=tool_functions())
def test_tools_from_any_signature_are_valid_everywhere(function: Callable[..., Any]) -> None:
    for target in GENERATED_TARGETS:
        body = target.api().preview_request(
            **offering_tools({"chat_history": HELLO, "available_tools": [function]})
        )
        assert body["tools"]
        for schema in target.schemas:
            assert_valid(schema, body)
        if target.key == "VERTEXAI":
            for declaration in body["tools"][0]["functionDeclarations"]:
                for node in schema_nodes(declaration.get("parameters", {})):
                    assert_google_live_rules(node)


# ----------------------------------------------------------------------------- arbitrary JSON schemas
_JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-9, 9), st.floats(-9, 9, allow_nan=False), st.text("ab", max_size=2)
)
_LEAVES = st.one_of(
    st.sampled_from([{"type": t} for t in ("string", "integer", "number", "boolean")] + [{}]),
    st.lists(_JSON_VALUES, min_size=1, max_size=4).map(lambda values: {"enum": values}),
    _JSON_VALUES.map(lambda value: {"const": value}),
    st.sampled_from(["uri", "date", "date-time", "email", "uuid"]).map(
        lambda f: {"type": "string", "format": f}
    ),
    st.sampled_from(["int32", "int64", "unsigned"]).map(lambda f: {"type": "integer", "format": f}),
)


def _decorated(schemas: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    extras = st.fixed_dictionaries(
        {},
        optional={"description": st.text(max_size=5), "title": st.text(max_size=5), "default": _JSON_VALUES},
    )
    return st.tuples(schemas, extras).map(lambda pair: {**pair[0], **pair[1]})


JSON_SCHEMAS = st.recursive(
    _decorated(_LEAVES),
    lambda inner: _decorated(
        st.one_of(
            st.dictionaries(st.sampled_from("xyz"), inner, min_size=1).map(
                lambda props: {"type": "object", "properties": props, "additionalProperties": False}
            ),
            inner.map(lambda item: {"type": "array", "items": item}),
            st.lists(inner, min_size=1, max_size=3).map(lambda branches: {"anyOf": branches}),
            st.tuples(inner, st.just({"type": "null"})).map(lambda pair: {"anyOf": list(pair)}),
            st.sampled_from(["string", "integer"]).map(lambda t: {"type": [t, "null"]}),
        )
    ),
    max_leaves=8,
)


@cache
def google_schema_validator(name: str) -> jsonschema.protocols.Validator:
    """A validator for one ``Schema`` object of the (leniency-widened) Gemini or Vertex request schema."""
    definition = {
        "gemini": "google.ai.generativelanguage.v1beta.Schema",
        "vertex": "GoogleCloudAiplatformV1Schema",
    }
    return jsonschema.Draft202012Validator(
        {"$ref": f"#/$defs/{definition[name]}", "$defs": validators(name).schema["$defs"]}
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=JSON_SCHEMAS)
def test_any_json_schema_becomes_a_google_schema_the_api_accepts(schema: dict[str, Any]) -> None:
    """Response-format files are the user's JSON schemas: whatever they hold, Google gets a valid Schema."""
    converted = gemini_schema(schema)
    for name in ("gemini", "vertex"):
        errors = list(google_schema_validator(name).iter_errors(converted))
        assert not errors, (converted, errors[0].message)
    for node in schema_nodes(converted):
        assert_google_live_rules(node)
