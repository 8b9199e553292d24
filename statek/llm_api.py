"""The provider interface: ``LLM_API``, its response types, and the provider registry entry points.

``LLM_API.process_request`` is a template method. It validates the request, builds the payload with
``_build_request_payload`` (the very function ``preview_request`` returns), and runs the subclass's
``_process_request`` inside :func:`statek.telemetry.observe_call`, which opens the span, prices the
call, records the instruments and adds the usage to the current job. Because the wrapping lives here,
a provider added with :func:`add_provider` is metered exactly like a built-in one, and provider
modules never touch a tracer or a meter.

Token counts in :class:`LLM_Stats` have one meaning for every provider (the OpenTelemetry GenAI
convention): ``input_tokens`` is the whole prompt, cache reads and writes included; ``cached_tokens``
the part read from cache; ``output_tokens`` everything generated, reasoning included.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Literal, NamedTuple
from urllib.parse import urlsplit

import httpx

from . import telemetry
from ._http import ClientPool, RawResponse, RetryPolicy, post
from .chat import LLM_TOOLS_SCOPE, ChatHistoryItem, ChatStyle, ToolCall, ToolSpec, select_tools
from .exceptions import ConfigurationError, ResponseFormatError
from .settings import ProviderSettings, parse_bool

__all__ = [
    "LLM_API",
    "CallParams",
    "CostStatus",
    "LLM_Response",
    "LLM_Stats",
    "add_provider",
]

CostStatus = Literal["calculated", "reported", "unpriced"]
"""How a call's cost was obtained: from a price table, from the provider's own report, or not at all."""

TEMPERATURE = "TEMPERATURE"
"""Metadata key: request temperature, parsed like the ``temperature`` argument (which wins)."""
ENABLE_REASONING = "ENABLE_REASONING"
"""Metadata key: request the provider's reasoning mode (also accepted: ``REASONING``)."""
REASONING_EFFORT = "REASONING_EFFORT"
"""Metadata key: ``low`` / ``medium`` / ``high``; implies reasoning."""
REASONING_BUDGET_TOKENS = "REASONING_BUDGET_TOKENS"
"""Metadata key: thinking token budget (Anthropic ``budget_tokens``, Gemini ``thinkingBudget``)."""
MAX_TOKENS = "MAX_TOKENS"
"""Metadata key: upper bound on generated tokens."""


class LLM_Stats(NamedTuple):
    """Usage of one provider call, normalised to one meaning across providers.

    The first six fields are the public contract, in this order. ``cost`` is what the provider itself
    reported (USD, exact), ``None`` when it reports none. Bytes are request and response bodies as
    they went over the wire, over all attempts. ``cache_write_tokens`` and ``reasoning_tokens`` are
    subsets of ``input_tokens`` and ``output_tokens``; ``cache_write_1h_tokens`` is the part of the
    cache writes with a one-hour lifetime (Anthropic bills it higher). ``priced_cost`` and
    ``cost_status`` are filled in by the metering wrapper when the call is recorded.
    """

    total_bytes_sent: int
    total_bytes_received: int
    cost: Decimal | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    response_model: str | None = None
    finish_reason: str | None = None
    priced_cost: Decimal | None = None
    cost_status: CostStatus = "unpriced"


class LLM_Response(NamedTuple):
    """What a provider call returns: generated text, usage, and the tool calls the model asked for."""

    text: str
    stats: LLM_Stats
    call_requests: list[ToolCall] | None


@dataclass(frozen=True, slots=True)
class CallParams:
    """A validated request, independent of wire format. Built once per call by ``LLM_API``."""

    model: str
    system_prompt: str | None
    chat_history: tuple[ChatHistoryItem, ...]
    tools: tuple[ToolSpec, ...]
    chat_style: ChatStyle
    temperature: float | None
    enable_reasoning: bool
    reasoning_effort: str | None
    reasoning_budget_tokens: int | None
    max_tokens: int | None
    metadata: Mapping[str, Any]


class LLM_API(ABC):
    """Base class of every provider integration.

    Subclasses implement :meth:`_build_request_payload` (pure: no I/O) and :meth:`_process_request`
    (send the payload, parse text, tool calls and usage into an :class:`LLM_Response`). They send
    with :meth:`_post_json`, which pools connections per event loop, retries, and counts wire bytes.

    Class attributes describe the provider for telemetry and pricing: ``provider_key`` (canonical
    registry key), ``genai_provider_name`` (OpenTelemetry ``gen_ai.provider.name``) and
    ``pricing_provider`` (the price-table provider whose rows apply; defaults to ``provider_key``).
    The registry uses ``default_api_url`` when no URL is configured and refuses to build a provider
    with ``requires_api_key`` and no key.
    """

    provider_key: str = "CUSTOM"
    genai_provider_name: ClassVar[str] = "openai"
    pricing_provider: ClassVar[str | None] = None
    default_api_url: ClassVar[str | None] = None
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
    ) -> None:
        self.settings = settings or ProviderSettings()
        self.model = model
        if provider_key is not None:
            self.provider_key = provider_key.upper()
        self.retry = retry or RetryPolicy()
        self._clients = ClientPool(http_client, timeout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(provider={self.provider_key!r}, url={self.settings.api_url!r}, model={self.model!r})"

    # ----------------------------------------------------------------- public contract
    def preview_request(
        self,
        system_prompt: str | None = None,
        model: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        available_tools: Iterable[Callable[..., Any]] | None = None,
        chat_history: Iterable[ChatHistoryItem] | None = None,
        chat_style: ChatStyle | str | None = None,
        temperature: float | str | None = None,
        enable_reasoning: bool = False,
    ) -> dict[str, Any]:
        """The exact JSON body :meth:`process_request` would send for these arguments. No I/O."""
        params = self._prepare(
            system_prompt,
            model,
            metadata,
            available_tools,
            chat_history,
            chat_style,
            temperature,
            enable_reasoning,
        )
        return self._build_request_payload(params)

    async def process_request(
        self,
        system_prompt: str | None = None,
        model: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        available_tools: Iterable[Callable[..., Any]] | None = None,
        chat_history: Iterable[ChatHistoryItem] | None = None,
        chat_style: ChatStyle | str | None = None,
        temperature: float | str | None = None,
        enable_reasoning: bool = False,
    ) -> LLM_Response:
        """Send one request and return text, normalised usage and tool calls.

        Raises :class:`~statek.exceptions.ConfigurationError` (a ``ValueError``) for bad arguments,
        before anything is sent, and :class:`~statek.exceptions.ProviderError` when the call fails.
        Every call, successful or not, is metered.
        """
        params = self._prepare(
            system_prompt,
            model,
            metadata,
            available_tools,
            chat_history,
            chat_style,
            temperature,
            enable_reasoning,
        )
        payload = self._build_request_payload(params)
        return await telemetry.observe_call(self, params, lambda: self._process_request(params, payload))

    # ----------------------------------------------------------------- static helpers (seed)
    @staticmethod
    def get(provider_name: str | None = None, model: str | None = None, **kwargs: Any) -> LLM_API:
        """The provider registered as ``provider_name`` (default: ``STATEK_DEFAULT_LLM_API_PROVIDER``).

        ``kwargs`` override settings (``api_url``, ``api_key``, ...) and constructor arguments.
        Raises ``ValueError`` for an unknown provider or missing settings, naming what to set.
        """
        from .providers.registry import get_provider

        return get_provider(provider_name, model, **kwargs)

    @staticmethod
    def parse_temperature(value: object) -> float | None:
        """``None`` stays ``None``; a number (or numeric string) in [0.0, 1.0] becomes a float."""
        if value is None:
            return None
        if isinstance(value, bool):
            raise ConfigurationError(f"temperature must be a number from 0.0 to 1.0, not {value!r}")
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ConfigurationError(f"temperature must be a number from 0.0 to 1.0, not {value!r}") from None
        if not 0.0 <= number <= 1.0:
            raise ConfigurationError(f"temperature must be from 0.0 to 1.0, got {number}")
        return number

    @staticmethod
    def require_model(model: str | None) -> str:
        """``model`` itself; ``ValueError`` when it is missing or blank."""
        if not model or not str(model).strip():
            raise ConfigurationError(
                "model is required: pass model=... to process_request, or a default model to LLM_API.get"
            )
        return str(model).strip()

    @staticmethod
    def parse_enable_reasoning(value: object) -> bool:
        """Bools pass through; true/1/yes/on (any case) are ``True``; anything else ``False``. Never raises."""
        return parse_bool(value)

    # ----------------------------------------------------------------- for subclasses
    @abstractmethod
    def _build_request_payload(self, params: CallParams) -> dict[str, Any]:
        """The JSON body for ``params``. Must be pure: same input, same output, no I/O."""

    @abstractmethod
    async def _process_request(self, params: CallParams, payload: dict[str, Any]) -> LLM_Response:
        """Send ``payload`` and parse the answer. Usage must already be normalised."""

    @property
    def api_url(self) -> str:
        """The endpoint requests go to; ``ConfigurationError`` when none is configured."""
        if not self.settings.api_url:
            raise ConfigurationError(
                f"no API URL for provider {self.provider_key}: set {self.provider_key}_API_URL "
                "or pass api_url=... to LLM_API.get / add_provider"
            )
        return self.settings.api_url

    def server_address(self) -> tuple[str | None, int | None]:
        """Host and port of the endpoint, for the ``server.address`` / ``server.port`` attributes."""
        if not self.settings.api_url:
            return None, None
        parts = urlsplit(self.settings.api_url)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
        return parts.hostname, port

    def _request_headers(self) -> dict[str, str]:
        """Headers for every request; the default is bearer auth when a key is configured."""
        headers = {"content-type": "application/json"}
        key = self.settings.key_value()
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    async def _post_raw(
        self,
        payload: Mapping[str, Any],
        *,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> RawResponse:
        """POST ``payload`` as compact JSON with retries; return the 2xx answer unparsed (e.g. a stream)."""
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        return await post(
            self._clients.get(),
            url or self.api_url,
            body=body,
            headers=headers if headers is not None else self._request_headers(),
            provider=self.provider_key,
            retry=self.retry,
            on_retry=telemetry.current_retry_hook(),
            params=params,
        )

    async def _post_json(
        self,
        payload: Mapping[str, Any],
        *,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> tuple[Any, RawResponse]:
        """Like :meth:`_post_raw`, and parse the body as JSON; return it with the raw exchange."""
        raw = await self._post_raw(payload, url=url, headers=headers, params=params)
        try:
            return json.loads(raw.content), raw
        except ValueError as exc:
            raise self._format_error(
                f"answered HTTP {raw.status_code} with a body that is not JSON: {raw.content[:200]!r}", raw
            ) from exc

    def _format_error(self, message: str, raw: RawResponse) -> ResponseFormatError:
        """A :class:`ResponseFormatError` for an answer that arrived but cannot be read."""
        return ResponseFormatError(
            f"{self.provider_key}: {message}",
            provider=self.provider_key,
            attempts=raw.attempts,
            bytes_sent=raw.bytes_sent,
            bytes_received=raw.bytes_received,
        )

    async def aclose(self) -> None:
        """Close this instance's pooled HTTP client for the running event loop."""
        await self._clients.aclose()

    # ----------------------------------------------------------------- request preparation
    def _prepare(
        self,
        system_prompt: str | None,
        model: str | None,
        metadata: Mapping[str, Any] | None,
        available_tools: Iterable[Callable[..., Any]] | None,
        chat_history: Iterable[ChatHistoryItem] | None,
        chat_style: ChatStyle | str | None,
        temperature: float | str | None,
        enable_reasoning: bool,
    ) -> CallParams:
        meta: Mapping[str, Any] = metadata or {}
        style = ChatStyle(
            chat_style.lower() if isinstance(chat_style, str) else chat_style or ChatStyle.NATIVE
        )
        if temperature is None:
            temperature = meta.get(TEMPERATURE)
        effort = meta.get(REASONING_EFFORT)
        budget = meta.get(REASONING_BUDGET_TOKENS)
        reasoning = (
            self.parse_enable_reasoning(enable_reasoning)
            or self.parse_enable_reasoning(meta.get(ENABLE_REASONING))
            or self.parse_enable_reasoning(meta.get("REASONING"))
            or bool(effort)
            or bool(budget)
        )
        tools = (
            ()
            if style is ChatStyle.PLAIN
            else select_tools(list(available_tools or ()), meta.get(LLM_TOOLS_SCOPE))
        )
        return CallParams(
            model=self.require_model(model or self.model),
            system_prompt=system_prompt,
            chat_history=tuple(chat_history or ()),
            tools=tools,
            chat_style=style,
            temperature=self.parse_temperature(temperature),
            enable_reasoning=reasoning,
            reasoning_effort=str(effort).lower() if effort else None,
            reasoning_budget_tokens=_positive_int(budget, REASONING_BUDGET_TOKENS),
            max_tokens=_positive_int(meta.get(MAX_TOKENS), MAX_TOKENS),
            metadata=meta,
        )


def _positive_int(value: object, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ConfigurationError(f"metadata {name} must be a positive integer, not {value!r}") from None
    if number <= 0:
        raise ConfigurationError(f"metadata {name} must be a positive integer, not {number}")
    return number


def add_provider(name: str, llm_api_impl: type[LLM_API] | None = None, **kwargs: Any) -> None:
    """Register a custom provider under ``name`` (case-insensitive).

    ``api_url``, ``api_key``, ``response_format_file`` and ``use_prompt_caching`` become the
    provider's settings; other keyword arguments go to ``llm_api_impl``'s constructor. Without
    ``llm_api_impl`` the OpenAI-compatible default is used. Raises ``ValueError`` when ``name`` is a
    built-in key or alias, or already registered.
    """
    from .providers.registry import add_provider as register

    register(name, llm_api_impl, **kwargs)


_PROVIDER_MODULES = ("statek.providers.catalog", "statek.providers.anthropic", "statek.providers.vertex")


def __getattr__(name: str) -> Any:
    """The built-in provider classes, importable from here as the contract documents.

    They live in ``statek.providers`` (which imports this module), so they are resolved on first
    access instead of at import time.
    """
    if name.endswith("_API"):
        import importlib

        for module_name in _PROVIDER_MODULES:
            provider = getattr(importlib.import_module(module_name), name, None)
            if provider is not None:
                return provider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
