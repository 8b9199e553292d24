"""``ClaudeAI_API``: the Anthropic Messages API (``POST /v1/messages``).

Wire decisions, each matching Anthropic's documented behaviour:

* **Auth**: ``x-api-key`` and ``anthropic-version`` headers, no bearer token. Requests go to the
  configured ``api_url`` (the registry fills in ``https://api.anthropic.com/v1/messages``). The
  original STATEK posted to the Messages endpoint whatever the URL, so a configured base URL
  (``https://api.anthropic.com``, ``.../v1``) gets ``/v1/messages`` (or ``/messages``) appended.
* **History**: system text (``system_prompt`` plus any SYSTEM items) goes to ``system``. Turns
  alternate user/assistant, so consecutive turns of one role are merged. Assistant tool calls become
  ``tool_use`` blocks, tool results ``tool_result`` blocks in a user turn (placed first, as the API
  requires). ``ChatStyle.PLAIN`` renders everything as text.
* **Prompt caching** (``use_prompt_caching``): ``cache_control: ephemeral`` on the system text, on
  the last tool (tools come first in the cached prefix) and on the last block of the last user turn,
  so each call reads the conversation written by the previous one. Three of Anthropic's four
  breakpoints; without the setting no marker is sent.
* **Reasoning**: ``thinking: {"type": "enabled", "budget_tokens": N}``; N from
  ``REASONING_BUDGET_TOKENS``, else ``REASONING_EFFORT`` (low/medium/high), else 2048. Anthropic
  rejects ``temperature`` with thinking, so it is left out, and ``max_tokens`` must exceed the
  budget: the default grows to ``budget + default_max_tokens``; an explicit ``MAX_TOKENS`` that is
  too small is a :class:`ConfigurationError`. Thinking blocks of an answer ride on its tool calls
  (:class:`ClaudeToolCall`) and are sent back first in that assistant turn, as Anthropic requires.
* **Structured output** (``response_format_file``): Anthropic's native JSON outputs,
  ``output_config: {"format": {"type": "json_schema", "schema": ...}}``; the JSON arrives as text.
* **Streaming** (``stream=True``): the SSE body is folded into the same message shape as a
  non-streamed answer. ``message_delta`` usage is cumulative, so it replaces, never adds to, what
  ``message_start`` said.

Usage: Anthropic reports cache reads and writes *outside* ``input_tokens``; statek's
``input_tokens`` is their sum. ``output_tokens`` already includes thinking.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from .._http import RawResponse, RetryPolicy
from ..chat import ChatHistoryItem, ChatRole, ChatStyle
from ..exceptions import ConfigurationError, MalformedToolCallError, ProviderError, ResponseFormatError
from ..llm_api import LLM_API, PreparedRequest
from ..settings import ProviderSettings, env_names, parse_bool
from ..types import CallDetail, CallParams, LLM_Response
from ._response_format import load_response_schema
from ._wire import error_context, iter_sse_json, reported_cost

__all__ = ["ANTHROPIC_VERSION", "ClaudeAI_API", "ClaudeToolCall", "Claude_API", "messages_url"]

ANTHROPIC_VERSION = "2023-06-01"
"""The ``anthropic-version`` header sent by default."""
DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` when the request does not set ``MAX_TOKENS`` (Anthropic requires the field)."""
DEFAULT_THINKING_BUDGET = 2048
MIN_THINKING_BUDGET = 1024
"""Anthropic's smallest accepted ``budget_tokens``."""
EFFORT_BUDGETS: Mapping[str, int] = {"low": 1024, "medium": 4096, "high": 16384}

_EPHEMERAL: Mapping[str, str] = {"type": "ephemeral"}


@dataclass(frozen=True, eq=False)
class ClaudeToolCall(CallParams):
    """A tool call from a Claude answer, with the thinking blocks (signatures included) of that answer.

    With extended thinking, Anthropic requires the assistant turn that made tool calls to be sent back
    with its thinking blocks unchanged; putting these calls into the next request's history does that.
    Equal to, and hashed like, any call with the same id.
    """

    thinking_blocks: tuple[Mapping[str, Any], ...] = field(default=(), repr=False)


class ClaudeAI_API(LLM_API):
    """Anthropic Messages API. See the module docstring for every wire decision.

    Extra constructor arguments: ``stream`` (use server-sent events), ``anthropic_version`` (the
    header value), ``max_tokens`` (the original's name; also ``default_max_tokens``: used when
    ``MAX_TOKENS`` metadata is absent, default 4096) and ``use_prompt_caching`` (the original's
    keyword; overrides the ``*_USE_PROMPT_CACHING`` setting when given).
    """

    provider_key = "ANTHROPIC"
    genai_provider_name: ClassVar[str] = "anthropic"
    default_api_url: ClassVar[str | None] = "https://api.anthropic.com/v1/messages"
    requires_api_key: ClassVar[bool] = True

    def __init__(
        self,
        settings: ProviderSettings | None = None,
        *,
        model: str | None = None,
        provider_key: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        timeout: httpx.Timeout | float = 60.0,
        retry: RetryPolicy | None = None,
        stream: bool = False,
        anthropic_version: str = ANTHROPIC_VERSION,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        max_tokens: int | None = None,
        use_prompt_caching: bool | None = None,
    ) -> None:
        if use_prompt_caching is not None:
            settings = (settings or ProviderSettings()).model_copy(
                update={"use_prompt_caching": parse_bool(use_prompt_caching)}
            )
        super().__init__(
            settings,
            model=model,
            provider_key=provider_key,
            http_client=http_client,
            timeout=timeout,
            retry=retry,
        )
        self.stream = stream
        self.anthropic_version = anthropic_version
        self.default_max_tokens = max_tokens if max_tokens is not None else default_max_tokens
        path = self.settings.response_format_file
        env = env_names(self.provider_key)["response_format_file"]
        self._output_schema = load_response_schema(path, env) if path else None

    @property
    def api_url(self) -> str:
        """The Messages endpoint: the configured URL, with ``/v1/messages`` appended to a base URL."""
        return messages_url(super().api_url)

    # ----------------------------------------------------------------- request
    def _build_payload(self, params: PreparedRequest) -> dict[str, Any]:
        caching = self.settings.use_prompt_caching
        budget = self._thinking_budget(params)
        payload: dict[str, Any] = {"model": params.model, "max_tokens": self._max_tokens(params, budget)}
        system = "\n\n".join(
            [params.system_prompt or ""]
            + [i.content for i in params.chat_history if i.role is ChatRole.SYSTEM]
        ).strip()
        if system:
            payload["system"] = (
                [{"type": "text", "text": system, "cache_control": dict(_EPHEMERAL)}] if caching else system
            )
        messages = _render_messages(params.chat_history, params.chat_style, with_thinking=budget is not None)
        if caching:
            _mark_last_user_turn(messages)
        payload["messages"] = messages
        if params.tools:
            tools = [
                {
                    "name": t.name,
                    "description": t.description,
                    "input_schema": copy.deepcopy(dict(t.parameters)),
                }
                for t in params.tools
            ]
            if caching:
                tools[-1]["cache_control"] = dict(_EPHEMERAL)
            payload["tools"] = tools
        if budget is not None:
            payload["thinking"] = {"type": "enabled", "budget_tokens": budget}
        elif params.temperature is not None:
            payload["temperature"] = params.temperature
        if self._output_schema is not None:
            payload["output_config"] = {
                "format": {"type": "json_schema", "schema": copy.deepcopy(self._output_schema)}
            }
        if self.stream:
            payload["stream"] = True
        return payload

    @staticmethod
    def _thinking_budget(params: PreparedRequest) -> int | None:
        if not params.enable_reasoning:
            return None
        budget = params.reasoning_budget_tokens or EFFORT_BUDGETS.get(params.reasoning_effort or "")
        budget = budget or DEFAULT_THINKING_BUDGET
        if budget < MIN_THINKING_BUDGET:
            raise ConfigurationError(
                f"Anthropic thinking needs a budget of at least {MIN_THINKING_BUDGET} tokens, got {budget} "
                "(metadata REASONING_BUDGET_TOKENS)"
            )
        return budget

    def _max_tokens(self, params: PreparedRequest, budget: int | None) -> int:
        if params.max_tokens is not None:
            if budget is not None and params.max_tokens <= budget:
                raise ConfigurationError(
                    f"metadata MAX_TOKENS ({params.max_tokens}) must exceed the thinking budget ({budget}): "
                    "Anthropic counts thinking inside max_tokens"
                )
            return params.max_tokens
        if budget is not None and self.default_max_tokens <= budget:
            return budget + self.default_max_tokens
        return self.default_max_tokens

    def _request_headers(self) -> dict[str, str]:
        key = self.settings.key_value()
        if not key:
            raise ConfigurationError(
                f"no API key for provider {self.provider_key}: set {env_names(self.provider_key)['api_key']} "
                "or pass api_key=... to LLM_API.get / add_provider"
            )
        headers = {
            "content-type": "application/json",
            "x-api-key": key,
            "anthropic-version": self.anthropic_version,
        }
        if self.stream:
            headers["accept"] = "text/event-stream"
        return headers

    # ----------------------------------------------------------------- response
    async def _send(self, params: PreparedRequest, payload: dict[str, Any]) -> LLM_Response:
        headers = self._request_headers()
        if not self.stream:
            message, raw = await self._post_json(payload, url=self.api_url, headers=headers)
            return self._parse_message(message, raw)
        raw = await self._post_raw(payload, url=self.api_url, headers=headers)
        try:
            message = _fold_stream(raw.content)
        except _StreamFailed as exc:
            raise ProviderError(
                f"{self.provider_key} stream failed: {exc}", **error_context(self, raw)
            ) from exc
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise ResponseFormatError(
                f"{self.provider_key} sent a stream statek cannot read: {type(exc).__name__}: {exc}",
                **error_context(self, raw),
            ) from exc
        return self._parse_message(message, raw)

    def _parse_message(self, message: Any, raw: RawResponse) -> LLM_Response:
        if not isinstance(message, dict) or not isinstance(message.get("usage"), dict):
            raise ResponseFormatError(
                f"{self.provider_key} answered without a message usage object: {str(message)[:200]}",
                **error_context(self, raw),
            )
        blocks = [b for b in message.get("content") or () if isinstance(b, dict)]
        thinking = tuple(b for b in blocks if b.get("type") in ("thinking", "redacted_thinking"))
        text = "".join(b.get("text") or "" for b in blocks if b.get("type") == "text")
        calls = [self._tool_call(b, thinking, raw) for b in blocks if b.get("type") == "tool_use"]
        stats = _stats(message["usage"], raw, message.get("model"), message.get("stop_reason"))
        return LLM_Response(text, None, calls or None, detail=stats)

    def _tool_call(
        self, block: Mapping[str, Any], thinking: tuple[Mapping[str, Any], ...], raw: RawResponse
    ) -> CallParams:
        name, call_id, arguments = block.get("name"), block.get("id"), block.get("input")
        if not isinstance(name, str) or not name or not isinstance(call_id, str) or not call_id:
            raise MalformedToolCallError(
                f"{self.provider_key} tool_use block without a name or id: {str(block)[:200]}",
                **error_context(self, raw),
            )
        if not isinstance(arguments, dict):
            raise MalformedToolCallError(
                f"{self.provider_key} tool_use {name!r} input is not a JSON object: {str(arguments)[:200]}",
                **error_context(self, raw),
            )
        return ClaudeToolCall(call_id=call_id, name=name, kwargs=arguments, thinking_blocks=thinking)


Claude_API = ClaudeAI_API
"""The same class under the seed's second name."""


class _StreamFailed(Exception):
    """An ``error`` event inside a 200 stream (e.g. ``overloaded_error`` mid-answer)."""


def _fold_stream(body: bytes) -> dict[str, Any]:
    """The message a streamed answer adds up to, in the shape of a non-streamed one.

    Tool input arrives as ``input_json_delta`` fragments, parsed at ``content_block_stop``; fragments
    that are not JSON are kept as the raw string, which the tool-call parser then rejects.
    """
    message: dict[str, Any] = {"usage": {}}
    blocks: dict[int, dict[str, Any]] = {}
    fragments: dict[int, list[str]] = {}
    for name, data in iter_sse_json(body):
        kind = data.get("type", name)
        if kind == "message_start":
            message = {**data["message"], "usage": dict(data["message"].get("usage") or {})}
        elif kind == "content_block_start":
            blocks[data["index"]] = dict(data["content_block"])
        elif kind == "content_block_delta":
            _apply_delta(blocks[data["index"]], fragments.setdefault(data["index"], []), data["delta"])
        elif kind == "content_block_stop":
            block, text = blocks[data["index"]], "".join(fragments.pop(data["index"], []))
            if block.get("type") == "tool_use" and text:
                try:
                    block["input"] = json.loads(text)
                except ValueError:
                    block["input"] = text
        elif kind == "message_delta":
            message.update({k: v for k, v in (data.get("delta") or {}).items() if v is not None})
            # Cumulative counts: overwrite the fields present, keep the rest (the input side of message_start).
            message["usage"].update(data.get("usage") or {})
        elif kind == "error":
            error = data.get("error") or {}
            raise _StreamFailed(f"{error.get('type')}: {error.get('message')}")
    message["content"] = [blocks[i] for i in sorted(blocks)]
    return message


def _apply_delta(block: dict[str, Any], fragments: list[str], delta: Mapping[str, Any]) -> None:
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = block.get("text", "") + delta.get("text", "")
    elif kind == "input_json_delta":
        fragments.append(delta.get("partial_json", ""))
    elif kind == "thinking_delta":
        block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
    elif kind == "signature_delta":
        block["signature"] = delta.get("signature", "")


def messages_url(url: str) -> str:
    """``url`` if it already names the Messages endpoint; else the endpoint under that base URL."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if path.endswith("/messages"):
        return url
    path += "/messages" if path.endswith("/v1") else "/v1/messages"
    return urlunsplit(parts._replace(path=path))


def _stats(usage: Mapping[str, Any], raw: RawResponse, model: Any, stop_reason: Any) -> CallDetail:
    uncached = int(usage.get("input_tokens") or 0)
    cache_write = int(usage.get("cache_creation_input_tokens") or 0)
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    # No TTL split means all writes were 5-minute ones (Anthropic's default and cheapest rate).
    write_1h = int((usage.get("cache_creation") or {}).get("ephemeral_1h_input_tokens") or 0)
    return CallDetail(
        total_bytes_sent=raw.bytes_sent,
        total_bytes_received=raw.bytes_received,
        cost=reported_cost(usage.get("cost")),
        input_tokens=uncached + cache_write + cache_read,
        output_tokens=int(usage.get("output_tokens") or 0),
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=write_1h,
        reasoning_tokens=int((usage.get("output_tokens_details") or {}).get("thinking_tokens") or 0),
        response_model=model if isinstance(model, str) else None,
        finish_reason=stop_reason if isinstance(stop_reason, str) else None,
    )


def _render_messages(
    history: Iterable[ChatHistoryItem], style: ChatStyle, *, with_thinking: bool
) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for item in history:
        if item.role is ChatRole.SYSTEM:
            continue
        role = "assistant" if item.role is ChatRole.ASSISTANT else "user"
        blocks = _blocks(item, style, with_thinking)
        if not blocks:
            continue
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})
    for message in messages:
        if message["role"] == "user":
            # tool_result blocks must open a user turn; sort is stable, so order within each kind stays.
            message["content"].sort(key=lambda b: b["type"] != "tool_result")
    return messages


def _blocks(item: ChatHistoryItem, style: ChatStyle, with_thinking: bool) -> list[dict[str, Any]]:
    if style is ChatStyle.PLAIN:
        text = item.as_plain_text()
        return [{"type": "text", "text": text}] if text else []
    if item.role is ChatRole.TOOL:
        return [{"type": "tool_result", "tool_use_id": item.tool_call_id, "content": item.content}]
    blocks: list[dict[str, Any]] = []
    if with_thinking:
        carried = next((c.thinking_blocks for c in item.tool_calls if isinstance(c, ClaudeToolCall)), ())
        blocks.extend(copy.deepcopy(dict(b)) for b in carried)
    if item.content:
        blocks.append({"type": "text", "text": item.content})
    blocks.extend(
        {"type": "tool_use", "id": c.call_id, "name": c.name, "input": dict(c.kwargs)}
        for c in item.tool_calls
    )
    return blocks


def _mark_last_user_turn(messages: list[dict[str, Any]]) -> None:
    for message in reversed(messages):
        if message["role"] == "user":
            message["content"][-1]["cache_control"] = dict(_EPHEMERAL)
            return
