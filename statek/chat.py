"""Chat history, tool specifications and tool-scope selection, independent of any wire format.

Provider adapters render these neutral types into their own JSON; nothing here knows a provider.

Tools are plain Python callables. Their JSON schema comes from the signature (via pydantic) and
their description from the docstring. A tool belongs to a scope, ``APPLICATION`` by default; the
:func:`tool` decorator marks ``SYSTEM`` tools. The ``LLM_TOOLS_SCOPE`` metadata entry chooses
which tools a request offers (see :func:`select_tools`).
"""

from __future__ import annotations

import inspect
import json
import re
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

import pydantic

from .exceptions import ConfigurationError
from .types import CallParams

__all__ = [
    "LLM_TOOLS_SCOPE",
    "CallParams",
    "ChatHistoryItem",
    "ChatRole",
    "ChatStyle",
    "ToolCall",
    "ToolScope",
    "ToolSpec",
    "select_tools",
    "tool",
    "tool_spec",
]

LLM_TOOLS_SCOPE = "LLM_TOOLS_SCOPE"
"""Metadata key choosing the tools a request offers, e.g. ``"APPLICATION+web_search-delete_file"``; none: no tools."""

_SCOPE_ATTRIBUTE = "__statek_tool_scope__"


class ChatRole(str, Enum):
    """Who wrote a history item."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class ChatStyle(str, Enum):
    """How history is rendered and whether tools are offered.

    ``NATIVE`` (the default) uses the provider's own tool-calling messages. ``PLAIN`` renders tool
    calls and tool results as ordinary text turns and offers no tools: for models or gateways that
    reject tool messages.
    """

    NATIVE = "native"
    PLAIN = "plain"


class ToolScope(str, Enum):
    """Which group a tool belongs to; ``ALL`` selects both."""

    SYSTEM = "SYSTEM"
    APPLICATION = "APPLICATION"
    ALL = "ALL"


ToolCall = CallParams
"""The tool-call type under statek's earlier name; the seed's name is :class:`CallParams`."""


@dataclass(frozen=True)
class ChatHistoryItem:
    """One turn of a conversation.

    * ``USER`` / ``SYSTEM``: ``content`` is the text.
    * ``ASSISTANT``: ``content`` is the text (may be empty) and ``tool_calls`` the calls it made.
    * ``TOOL``: ``content`` is the tool's result and ``tool_call_id`` the id of the call it answers
      (``name`` the tool's name, which Gemini needs).
    """

    role: ChatRole
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", ChatRole(self.role))
        object.__setattr__(self, "tool_calls", tuple(self.tool_calls))
        if self.role is ChatRole.TOOL and not self.tool_call_id:
            raise ConfigurationError("a TOOL history item needs tool_call_id: the id of the call it answers")

    @classmethod
    def user(cls, content: str) -> ChatHistoryItem:
        return cls(ChatRole.USER, content)

    @classmethod
    def assistant(cls, content: str = "", tool_calls: Iterable[ToolCall] = ()) -> ChatHistoryItem:
        return cls(ChatRole.ASSISTANT, content, tuple(tool_calls))

    @classmethod
    def tool_result(cls, call: ToolCall, result: Any) -> ChatHistoryItem:
        """The answer to ``call``; a non-string ``result`` is sent as JSON."""
        text = result if isinstance(result, str) else json.dumps(result, default=str)
        return cls(ChatRole.TOOL, text, tool_call_id=call.call_id, name=call.name)

    def as_plain_text(self) -> str:
        """This item as one text turn, for :attr:`ChatStyle.PLAIN`."""
        if self.role is ChatRole.TOOL:
            return f"[result of tool {self.name or self.tool_call_id}]\n{self.content}"
        calls = "".join(
            f"\n[called tool {c.name} with {json.dumps(c.kwargs, sort_keys=True)}]" for c in self.tool_calls
        )
        return f"{self.content}{calls}"


@dataclass(frozen=True)
class ToolSpec:
    """A tool as offered to a model: name, description and a JSON schema of its keyword arguments."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    scope: ToolScope = ToolScope.APPLICATION


F = TypeVar("F", bound=Callable[..., Any])


def tool(scope: ToolScope | str = ToolScope.APPLICATION) -> Callable[[F], F]:
    """Mark a callable's scope: ``@tool("SYSTEM")`` for tools the platform provides itself."""
    resolved = ToolScope(scope.upper() if isinstance(scope, str) else scope)
    if resolved is ToolScope.ALL:
        raise ConfigurationError("a tool belongs to SYSTEM or APPLICATION, not ALL")

    def mark(func: F) -> F:
        setattr(func, _SCOPE_ATTRIBUTE, resolved)
        return func

    return mark


_ARGS_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$", re.MULTILINE)
_ARG_LINE = re.compile(r"^\s+(\w+)(?:\s*\([^)]*\))?:\s*(.+)$")


def _describe(doc: str) -> tuple[str, dict[str, str]]:
    """Split a docstring into its summary (text before ``Args:``) and per-argument descriptions."""
    match = _ARGS_SECTION.search(doc)
    if not match:
        return doc.strip(), {}
    arguments = {}
    for line in doc[match.end() :].splitlines():
        arg = _ARG_LINE.match(line)
        if arg:
            arguments[arg.group(1)] = arg.group(2).strip()
    return doc[: match.start()].strip(), arguments


def tool_spec(func: Callable[..., Any]) -> ToolSpec:
    """Build the :class:`ToolSpec` of ``func`` from its name, signature, annotations and docstring.

    Every parameter must be annotated or have a default. An unannotated parameter takes its
    default's type when that is ``str``, ``int``, ``float`` or ``bool`` (``def f(n=3)``: an integer),
    else ``Any``. ``*args`` and ``**kwargs`` are not offered to the model.
    """
    name = getattr(func, "__name__", None)
    if not name or name == "<lambda>":
        raise ConfigurationError(f"tool {func!r} needs a name: use a def, not a lambda")
    summary, arg_docs = _describe(inspect.getdoc(func) or "")
    hints = _type_hints(func)
    fields: dict[str, Any] = {}
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(param.name, _type_of_default(param.default))
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (annotation, pydantic.Field(default, description=arg_docs.get(param.name)))
    model = pydantic.create_model(f"{name}_arguments", **fields)
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    scope = getattr(func, _SCOPE_ATTRIBUTE, ToolScope.APPLICATION)
    return ToolSpec(name=name, description=summary or name, parameters=schema, scope=scope)


def _type_of_default(default: Any) -> Any:
    """The JSON-scalar type of an unannotated parameter's default, else ``Any``.

    Without it ``def f(n=3)`` would offer an argument of no type, which Google's schema refuses.
    """
    kind = type(default)
    return kind if kind in (str, int, float, bool) else Any


def _type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except (NameError, TypeError):  # unresolvable forward references: fall back to Any, not refuse
        return {}


_SCOPE_EXPRESSION = re.compile(r"\s*(?P<category>[A-Za-z_]+)?[\s,]*(?P<changes>(?:[+-][^+-]*)*)")
_CHANGE = re.compile(r"([+-])([^+-]*)")


def select_tools(
    available_tools: Sequence[Callable[..., Any]] | None,
    scope_expression: str | None,
) -> tuple[ToolSpec, ...]:
    """Pick the tools a request offers, as the original STATEK did.

    ``scope_expression`` is the ``LLM_TOOLS_SCOPE`` metadata value. None or blank offers **no tools**.
    Otherwise: an optional category word (``SYSTEM``, ``APPLICATION`` or ``ALL``, any case) that selects
    every tool of that scope, followed by ``+name1,name2`` (add these) and/or ``-name3,name4`` (remove
    these), applied left to right: ``"ALL-delete_file"``, ``"SYSTEM+web_search"``; a lone ``"+f"``
    selects only ``f``. Raises :class:`ConfigurationError` (a ``ValueError``) for an unknown category,
    a name that is not in ``available_tools``, or the removal of a tool that was not selected.
    """
    if scope_expression is None or not str(scope_expression).strip():
        return ()
    expression = str(scope_expression)
    match = _SCOPE_EXPRESSION.fullmatch(expression)
    if match is None:
        raise ConfigurationError(
            f"{LLM_TOOLS_SCOPE} {expression!r} is not of the form [SYSTEM|APPLICATION|ALL][+name,...][-name,...]"
        )
    specs = [tool_spec(f) for f in (available_tools or ())]
    by_name = {s.name: s for s in specs}
    if len(by_name) != len(specs):
        raise ConfigurationError("available_tools has two tools with the same name")
    chosen: dict[str, ToolSpec] = {}
    if match["category"]:
        try:
            scope = ToolScope(match["category"].upper())
        except ValueError:
            raise ConfigurationError(
                f"{LLM_TOOLS_SCOPE} category {match['category']!r} is not SYSTEM, APPLICATION or ALL"
            ) from None
        chosen.update({s.name: s for s in specs if scope is ToolScope.ALL or s.scope is scope})
    for sign, names in _CHANGE.findall(match["changes"]):
        for name in (n for n in re.split(r"[,\s]+", names) if n):
            if name not in by_name:
                raise ConfigurationError(
                    f"{LLM_TOOLS_SCOPE} names tool {name!r}, which is not in available_tools "
                    f"(available: {', '.join(sorted(by_name)) or 'none'})"
                )
            if sign == "+":
                chosen[name] = by_name[name]
            elif chosen.pop(name, None) is None:
                raise ConfigurationError(
                    f"{LLM_TOOLS_SCOPE} removes tool {name!r}, which was not selected "
                    f"(selected: {', '.join(chosen) or 'none'})"
                )
    return tuple(chosen.values())
