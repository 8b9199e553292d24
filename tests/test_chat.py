"""Chat history items, tool specs from callables, and LLM_TOOLS_SCOPE selection."""

from __future__ import annotations

from typing import Literal

import pytest

from statek.chat import ChatHistoryItem, ChatRole, ToolCall, ToolScope, select_tools, tool, tool_spec
from statek.exceptions import ConfigurationError


def get_weather(location: str, unit: Literal["c", "f"] = "c", *args: object, **kwargs: object) -> str:
    """Current weather for a place.

    Args:
        location: City and country, e.g. "Paris, FR".
        unit: Temperature unit.
    """
    return ""


@tool("SYSTEM")
def web_search(query: str, max_results: int = 5) -> list[str]:
    """Search the web."""
    return []


@tool(ToolScope.SYSTEM)
def read_file(path: str) -> str:
    """Read a file."""
    return ""


def test_tool_spec_schema_comes_from_signature_and_docstring() -> None:
    spec = tool_spec(get_weather)
    assert spec.name == "get_weather"
    assert spec.description == "Current weather for a place."
    assert spec.scope is ToolScope.APPLICATION
    assert spec.parameters == {
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": 'City and country, e.g. "Paris, FR".'},
            "unit": {
                "type": "string",
                "enum": ["c", "f"],
                "default": "c",
                "description": "Temperature unit.",
            },
        },
        "required": ["location"],
    }


def test_lambda_cannot_be_a_tool() -> None:
    with pytest.raises(ConfigurationError, match="needs a name"):
        tool_spec(lambda x: x)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (None, []),
        ("", []),
        ("  ", []),
        ("ALL", ["get_weather", "web_search", "read_file"]),
        ("SYSTEM", ["web_search", "read_file"]),
        ("application", ["get_weather"]),
        ("APPLICATION,+web_search", ["get_weather", "web_search"]),
        ("APPLICATION+web_search,read_file", ["get_weather", "web_search", "read_file"]),
        ("SYSTEM -read_file", ["web_search"]),
        ("ALL-web_search,read_file", ["get_weather"]),
        ("all+read_file-get_weather", ["web_search", "read_file"]),
        ("+read_file", ["read_file"]),
        ("+read_file,get_weather", ["read_file", "get_weather"]),
    ],
)
def test_scope_expressions(expression: str | None, expected: list[str]) -> None:
    chosen = select_tools([get_weather, web_search, read_file], expression)
    assert [s.name for s in chosen] == expected


def test_scope_errors_name_the_problem() -> None:
    with pytest.raises(ConfigurationError, match="'nope'.*available: get_weather"):
        select_tools([get_weather], "+nope")
    with pytest.raises(ConfigurationError, match="'EVERYTHING' is not SYSTEM"):
        select_tools([get_weather], "EVERYTHING")
    with pytest.raises(ConfigurationError, match="same name"):
        select_tools([get_weather, get_weather], "ALL")
    with pytest.raises(ValueError, match="removes tool 'get_weather', which was not selected"):
        select_tools([get_weather], "-get_weather")
    with pytest.raises(ValueError, match="not of the form"):
        select_tools([get_weather], "ALL SYSTEM")


def test_tool_calls_are_equal_and_hash_by_id() -> None:
    a = ToolCall("call_1", "get_weather", [], {"location": "Paris"})
    b = ToolCall("call_1", "other", [], {})
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != ToolCall("call_2", "get_weather", [], {"location": "Paris"})
    assert a.args == []


def test_history_items() -> None:
    call = ToolCall("c1", "get_weather", [], {"location": "Paris"})
    result = ChatHistoryItem.tool_result(call, {"temp": 21})
    assert result.role is ChatRole.TOOL and result.tool_call_id == "c1" and result.content == '{"temp": 21}'
    assert ChatHistoryItem("user", "hi").role is ChatRole.USER
    assert (
        '[called tool get_weather with {"location": "Paris"}]'
        in ChatHistoryItem.assistant("", [call]).as_plain_text()
    )
    with pytest.raises(ConfigurationError, match="tool_call_id"):
        ChatHistoryItem(ChatRole.TOOL, "x")
