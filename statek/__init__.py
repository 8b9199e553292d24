"""statek: observability-first metering for LLM provider calls."""

from .chat import ChatHistoryItem, ChatRole, ChatStyle, ToolCall
from .llm_api import LLM_API, LLM_Response, LLM_Stats, add_provider

__all__ = ["ChatHistoryItem", "ChatRole", "ChatStyle", "LLM_API", "LLM_Response", "LLM_Stats", "ToolCall", "add_provider"]
