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
  non-streamed answer by the codec :mod:`statek.wire.anthropic_messages`, which also reads answers
  and usage (and which the httpx transport shares).

Usage: Anthropic reports cache reads and writes *outside* ``input_tokens``; statek's
``input_tokens`` is their sum. ``output_tokens`` already includes thinking.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from .._http import RawResponse, RetryPolicy
from ..chat import ChatHistoryItem, ChatRole, ChatStyle
from ..exceptions import ConfigurationError, MalformedToolCallError, ProviderError, ResponseFormatError
from ..llm_api import LLM_API, PreparedRequest
from ..settings import ProviderSettings, env_names, parse_bool
from ..streaming import stream_answer
from ..types import LLM_Response
from ..wire.anthropic_messages import ClaudeToolCall, MessageStreamReader, fold_stream, read_message
from ..wire.errors import StreamFailure, ToolCallFormatError, WireFormatError
from ._errors import error_context
from ._response_format import load_response_schema

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


class ClaudeAI_API(LLM_API):
    """Anthropic Messages API. See the module docstring for every wire decision.

    Extra constructor arguments: ``stream`` (use server-sent events), ``anthropic_version`` (the
    header value), ``max_tokens`` (the original's name; also ``default_max_tokens``: used when
    ``MAX_TOKENS`` metadata is absent, default 4096) and ``use_prompt_caching`` (the original's
    keyword; overrides the ``*_USE_PROMPT_CACHING`` setting when given).
    """

    provider_key = "ANTHROPIC"
    genai_provider_name: ClassVar[str] = "anthropic"
    output_cap_wire: ClassVar[str | None] = "anthropic"
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
            message = fold_stream(raw.content)
        except StreamFailure as exc:
            raise ProviderError(
                f"{self.provider_key} stream failed: {exc}", **error_context(self, raw)
            ) from exc
        except ValueError as exc:  # WireFormatError, or an event that is not JSON
            raise ResponseFormatError(
                f"{self.provider_key} sent a stream statek cannot read: {exc}",
                content=raw.content,
                **error_context(self, raw),
            ) from exc
        return self._parse_message(message, raw)

    async def _stream(
        self, params: PreparedRequest, payload: dict[str, Any], emit: Callable[[str], None]
    ) -> LLM_Response:
        headers = {**self._request_headers(), "accept": "text/event-stream"}
        payload = {**payload, "stream": True}
        return await stream_answer(
            self, payload, MessageStreamReader(), emit, url=self.api_url, headers=headers
        )

    def _parse_message(self, message: Any, raw: RawResponse) -> LLM_Response:
        try:
            text, calls, detail = read_message(message, raw.bytes_sent, raw.bytes_received)
        except ToolCallFormatError as exc:
            raise MalformedToolCallError(
                f"{self.provider_key} {exc}", content=raw.content, **error_context(self, raw)
            ) from exc
        except WireFormatError as exc:
            raise ResponseFormatError(
                f"{self.provider_key} {exc}", content=raw.content, **error_context(self, raw)
            ) from exc
        return LLM_Response(text, None, calls, detail=detail)


Claude_API = ClaudeAI_API
"""The same class under the seed's second name."""


def messages_url(url: str) -> str:
    """``url`` if it already names the Messages endpoint; else the endpoint under that base URL."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if path.endswith("/messages"):
        return url
    path += "/messages" if path.endswith("/v1") else "/v1/messages"
    return urlunsplit(parts._replace(path=path))


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
