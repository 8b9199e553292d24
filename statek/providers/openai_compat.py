"""The OpenAI chat-completions provider, shared by every OpenAI-compatible provider.

One implementation, :class:`OpenAICompatible_API`, speaks ``POST .../chat/completions``: it renders the
request (messages, tools, temperature, reasoning switch, JSON-schema response format, streaming) and
sends it; the answer (text, tool calls, finish reason, response model, usage in statek's one meaning)
is read by the codec :mod:`statek.wire.openai_chat`, which the httpx transport shares. Where providers differ on the wire they differ as *data*: a :class:`ChatCompletionsProfile`
says where a provider puts cached tokens, whether its reasoning count is inside the output count,
which field carries its own cost report, how it wants reasoning requested and how it authenticates.
The catalogue (:mod:`statek.providers.catalog`) gives each built-in provider its profile; nothing
here branches on a provider's name.

Normalised usage (see :mod:`statek.types`): ``input_tokens`` = ``prompt_tokens`` (cache
reads and writes already inside it for every OpenAI-shaped provider); ``output_tokens`` =
``completion_tokens`` plus the reasoning count when the profile says the provider reports reasoning
outside the completion count (xAI, Perplexity); provider cost is an exact ``Decimal`` in USD.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import httpx

from .._http import RetryPolicy
from ..chat import ChatHistoryItem, ChatRole, ChatStyle, ToolSpec
from ..exceptions import ConfigurationError, MalformedToolCallError
from ..llm_api import LLM_API, PreparedRequest
from ..settings import ProviderSettings
from ..streaming import stream_answer
from ..types import LLM_Response
from ..wire import openai_chat
from ..wire.answer import Answer
from ..wire.errors import ToolCallFormatError, WireFormatError
from ..wire.openai_chat import (
    AuthStyle,
    ChatCompletionsProfile,
    ReasoningRequest,
    UsageCounts,
    normalise_usage,
)

__all__ = [
    "AuthStyle",
    "ChatCompletionsProfile",
    "OpenAICompatible_API",
    "ReasoningRequest",
    "UsageCounts",
    "normalise_usage",
]


_MAX_TOKENS_FIELDS = frozenset({"max_tokens", "max_completion_tokens"})
_ROLE_NAMES = {role: role.value for role in ChatRole}
"""Each role's wire name (``role.value``, without the enum property's two calls)."""


class OpenAICompatible_API(LLM_API):
    """Any server speaking OpenAI chat completions; the implementation behind all catalogue providers.

    Used as-is for providers registered with ``add_provider`` without an implementation: such a
    provider needs an ``api_url`` and sends a key only if one is configured. ``stream=True`` sends
    ``"stream": true`` and reads the server-sent events (text, tool-call fragments and the final usage
    chunk are put together; the result is the same :class:`LLM_Response` as without streaming).

    As in the original STATEK, keyword arguments the constructor does not know become fields of every
    request's JSON body (``LLM_API.get("OPENAI", max_tokens=100)`` sends ``"max_tokens": 100``); fields
    the request itself sets (messages, tools, temperature, ``MAX_TOKENS`` metadata, ...) win.
    """

    genai_provider_name: ClassVar[str] = "openai"
    requires_api_key: ClassVar[bool] = False
    output_cap_wire: ClassVar[str | None] = "chat_completions"
    profile: ClassVar[ChatCompletionsProfile] = ChatCompletionsProfile()
    _endpoint_cache: _Endpoint | None = None
    _keeps_headers: ClassVar[bool] = True
    """Whether the class keeps this class's ``_request_headers``: then a request sends its endpoint's
    headers as they are, without the copy the hook hands out (httpx only reads them)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._keeps_headers = cls._request_headers is OpenAICompatible_API._request_headers

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
        **payload_fields: Any,
    ) -> None:
        super().__init__(
            settings,
            model=model,
            provider_key=provider_key,
            http_client=http_client,
            timeout=timeout,
            retry=retry,
        )
        self.stream = stream
        self.payload_fields: dict[str, Any] = payload_fields

    # ----------------------------------------------------------------- request
    def _build_payload(self, params: PreparedRequest) -> dict[str, Any]:
        profile = self.profile
        payload: dict[str, Any] = {"model": params.model, "messages": self._messages(params)}
        if params.tools:
            payload["tools"] = [_tool(spec) for spec in params.tools]
        if params.temperature is not None:
            payload["temperature"] = params.temperature
        if params.max_tokens is not None:
            payload[profile.max_tokens_field] = params.max_tokens
        if params.enable_reasoning:
            payload.update(_reasoning_fields(params, profile))
        if self.settings.response_format_file:
            payload["response_format"] = _response_format(self.settings.response_format_file)
        if self.stream:
            payload["stream"] = True
            if profile.send_stream_options:
                payload["stream_options"] = {"include_usage": True}
        for name, value in self.payload_fields.items():
            if params.max_tokens is not None and name in _MAX_TOKENS_FIELDS:
                continue  # the request's own limit, already sent under the profile's field name
            payload.setdefault(name, value)
        return payload

    def _messages(self, params: PreparedRequest) -> list[dict[str, Any]]:
        plain = params.chat_style is ChatStyle.PLAIN
        messages: list[dict[str, Any]] = []
        if params.system_prompt:
            messages.append({"role": "system", "content": params.system_prompt})
        for item in params.chat_history:
            if item.tool_calls or item.role is ChatRole.TOOL:
                messages.append(_message(item, plain))
            else:  # text, the same in either chat style (what _message makes of it)
                messages.append({"role": _ROLE_NAMES[item.role], "content": item.content})
        return messages

    def _endpoint(self) -> _Endpoint:
        """Where every request goes and its default headers: worked out once, again only when the
        instance's ``settings`` or ``profile`` is replaced (both are immutable). Raises
        :class:`~statek.exceptions.ConfigurationError` when no URL is configured."""
        endpoint = self._endpoint_cache
        if endpoint is None or endpoint.settings is not self.settings or endpoint.profile is not self.profile:
            url = self.api_url
            endpoint = self._endpoint_cache = _Endpoint(
                self.settings,
                self.profile,
                url,
                self._query_params(url),
                _headers(self.settings, self.profile),
            )
        return endpoint

    def _request_headers(self) -> dict[str, str]:
        return dict(self._endpoint().headers)

    def _query_params(self, url: str) -> dict[str, str] | None:
        parts = urlsplit(url)
        if not self.profile.default_query or "/v1/" in parts.path:
            return None
        present = {name for name, _ in parse_qsl(parts.query)}
        extra = {name: value for name, value in self.profile.default_query if name not in present}
        return extra or None

    # ----------------------------------------------------------------- response
    async def _send(self, params: PreparedRequest, payload: dict[str, Any]) -> LLM_Response:
        endpoint = self._endpoint()
        headers = endpoint.headers if self._keeps_headers else self._request_headers()
        raw = await self._post_raw(payload, url=endpoint.url, headers=headers, params=endpoint.query)
        try:
            if payload.get("stream"):
                content_type = raw.headers.get("content-type", "")
                streamed = openai_chat.read_stream(raw.content, content_type, self.profile)
                answer = Answer(
                    openai_chat.message_text(streamed.message.get("content")),
                    openai_chat.tool_calls(streamed.message.get("tool_calls")),
                    openai_chat.answer_detail(streamed, self.profile, raw.bytes_sent, raw.bytes_received),
                )
            else:
                body = self._json_of(raw)
                answer = openai_chat.read_whole(body, self.profile, raw.bytes_sent, raw.bytes_received)
        except ToolCallFormatError as exc:
            raise MalformedToolCallError(
                f"{self.provider_key}: {exc}",
                content=raw.content,
                provider=self.provider_key,
                attempts=raw.attempts,
                bytes_sent=raw.bytes_sent,
                bytes_received=raw.bytes_received,
            ) from exc
        except WireFormatError as exc:
            raise self._format_error(str(exc), raw) from exc
        return LLM_Response._of_detail(answer.text, answer.tool_calls, answer.detail)

    async def _stream(
        self, params: PreparedRequest, payload: dict[str, Any], emit: Callable[[str], None]
    ) -> LLM_Response:
        payload = {**payload, "stream": True}
        if self.profile.send_stream_options:
            payload.setdefault("stream_options", {"include_usage": True})
        endpoint = self._endpoint()
        reader = openai_chat.ChatStreamReader(self.profile)
        return await stream_answer(
            self,
            payload,
            reader,
            emit,
            url=endpoint.url,
            headers=endpoint.headers if self._keeps_headers else self._request_headers(),
            params=endpoint.query,
        )


@dataclass(frozen=True, slots=True)
class _Endpoint:
    """What every request of one provider instance shares, for the settings and profile it was made of."""

    settings: ProviderSettings
    profile: ChatCompletionsProfile
    url: str
    query: dict[str, str] | None
    headers: dict[str, str] = field(repr=False)
    """With the API key: never in a repr."""


def _headers(settings: ProviderSettings, profile: ChatCompletionsProfile) -> dict[str, str]:
    """The headers every request sends: JSON, the key as ``profile`` wants it (if one is configured),
    the profile's extra headers."""
    headers = {"content-type": "application/json"}
    key = settings.key_value()
    if key:
        if profile.auth is AuthStyle.API_KEY_HEADER:
            headers["api-key"] = key
        else:
            headers["authorization"] = f"Bearer {key}"
    headers.update(profile.extra_headers)
    return headers


def _message(item: ChatHistoryItem, plain: bool) -> dict[str, Any]:
    if item.role is ChatRole.TOOL:
        if plain:
            return {"role": "user", "content": item.as_plain_text()}
        return {"role": "tool", "tool_call_id": item.tool_call_id, "content": item.content}
    if item.role is ChatRole.ASSISTANT and item.tool_calls:
        if plain:
            return {"role": "assistant", "content": item.as_plain_text()}
        return {
            "role": "assistant",
            "content": item.content or None,
            "tool_calls": [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.kwargs, ensure_ascii=False)},
                }
                for call in item.tool_calls
            ],
        }
    return {"role": item.role.value, "content": item.content}


def _tool(spec: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": spec.name, "description": spec.description, "parameters": dict(spec.parameters)},
    }


def _reasoning_fields(params: PreparedRequest, profile: ChatCompletionsProfile) -> dict[str, Any]:
    style = profile.reasoning_request
    if style is ReasoningRequest.EFFORT:
        return {"reasoning_effort": params.reasoning_effort or profile.default_reasoning_effort}
    if style is ReasoningRequest.OPENROUTER:
        if params.reasoning_budget_tokens:
            return {"reasoning": {"max_tokens": params.reasoning_budget_tokens}}
        if params.reasoning_effort:
            return {"reasoning": {"effort": params.reasoning_effort}}
        return {"reasoning": {"enabled": True}}
    if style is ReasoningRequest.ENABLE_THINKING:
        fields: dict[str, Any] = {"enable_thinking": True}
        if params.reasoning_budget_tokens:
            fields["thinking_budget"] = params.reasoning_budget_tokens
        return fields
    return {}


_SCHEMA_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def _response_format(path: str) -> dict[str, Any]:
    """``response_format`` for the file at ``path``.

    The file holds a whole ``response_format`` object (``{"type": "json_schema", "json_schema": {...}}``,
    what the original STATEK read; sent as it is), OpenAI's ``{"name": ..., "schema": ...}`` object, or a
    bare JSON schema (named after the file).
    """
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(
            f"response format file {path!r} cannot be read: {exc.strerror or exc}"
        ) from exc
    except ValueError as exc:
        raise ConfigurationError(f"response format file {path!r} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigurationError(f"response format file {path!r} must hold a JSON object (a JSON schema)")
    if isinstance(document.get("type"), str) and document["type"] in ("json_schema", "json_object", "text"):
        return document
    if isinstance(document.get("schema"), dict) and isinstance(document.get("name"), str):
        return {"type": "json_schema", "json_schema": document}
    name = _SCHEMA_NAME.sub("_", Path(path).stem)[:64] or "response"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": document}}
