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

import inspect
import json
from abc import ABC
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

import httpx

from . import telemetry
from ._http import ClientPool, RawResponse, RetryPolicy, exchange, json_body, read_whole
from .chat import LLM_TOOLS_SCOPE, ChatHistoryItem, ChatStyle, ToolSpec, select_tools
from .exceptions import ConfigurationError, ResponseFormatError
from .secrets import scrub
from .settings import ProviderSettings
from .streaming import LLM_Stream
from .types import CallDetail, CallParams, CostStatus, LLM_Response, LLM_Stats
from .wire.json_text import parse_json

__all__ = [
    "LLM_API",
    "CallDetail",
    "CallParams",
    "CostStatus",
    "LLM_Response",
    "LLM_Stats",
    "PreparedRequest",
    "add_provider",
]

TEMPERATURE = "TEMPERATURE"
"""Metadata key: request temperature, parsed like the ``temperature`` argument (which wins)."""
ENABLE_REASONING = "ENABLE_REASONING"
"""Metadata key: request the provider's reasoning mode (also accepted: ``REASONING``). Parsed by
:meth:`LLM_API.parse_enable_reasoning`; a value ``low`` / ``medium`` / ``high`` also sets the effort."""
REASONING_EFFORT = "REASONING_EFFORT"
"""Metadata key: ``low`` / ``medium`` / ``high``; implies reasoning."""
REASONING_BUDGET_TOKENS = "REASONING_BUDGET_TOKENS"
"""Metadata key: thinking token budget (Anthropic ``budget_tokens``, Gemini ``thinkingBudget``)."""
MAX_TOKENS = "MAX_TOKENS"
"""Metadata key: upper bound on generated tokens."""

SEED_HOOK_KEYWORDS = (
    "system_prompt",
    "model",
    "metadata",
    "tools",
    "chat_history",
    "chat_style",
    "temperature",
    "enable_reasoning",
)
"""The keyword arguments the original STATEK passes to ``_build_request_payload`` and ``_process_request``."""

_REASONING_OFF = frozenset({"", "FALSE", "0", "NO", "OFF", "DISABLED", "NONE"})
_EFFORTS = frozenset({"minimal", "low", "medium", "high"})


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A validated request, independent of wire format. Built once per call by ``LLM_API``.

    ``tools`` are the selected tools' specifications and ``tool_functions`` the same tools as the
    callables they came from (what the seed's hooks receive as ``tools``).
    """

    model: str
    system_prompt: str | None
    chat_history: tuple[ChatHistoryItem, ...]
    tools: tuple[ToolSpec, ...]
    tool_functions: tuple[Callable[..., Any], ...]
    chat_style: ChatStyle
    temperature: float | None
    enable_reasoning: bool
    reasoning_effort: str | None
    reasoning_budget_tokens: int | None
    max_tokens: int | None
    metadata: Mapping[str, Any]

    def seed_kwargs(self) -> dict[str, Any]:
        """The keyword arguments the original STATEK passed to its subclass hooks, for this request."""
        return {
            "system_prompt": self.system_prompt,
            "model": self.model,
            "metadata": dict(self.metadata),
            "tools": list(self.tool_functions),
            "chat_history": list(self.chat_history),
            "chat_style": self.chat_style,
            "temperature": self.temperature,
            "enable_reasoning": self.enable_reasoning,
        }


def _not_json(content: bytes, exc: BaseException) -> str:
    """Why ``content`` is not JSON, where, and how it ends: a body cut off mid-answer starts like
    JSON, so its start alone would look valid."""
    if isinstance(exc, RecursionError):
        reason = "nested too deeply"
    elif isinstance(exc, json.JSONDecodeError):
        reason = f"{exc.msg} at character {exc.pos}"
    else:
        reason = type(exc).__name__
    if not content:
        return f"{reason}; the body is empty"
    # Scrubbed before it is cut: a tail cut from the raw bytes could show part of a key.
    window = scrub(repr(content[-4096:]))
    tail = window if len(window) <= 80 else "…" + window[-72:]
    return f"{len(content):,} bytes ending {tail} ({reason})"


class LLM_API(ABC):
    """Base class of every provider integration.

    A subclass implements one of two hook pairs:

    * the seed's, as the original STATEK calls them: ``_build_request_payload(**request)`` (pure: the
      JSON body, no I/O) and ``async _process_request(**request)`` (send it and return an
      :class:`LLM_Response`), each called with the keyword arguments ``system_prompt``, ``model``,
      ``metadata``, ``tools`` (the selected tool callables), ``chat_history``, ``chat_style``,
      ``temperature`` and ``enable_reasoning``;
    * statek's own, used by the built-in providers: ``_build_payload(request)`` and
      ``async _send(request, payload)``, which receive one :class:`PreparedRequest`.

    The most derived definition wins, so a user subclass of a built-in provider may override a seed
    hook and call ``super()`` with the same keywords. A hook whose signature fits neither form is refused
    when the class is created. Either way the call is metered by :meth:`process_request`. Built-in
    providers send with :meth:`_post_json`, which pools connections per event loop, retries, and counts
    wire bytes.

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
    output_cap_wire: ClassVar[str | None] = None
    """Where a budget's output cap goes in this provider's payload (``chat_completions``, ``responses``,
    ``anthropic``, ``gemini``: :mod:`statek.executors.output_cap`); ``None``: it cannot be set."""
    _seed_build: ClassVar[bool | None] = None
    _seed_send: ClassVar[bool | None] = None
    _call_sites: Any = None
    """The metering path's :class:`~statek.call_record.CallSite` of each model (its own cache)."""
    _parses_plainly: ClassVar[bool] = True
    """Whether the class keeps the base ``parse_temperature`` and ``parse_enable_reasoning`` (public
    hooks a subclass may override, e.g. with a default temperature): only then may :meth:`_prepare`
    skip them for a call that sets neither. Worked out when the class is made, like ``_seed_send``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("_build_request_payload", "_process_request"):
            if name in vars(cls):
                _check_hook(cls, name, (None,), dict.fromkeys(SEED_HOOK_KEYWORDS), "seed")
        for name, positional in (("_build_payload", (None, None)), ("_send", (None, None, None))):
            if name in vars(cls):
                _check_hook(cls, name, positional, {}, "statek")
        cls._seed_build = _uses_seed_hook(cls, "_build_request_payload", "_build_payload")
        cls._seed_send = _uses_seed_hook(cls, "_process_request", "_send")
        cls._parses_plainly = (
            cls.parse_temperature is LLM_API.parse_temperature
            and cls.parse_enable_reasoning is LLM_API.parse_enable_reasoning
        )

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
        check_implementation(type(self))
        self.settings = settings or ProviderSettings()
        self.model = model
        if provider_key is not None:
            self.provider_key = provider_key.upper()
        self.retry = retry or RetryPolicy()
        self._clients = ClientPool(http_client, timeout)

    def __repr__(self) -> str:
        url = self.settings.api_url
        return scrub(
            f"{type(self).__name__}(provider={self.provider_key!r}, url={url!r}, model={self.model!r})"
        )

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
        request = self._prepare(
            system_prompt,
            model,
            metadata,
            available_tools,
            chat_history,
            chat_style,
            temperature,
            enable_reasoning,
        )
        return self._payload(request)

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
        before anything is sent, and :class:`~statek.exceptions.ProviderError` when the call fails
        (HTTP failures are also ``httpx.HTTPError``). Every call, successful or not, is metered.
        """
        request = self._prepare(
            system_prompt,
            model,
            metadata,
            available_tools,
            chat_history,
            chat_style,
            temperature,
            enable_reasoning,
        )
        if self._seed_send:
            return await telemetry.observe_call(
                self, request, lambda: self._process_request(**request.seed_kwargs())
            )
        payload = self._build_payload(request) if self._seed_build is False else self._payload(request)
        return await telemetry.observe_call(self, request, payload=payload)

    def stream_request(
        self,
        system_prompt: str | None = None,
        model: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        available_tools: Iterable[Callable[..., Any]] | None = None,
        chat_history: Iterable[ChatHistoryItem] | None = None,
        chat_style: ChatStyle | str | None = None,
        temperature: float | str | None = None,
        enable_reasoning: bool = False,
    ) -> LLM_Stream:
        """Like :meth:`process_request`, but the text arrives as it is generated.

        ``async for piece in api.stream_request(...)`` yields text pieces; afterwards the stream's
        ``response`` is the :class:`LLM_Response` ``process_request`` would have returned, metered the
        same way (plus the time to the first chunk). Bad arguments raise here, before anything is sent.
        See :mod:`statek.streaming`.
        """
        request = self._prepare(
            system_prompt,
            model,
            metadata,
            available_tools,
            chat_history,
            chat_style,
            temperature,
            enable_reasoning,
        )
        payload = self._build_payload(request) if self._seed_build is False else self._payload(request)
        return LLM_Stream(
            self,
            lambda emit: telemetry.observe_call(
                self, request, partial(self._stream, request, payload, emit), payload=payload
            ),
        )

    async def _stream(
        self, request: PreparedRequest, payload: dict[str, Any], emit: Callable[[str], None]
    ) -> LLM_Response:
        """statek's hook for :meth:`stream_request`: send ``payload`` asking for a stream, pass each
        text piece to ``emit``, return the whole answer. The default answers whole and emits its text
        once; the built-in providers stream (see :func:`statek.streaming.stream_answer`)."""
        if self._seed_send:
            response = await self._process_request(**request.seed_kwargs())
        else:
            response = await self._send(request, payload)
        if not isinstance(response, LLM_Response):
            response = LLM_Response(*response)
        if response.text:
            emit(response.text)
        return response

    # ----------------------------------------------------------------- static helpers (seed)
    @staticmethod
    def get(provider_name: str | None = None, model: str | None = None, **kwargs: Any) -> LLM_API:
        """The provider registered as ``provider_name``, built once per distinct set of arguments.

        Without a name: ``DEFAULT_LLM_API_PROVIDER`` (or ``STATEK_DEFAULT_LLM_API_PROVIDER``; the
        environment or a ``.env`` file in the working directory), else ``OPENROUTER``. ``kwargs``
        override settings (``api_url``, ``api_key``, ...) and go to the constructor; for
        OpenAI-compatible providers, keywords the constructor does not know become payload fields
        (``max_tokens=100`` sends ``"max_tokens": 100``). The same arguments (and settings) return the
        same instance; :func:`add_provider` clears the cache. Raises ``ValueError`` for an unknown
        provider or missing settings, naming what to set.
        """
        return _directory().get_provider(provider_name, model, **kwargs)

    @staticmethod
    def parse_temperature(value: object) -> float | None:
        """``None`` stays ``None``; anything else becomes a float in [0.0, 1.0] or raises ``ValueError``."""
        if value is None:
            return None
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"TEMPERATURE must be between 0.0 and 1.0, got {value!r} (not a number)"
            ) from None
        if not 0.0 <= number <= 1.0:
            raise ConfigurationError(f"TEMPERATURE must be between 0.0 and 1.0, got {value}")
        return number

    @staticmethod
    def require_model(model: str | None) -> str:
        """``model`` itself; ``ValueError`` when it is missing or blank."""
        name = str(model).strip() if model else ""
        if not name:
            raise ConfigurationError(
                "model must be provided to process_request "
                "(pass model=... or give LLM_API.get a default model)"
            )
        return name

    @staticmethod
    def parse_enable_reasoning(value: object) -> bool:
        """``None`` is ``False``; a string is ``False`` only when, stripped and upper-cased, it is one of
        ``""``, ``FALSE``, ``0``, ``NO``, ``OFF``, ``DISABLED``, ``NONE``: every other string (``"high"``,
        ``"auto"``, ``"2"``) is ``True``. Other values by their truth. Never raises."""
        if value is None:
            return False
        if isinstance(value, str):
            return value.strip().upper() not in _REASONING_OFF
        return bool(value)

    # ----------------------------------------------------------------- hooks
    def _build_request_payload(self, **request: Any) -> dict[str, Any]:
        """The seed's hook: the JSON body for these keyword arguments. Pure: no I/O.

        For statek's built-in providers this reads the keywords back into a :class:`PreparedRequest`
        and calls :meth:`_build_payload`, so a subclass may override it and call ``super()``.
        """
        return self._build_payload(self._request_from_seed(request))

    async def _process_request(self, **request: Any) -> LLM_Response:
        """The seed's hook: send the request and return the answer, usage already normalised."""
        prepared = self._request_from_seed(request)
        return await self._send(prepared, self._payload(prepared))

    def _build_payload(self, request: PreparedRequest) -> dict[str, Any]:
        """statek's hook: the JSON body for ``request``. Pure: same input, same output, no I/O."""
        return self._build_request_payload(**request.seed_kwargs())

    async def _send(self, request: PreparedRequest, payload: dict[str, Any]) -> LLM_Response:
        """statek's hook: send ``payload`` and parse the answer into an :class:`LLM_Response`."""
        return await self._process_request(**request.seed_kwargs())

    def _payload(self, request: PreparedRequest) -> dict[str, Any]:
        """The JSON body of ``request`` by whichever build hook the class uses (statek's own, when
        ``_seed_build`` is ``False``, is also called directly on the per-call path)."""
        if self._seed_build:
            return self._build_request_payload(**request.seed_kwargs())
        if self._seed_build is None:
            raise NotImplementedError(
                f"{type(self).__name__} implements no _build_request_payload, so it cannot preview a request"
            )
        return self._build_payload(request)

    def _request_from_seed(self, request: Mapping[str, Any]) -> PreparedRequest:
        unknown = set(request) - set(SEED_HOOK_KEYWORDS)
        if unknown:
            raise TypeError(f"unexpected hook arguments: {', '.join(sorted(unknown))}")
        return self._prepare(
            request.get("system_prompt"),
            request.get("model"),
            request.get("metadata"),
            request.get("tools"),
            request.get("chat_history"),
            request.get("chat_style"),
            request.get("temperature"),
            request.get("enable_reasoning", False),
            tools_selected=True,
        )

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

    def _post_raw(
        self,
        payload: Mapping[str, Any],
        *,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Awaitable[RawResponse]:
        """POST ``payload`` as compact JSON with retries; await the 2xx answer unparsed (e.g. a stream).

        Not a coroutine function itself (``await api._post_raw(...)`` as before): it returns the
        exchange's coroutine, so the call path has one layer fewer to resume at each suspension."""
        return exchange(
            self._clients.get(),
            url or self.api_url,
            body=json_body(payload),
            headers=headers if headers is not None else self._request_headers(),
            provider=self.provider_key,
            retry=self.retry,
            read=read_whole,
            on_retry=telemetry.report_retry,
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
        return self._json_of(raw), raw

    def _json_of(self, raw: RawResponse) -> Any:
        """The body of ``raw`` parsed as JSON; :class:`ResponseFormatError` when it is not JSON."""
        try:
            return parse_json(raw.content)
        except (ValueError, RecursionError) as exc:
            raise self._format_error(
                f"answered HTTP {raw.status_code} with a body that is not JSON: {_not_json(raw.content, exc)}",
                raw,
            ) from exc

    def _format_error(self, message: str, raw: RawResponse) -> ResponseFormatError:
        """A :class:`ResponseFormatError` for an answer that arrived but cannot be read; it keeps the
        answer's bytes and the exchange's counts."""
        return ResponseFormatError(
            f"{self.provider_key}: {message}",
            content=raw.content,
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
        *,
        tools_selected: bool = False,
    ) -> PreparedRequest:
        if (
            chat_style is None
            and temperature is None
            and not (metadata or available_tools or enable_reasoning)
            and self._parses_plainly
        ):
            # The common call: no metadata, tools, chat style, temperature or reasoning switch, so
            # every field but these three is at its default (as the general path below makes it).
            return PreparedRequest(
                model=self.require_model(model or self.model),
                system_prompt=system_prompt,
                chat_history=tuple(chat_history) if chat_history else (),
                tools=(),
                tool_functions=(),
                chat_style=ChatStyle.NATIVE,
                temperature=None,
                enable_reasoning=False,
                reasoning_effort=None,
                reasoning_budget_tokens=None,
                max_tokens=None,
                metadata={},
            )
        meta: dict[str, Any] = dict(metadata) if metadata else {}
        if chat_style is None:
            style = ChatStyle.NATIVE
        else:
            style = ChatStyle(chat_style.lower() if isinstance(chat_style, str) else chat_style)
        effort = budget = switch = None
        if meta:
            if temperature is None:
                temperature = meta.get(TEMPERATURE)
            switch = meta.get(ENABLE_REASONING, meta.get("REASONING"))
            effort = meta.get(REASONING_EFFORT)
            if not effort and isinstance(switch, str) and switch.strip().lower() in _EFFORTS:
                effort = switch.strip().lower()
            budget = meta.get(REASONING_BUDGET_TOKENS)
        reasoning = (
            self.parse_enable_reasoning(enable_reasoning)
            or self.parse_enable_reasoning(switch)
            or bool(effort)
            or bool(budget)
        )
        tools: tuple[ToolSpec, ...] = ()
        tool_functions: tuple[Callable[..., Any], ...] = ()
        functions = list(available_tools) if available_tools else []
        if style is not ChatStyle.PLAIN and (functions or meta.get(LLM_TOOLS_SCOPE) is not None):
            if tools_selected:
                tools = (
                    select_tools(functions, "+" + ",".join(_tool_name(f) for f in functions))
                    if functions
                    else ()
                )
            else:
                tools = select_tools(functions, meta.get(LLM_TOOLS_SCOPE))
            chosen = {spec.name for spec in tools}
            tool_functions = tuple(f for f in functions if _tool_name(f) in chosen)
        return PreparedRequest(
            model=self.require_model(model or self.model),
            system_prompt=system_prompt,
            chat_history=tuple(chat_history) if chat_history else (),
            tools=tools,
            tool_functions=tool_functions,
            chat_style=style,
            temperature=self.parse_temperature(temperature),
            enable_reasoning=reasoning,
            reasoning_effort=str(effort).lower() if effort else None,
            reasoning_budget_tokens=None
            if budget is None
            else _positive_int(budget, REASONING_BUDGET_TOKENS),
            max_tokens=_positive_int(meta[MAX_TOKENS], MAX_TOKENS) if MAX_TOKENS in meta else None,
            metadata=meta,
        )


def _tool_name(function: Callable[..., Any]) -> str:
    return str(getattr(function, "__name__", ""))


def _uses_seed_hook(cls: type, seed: str, internal: str) -> bool | None:
    """``True`` when the most derived of the two hooks is the seed's, ``False`` when it is statek's,
    ``None`` when the class defines neither (below :class:`LLM_API`)."""
    for klass in cls.__mro__:
        if klass is LLM_API:
            return None
        if seed in vars(klass):
            return True
        if internal in vars(klass):
            return False
    return None


def _check_hook(
    cls: type, name: str, positional: tuple[None, ...], keywords: dict[str, None], form: str
) -> None:
    hook = vars(cls)[name]
    try:
        inspect.signature(hook).bind(*positional, **keywords)
    except TypeError as exc:
        seed = ", ".join(f"{k}=" for k in SEED_HOOK_KEYWORDS)
        raise TypeError(
            f"{cls.__qualname__}.{name}{inspect.signature(hook)} cannot be called the {form} way ({exc}). "
            f"Implement either the seed's hooks, _build_request_payload(self, **request) and "
            f"async _process_request(self, **request), called with {seed}; or statek's, "
            "_build_payload(self, request) and async _send(self, request, payload)."
        ) from None


def check_implementation(cls: type[LLM_API]) -> None:
    """Raise ``TypeError`` unless ``cls`` implements a way to send a request (either hook pair)."""
    if cls._seed_send is None and cls._seed_build is None:
        raise TypeError(
            f"{cls.__qualname__} implements no provider hooks: define _build_request_payload(self, **request) "
            "and async _process_request(self, **request) (the seed's extension API)"
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
    _directory().add_provider(name, llm_api_impl, **kwargs)


class ProviderDirectory(Protocol):
    """What ``LLM_API.get``, :func:`add_provider` and this module's provider-class attributes need of
    the provider registry (:mod:`statek.providers.registry`, which imports this module and plugs
    itself in with :func:`use_provider_directory` when it is imported, as ``import statek`` does)."""

    def get_provider(self, provider_name: str | None, model: str | None, **kwargs: Any) -> LLM_API: ...

    def add_provider(self, name: str, llm_api_impl: type[LLM_API] | None, **kwargs: Any) -> None: ...

    def provider_class(self, class_name: str) -> type[LLM_API] | None: ...


_provider_directory: ProviderDirectory | None = None


def use_provider_directory(directory: ProviderDirectory) -> None:
    """Make ``directory`` the registry behind ``LLM_API.get`` and :func:`add_provider`."""
    global _provider_directory
    _provider_directory = directory


def _directory() -> ProviderDirectory:
    directory = _provider_directory
    if directory is None:  # only while statek itself is being imported
        raise ConfigurationError("statek's provider registry is not loaded yet: import statek first")
    return directory


def __getattr__(name: str) -> Any:
    """The built-in provider classes, importable from here as the contract documents.

    They live in ``statek.providers`` (which imports this module), so the registry resolves them.
    """
    if name.endswith("_API") and _provider_directory is not None:
        provider = _provider_directory.provider_class(name)
        if provider is not None:
            return provider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
