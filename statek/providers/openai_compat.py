"""The OpenAI chat-completions wire format, shared by every OpenAI-compatible provider.

One implementation, :class:`OpenAICompatible_API`, speaks ``POST .../chat/completions``: it renders the
request (messages, tools, temperature, reasoning switch, JSON-schema response format, streaming),
reads the answer (text, tool calls, finish reason, response model) and normalises usage to statek's
one meaning. Where providers differ on the wire they differ as *data*: a :class:`ChatCompletionsProfile`
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import httpx

from .._http import RawResponse, RetryPolicy
from ..chat import ChatHistoryItem, ChatRole, ChatStyle, ToolSpec
from ..exceptions import ConfigurationError, MalformedToolCallError
from ..llm_api import LLM_API, PreparedRequest
from ..settings import ProviderSettings
from ..types import CallDetail, CallParams, LLM_Response
from ._wire import iter_sse_json, reported_cost

__all__ = [
    "AuthStyle",
    "ChatCompletionsProfile",
    "OpenAICompatible_API",
    "ReasoningRequest",
    "UsageCounts",
    "normalise_usage",
]

UsagePath = tuple[str | int, ...]
"""Keys (and list indexes) from a JSON object to one value: ``("prompt_tokens_details", "cached_tokens")``."""


class ReasoningRequest(str, Enum):
    """How a provider wants reasoning switched on (only sent when the call asks for reasoning)."""

    EFFORT = "effort"
    """OpenAI style: ``"reasoning_effort": "low" | "medium" | "high"``."""
    OPENROUTER = "openrouter"
    """OpenRouter style: ``"reasoning": {"effort": e}`` / ``{"max_tokens": n}`` / ``{"enabled": true}``."""
    ENABLE_THINKING = "enable_thinking"
    """DashScope style: ``"enable_thinking": true`` (+ ``"thinking_budget"``)."""
    NONE = "none"
    """No request field: the model chosen decides (DeepSeek reasoner, Kimi thinking models)."""


class AuthStyle(str, Enum):
    """Which header carries the key."""

    BEARER = "bearer"
    """``Authorization: Bearer <key>``."""
    API_KEY_HEADER = "api-key"
    """``api-key: <key>`` (Azure OpenAI, Microsoft Foundry)."""


_MAX_TOKENS_FIELDS = frozenset({"max_tokens", "max_completion_tokens"})
_CACHED = ("prompt_tokens_details", "cached_tokens")
_CACHE_WRITE = ("prompt_tokens_details", "cache_write_tokens")
_REASONING = ("completion_tokens_details", "reasoning_tokens")


@dataclass(frozen=True, slots=True)
class ChatCompletionsProfile:
    """Where one provider departs from OpenAI's chat-completions wire format. Defaults are OpenAI's.

    Usage paths are tried in order inside the ``usage`` object; the first present number wins.
    ``cost_path`` points at the provider's own cost report and ``cost_unit_usd`` converts it to USD
    (xAI reports ticks of 1e-10 USD). ``reasoning_from_total`` derives an unreported reasoning count as
    ``total_tokens - prompt_tokens - completion_tokens`` (Gemini's OpenAI layer counts thoughts only in
    the total). ``stream_usage_paths`` are tried on every streamed chunk (the
    last chunk carrying usage wins: counts there are totals, never summed). ``default_query`` is
    added to the URL unless the URL already carries that parameter or is an unversioned ``/v1/`` URL.
    """

    cached_tokens_paths: tuple[UsagePath, ...] = (_CACHED,)
    cache_write_paths: tuple[UsagePath, ...] = (_CACHE_WRITE,)
    reasoning_tokens_paths: tuple[UsagePath, ...] = (_REASONING,)
    reasoning_in_output: bool = True
    reasoning_from_total: bool = False
    cost_path: UsagePath | None = ("cost",)
    cost_unit_usd: Decimal = Decimal(1)
    reasoning_request: ReasoningRequest = ReasoningRequest.EFFORT
    default_reasoning_effort: str = "medium"
    max_tokens_field: str = "max_tokens"
    auth: AuthStyle = AuthStyle.BEARER
    extra_headers: tuple[tuple[str, str], ...] = ()
    default_query: tuple[tuple[str, str], ...] = ()
    send_stream_options: bool = True
    stream_usage_paths: tuple[UsagePath, ...] = (("usage",),)


class UsageCounts(NamedTuple):
    """One answer's usage in statek's meaning (see module docstring)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal | None = None


def _dig(obj: Any, path: UsagePath) -> Any:
    for step in path:
        if isinstance(step, int):
            if not isinstance(obj, list) or not -len(obj) <= step < len(obj):
                return None
            obj = obj[step]
        elif isinstance(obj, Mapping):
            obj = obj.get(step)
        else:
            return None
    return obj


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def _first_count(usage: Mapping[str, Any], paths: Sequence[UsagePath]) -> int | None:
    for path in paths:
        number = _count(_dig(usage, path))
        if number is not None:
            return number
    return None


def normalise_usage(usage: Any, profile: ChatCompletionsProfile) -> UsageCounts:
    """Read an OpenAI-shaped ``usage`` object as statek's one meaning, following ``profile``'s quirks."""
    if not isinstance(usage, Mapping):
        return UsageCounts()
    prompt = _count(usage.get("prompt_tokens")) or 0
    completion = _count(usage.get("completion_tokens")) or 0
    reasoning = _first_count(usage, profile.reasoning_tokens_paths)
    if reasoning is None and profile.reasoning_from_total:
        reasoning = max((_count(usage.get("total_tokens")) or 0) - prompt - completion, 0)
    reasoning = reasoning or 0
    cost = None
    if profile.cost_path is not None:
        reported = reported_cost(_dig(usage, profile.cost_path))
        cost = None if reported is None else reported * profile.cost_unit_usd
    return UsageCounts(
        input_tokens=prompt,
        output_tokens=completion if profile.reasoning_in_output else completion + reasoning,
        cached_tokens=_first_count(usage, profile.cached_tokens_paths) or 0,
        cache_write_tokens=_first_count(usage, profile.cache_write_paths) or 0,
        reasoning_tokens=reasoning,
        cost=cost,
    )


class _Answer(NamedTuple):
    """The parts of one answer, whether it came whole or streamed."""

    message: Mapping[str, Any]
    finish_reason: str | None
    model: str | None
    usage: Any


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
    profile: ClassVar[ChatCompletionsProfile] = ChatCompletionsProfile()

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
        messages: list[dict[str, Any]] = []
        if params.system_prompt:
            messages.append({"role": "system", "content": params.system_prompt})
        plain = params.chat_style is ChatStyle.PLAIN
        messages.extend(_message(item, plain) for item in params.chat_history)
        return messages

    def _request_headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        key = self.settings.key_value()
        if key:
            if self.profile.auth is AuthStyle.API_KEY_HEADER:
                headers["api-key"] = key
            else:
                headers["authorization"] = f"Bearer {key}"
        headers.update(self.profile.extra_headers)
        return headers

    def _query_params(self, url: str) -> dict[str, str] | None:
        parts = urlsplit(url)
        if not self.profile.default_query or "/v1/" in parts.path:
            return None
        present = {name for name, _ in parse_qsl(parts.query)}
        extra = {name: value for name, value in self.profile.default_query if name not in present}
        return extra or None

    # ----------------------------------------------------------------- response
    async def _send(self, params: PreparedRequest, payload: dict[str, Any]) -> LLM_Response:
        url = self.api_url
        query = self._query_params(url)
        if payload.get("stream"):
            raw = await self._post_raw(payload, url=url, params=query)
            answer = self._read_stream(raw)
        else:
            body, raw = await self._post_json(payload, url=url, params=query)
            answer = self._read_body(body, raw)
        counts = normalise_usage(answer.usage, self.profile)
        stats = CallDetail(
            total_bytes_sent=raw.bytes_sent,
            total_bytes_received=raw.bytes_received,
            cost=counts.cost,
            input_tokens=counts.input_tokens,
            output_tokens=counts.output_tokens,
            cached_tokens=counts.cached_tokens,
            cache_write_tokens=counts.cache_write_tokens,
            reasoning_tokens=counts.reasoning_tokens,
            response_model=answer.model,
            finish_reason=answer.finish_reason,
            has_usage=isinstance(answer.usage, Mapping),
        )
        text = _text(answer.message.get("content"))
        calls = self._tool_calls(answer.message.get("tool_calls"), raw)
        return LLM_Response(text, None, calls, detail=stats)

    def _read_body(self, body: Any, raw: RawResponse) -> _Answer:
        if not isinstance(body, Mapping):
            raise self._format_error(f"expected a JSON object, got {type(body).__name__}", raw)
        choices = body.get("choices")
        if not choices and body.get("error"):
            raise self._format_error(f"the answer is an error: {json.dumps(body['error'])[:300]}", raw)
        first = (
            choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], Mapping) else {}
        )
        message = first.get("message")
        return _Answer(
            message=message if isinstance(message, Mapping) else {},
            finish_reason=first.get("finish_reason"),
            model=body.get("model") or None,
            usage=body.get("usage"),
        )

    def _read_stream(self, raw: RawResponse) -> _Answer:
        content_type = raw.headers.get("content-type", "")
        if "text/event-stream" not in content_type and raw.content.lstrip()[:1] == b"{":
            # The server ignored "stream": true and answered with one JSON object.
            try:
                return self._read_body(json.loads(raw.content), raw)
            except ValueError as exc:
                raise self._format_error(f"body is neither SSE nor JSON: {raw.content[:200]!r}", raw) from exc
        stream = _StreamState(self.profile.stream_usage_paths)
        try:
            for _, chunk in iter_sse_json(raw.content):
                if isinstance(chunk, Mapping) and chunk.get("error") and not chunk.get("choices"):
                    raise self._format_error(
                        f"the stream reported an error: {json.dumps(chunk['error'])[:300]}", raw
                    )
                if isinstance(chunk, Mapping):
                    stream.add(chunk)
        except ValueError as exc:
            raise self._format_error(f"a stream chunk is not JSON: {exc}", raw) from exc
        return stream.answer()

    def _tool_calls(self, calls: Any, raw: RawResponse) -> list[CallParams] | None:
        if not calls:
            return None
        if not isinstance(calls, list):
            raise MalformedToolCallError(
                f"{self.provider_key}: tool_calls is not a list: {calls!r:.200}",
                provider=self.provider_key,
                attempts=raw.attempts,
                bytes_sent=raw.bytes_sent,
                bytes_received=raw.bytes_received,
            )
        return [self._tool_call(call, position, raw) for position, call in enumerate(calls)]

    def _tool_call(self, call: Any, position: int, raw: RawResponse) -> CallParams:
        function = call.get("function") if isinstance(call, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        arguments = function.get("arguments") if isinstance(function, Mapping) else None
        kwargs: Any = arguments
        if isinstance(arguments, str):
            try:
                kwargs = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                kwargs = None
        elif arguments is None:
            kwargs = {}
        if not isinstance(name, str) or not name or not isinstance(kwargs, dict):
            raise MalformedToolCallError(
                f"{self.provider_key}: tool call #{position} needs a name and JSON-object arguments, "
                f"got {json.dumps(call, default=str)[:300]}",
                provider=self.provider_key,
                attempts=raw.attempts,
                bytes_sent=raw.bytes_sent,
                bytes_received=raw.bytes_received,
            )
        call_id = call.get("id") or f"call_{position}"
        return CallParams(call_id=str(call_id), name=name, args=[], kwargs=kwargs)


@dataclass
class _StreamState:
    """Puts streamed chunks back together into one answer."""

    usage_paths: tuple[UsagePath, ...]
    text: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None
    model: str | None = None
    usage: Any = None

    def add(self, chunk: Mapping[str, Any]) -> None:
        self.model = chunk.get("model") or self.model  # Azure's first chunk has model ""
        for path in self.usage_paths:
            usage = _dig(chunk, path)
            if isinstance(usage, Mapping):
                self.usage = usage  # totals, not increments: the last one wins
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
            delta = choice.get("delta")
            if not isinstance(delta, Mapping):
                continue
            piece = _text(delta.get("content"))
            if piece:
                self.text.append(piece)
            fragments = delta.get("tool_calls")
            for position, fragment in enumerate(fragments if isinstance(fragments, list) else ()):
                if isinstance(fragment, Mapping):
                    self._add_call_fragment(fragment, position)

    def _add_call_fragment(self, fragment: Mapping[str, Any], position: int) -> None:
        index = fragment.get("index", position)
        slot = self.calls.setdefault(index, {"id": None, "name": None, "arguments": None})
        slot["id"] = slot["id"] or fragment.get("id")
        function = fragment.get("function")
        if not isinstance(function, Mapping):
            return
        slot["name"] = slot["name"] or function.get("name")
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            slot["arguments"] = (slot["arguments"] if isinstance(slot["arguments"], str) else "") + arguments
        elif arguments is not None:
            slot["arguments"] = arguments  # Mistral may send the whole object at once

    def answer(self) -> _Answer:
        message: dict[str, Any] = {"content": "".join(self.text)}
        if self.calls:
            message["tool_calls"] = [
                {
                    "id": slot["id"],
                    "type": "function",
                    "function": {"name": slot["name"], "arguments": slot["arguments"]},
                }
                for _, slot in sorted(self.calls.items())
            ]
        return _Answer(message, self.finish_reason, self.model, self.usage)


def _text(content: Any) -> str:
    """Message text: a string, or the text parts of a list of content parts (Mistral thinking chunks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping)
            and part.get("type", "text") == "text"
            and isinstance(part.get("text"), str)
        )
    return ""


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
