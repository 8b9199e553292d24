"""The estimate of a call before it is sent: prompt tokens, output cap, and their price.

Used by budgets (:mod:`statek.executors.budget`) to hold what a call may cost while it is in flight.
It runs on every budgeted call, so it is cheap: a few ``len`` calls and integer arithmetic, no
tokenizer, no JSON encoding of the prompt, no ``Decimal``.

* **Prompt tokens**: the characters of the system prompt, every message, the tool calls in the
  history and the tools' schemas, divided by :data:`CHARS_PER_TOKEN` (rounded up), plus
  :data:`MESSAGE_OVERHEAD_TOKENS` per message and for the system prompt. For a raw JSON body
  (:func:`estimate_request_body`): the body's length over :data:`CHARS_PER_TOKEN`, JSON keys included.
* **Output tokens**: the request's ``MAX_TOKENS``; else the provider's own default cap
  (``default_max_tokens``: Anthropic, grown by a thinking budget as its adapter grows it); else
  :data:`DEFAULT_OUTPUT_TOKENS`. For a body: ``max_completion_tokens``, ``max_output_tokens``,
  ``max_tokens`` or ``generationConfig.maxOutputTokens``.
* **Cache**: no cache read is assumed unless the caller passes ``cached_tokens``; with prompt
  caching switched on (``use_prompt_caching``) the whole prompt is priced as a cache write, the
  dearer case.
* **Price**: the price table's rate for (pricing provider, model), the same rate the recorded cost
  uses, as integer pico-dollars (10^-12 USD) per token, rounded up. Rates are cached per model and
  looked up again when the price table changes and at least every :data:`RATE_TTL_SECONDS` (so a
  dated ``VALID_FROM`` row takes effect). A prompt above :data:`LONG_PROMPT_TOKENS` is priced by
  the table in full, so long-context tiers (Gemini, Anthropic above 200k tokens) apply.

Known error (``docs/budgets.md``): English prose runs about four characters a token, so the prompt
estimate is close for it and high for JSON-heavy prompts; code, numbers and non-Latin scripts run
fewer characters a token and can be underestimated up to about 2x. Images and files are not counted.
The output is estimated at its cap, so a call usually costs less than its estimate; a model that
ignores the cap, or reasoning with no cap above :data:`DEFAULT_OUTPUT_TOKENS`, costs more.
"""

from __future__ import annotations

import json
import time
from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from ..metering import default_registry, price_call
from ..types import CallDetail

if TYPE_CHECKING:
    from ..llm_api import LLM_API, PreparedRequest

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_OUTPUT_TOKENS",
    "LONG_PROMPT_TOKENS",
    "MESSAGE_OVERHEAD_TOKENS",
    "PICO",
    "RATE_TTL_SECONDS",
    "CallEstimate",
    "call_numbers",
    "estimate_call",
    "estimate_request_body",
    "from_pico",
    "to_pico",
]

CHARS_PER_TOKEN = 4
"""Characters (or body bytes) per token in the prompt estimate: the original STATEK's own rule."""
MESSAGE_OVERHEAD_TOKENS = 8
"""Tokens added per message (and once for the system prompt) for the chat template's role markers."""
DEFAULT_OUTPUT_TOKENS = 4096
"""Output tokens assumed when neither the request nor the provider caps the answer."""
LONG_PROMPT_TOKENS = 32_000
"""Above this many prompt tokens the table prices the estimate in full (long-context tiers)."""
RATE_TTL_SECONDS = 60.0
"""How long a model's cached rate is used before it is looked up again (dated price rows)."""
PICO = 12
"""Budgets keep money as integer pico-dollars: ``usd = pico * 10**-12``, exact for every price with
up to six decimals per million tokens (a finer price is rounded up)."""


def to_pico(amount: Decimal) -> int:
    """``amount`` USD as integer pico-dollars, rounded up (a budget never undercounts spend)."""
    return int(amount.scaleb(PICO).to_integral_value(ROUND_CEILING))


def from_pico(pico: int) -> Decimal:
    """Integer pico-dollars as exact USD."""
    return Decimal(pico).scaleb(-PICO)


class CallEstimate(NamedTuple):
    """What a call is expected to use, before it is sent. ``tokens`` is input plus output;
    ``pico_usd`` the cost in pico-dollars, ``None`` when the model has no price (never ``0`` for
    "unknown"). Build one with :meth:`of`."""

    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    tokens: int
    pico_usd: int | None

    @classmethod
    def of(
        cls, provider: str, model: str, input_tokens: int, output_tokens: int, usd: Decimal | None
    ) -> CallEstimate:
        """An estimate of these tokens at this cost in USD (``None``: unpriced)."""
        pico = None if usd is None else to_pico(usd)
        return cls(provider, model, input_tokens, output_tokens, input_tokens + output_tokens, pico)

    @property
    def usd(self) -> Decimal | None:
        """The estimated cost in USD (exact), ``None`` when unpriced."""
        return None if self.pico_usd is None else from_pico(self.pico_usd)


# ----------------------------------------------------------------------------- price
def _usage(input_tokens: int, cached: int, cache_write: int, output_tokens: int) -> CallDetail:
    """The usage the price table prices for an estimate: no bytes, no reported cost."""
    return CallDetail(0, 0, None, input_tokens, output_tokens, cached, cache_write)


_UNIT_PROBES = (_usage(1, 0, 0, 0), _usage(1, 1, 0, 0), _usage(1, 0, 1, 0), _usage(0, 0, 0, 1))
_Rate = tuple[int, int, int, int] | None  # pico-USD per token: input, cache read, cache write, output
_MISSING: Any = object()


class _RateCache:
    """Each model's rate, valid for one price table (any change swaps the table, which empties the
    cache at once) and for at most :data:`RATE_TTL_SECONDS` (dated rows)."""

    __slots__ = ("expires", "rates", "table")

    def __init__(self) -> None:
        self.rates: dict[tuple[str, str], _Rate] = {}
        self.table: object = None
        self.expires = 0.0

    def get(self, pricing_provider: str, model: str) -> _Rate:
        table = default_registry().table
        if table is not self.table or time.monotonic() >= self.expires:
            self.rates, self.table, self.expires = {}, table, time.monotonic() + RATE_TTL_SECONDS
        rate = self.rates.get((pricing_provider, model), _MISSING)
        if rate is _MISSING:
            rate = self.rates[(pricing_provider, model)] = _look_up_rate(pricing_provider, model)
        return rate  # type: ignore[no-any-return]


def _table_price(pricing_provider: str, model: str, usage: CallDetail) -> Decimal | None:
    cost = price_call(pricing_provider, model, usage)
    return cost.amount if cost.status == "calculated" else None


def _look_up_rate(pricing_provider: str, model: str) -> _Rate:
    """The model's per-token prices in the current table, ``None`` when it has none."""
    units = [_table_price(pricing_provider, model, probe) for probe in _UNIT_PROBES]
    if any(unit is None for unit in units):
        return None
    # Each probe is one token of one kind (a cache read or write is not also billed as input).
    inp, read, write, out = (to_pico(unit) for unit in units)  # type: ignore[arg-type]
    return inp, read, write, out


_rates = _RateCache()


def _price(
    pricing_provider: str, model: str, prompt: int, cached: int, write: int, output: int
) -> int | None:
    if prompt > LONG_PROMPT_TOKENS:
        amount = _table_price(pricing_provider, model, _usage(prompt, cached, write, output))
        return None if amount is None else to_pico(amount)
    cache = _rates  # _RateCache.get()'s fast path, inlined: this runs before every budgeted call
    rate = cache.rates.get((pricing_provider, model), _MISSING)
    if rate is _MISSING or cache.table is not default_registry().table or time.monotonic() >= cache.expires:
        rate = cache.get(pricing_provider, model)
    if rate is None:
        return None
    inp, read, cache_write, out = rate
    return (prompt - cached - write) * inp + cached * read + write * cache_write + output * out


# ----------------------------------------------------------------------------- size
def _calls_chars(calls: Any) -> int:
    """Characters of the tool calls an assistant message carries (name, argument names and values)."""
    return sum(len(c.name) + sum(len(str(k)) + len(str(v)) + 6 for k, v in c.kwargs.items()) for c in calls)


_TOOL_CHARS: dict[tuple[str, str], int] = {}
_TOOL_CHARS_LIMIT = 1024


def _tool_chars(tool: Any) -> int:
    """Characters of a tool's name, description and JSON schema. Tool specifications are built anew
    for every call, so the size is remembered by (name, description), in a bounded cache."""
    key = (tool.name, tool.description)
    size = _TOOL_CHARS.get(key)
    if size is None:
        if len(_TOOL_CHARS) >= _TOOL_CHARS_LIMIT:
            _TOOL_CHARS.clear()
        size = _TOOL_CHARS[key] = (
            len(tool.name) + len(tool.description) + len(json.dumps(tool.parameters, default=str))
        )
    return size


def _default_cap(api: LLM_API, params: PreparedRequest) -> int:
    """The output cap of a request that sets none: the provider's own, else the default."""
    default = getattr(api, "default_max_tokens", None)  # the provider's own cap (Anthropic)
    if isinstance(default, int) and not isinstance(default, bool) and default > 0:
        thinking = params.reasoning_budget_tokens if params.enable_reasoning else None
        return thinking + default if thinking is not None and default <= thinking else default
    return DEFAULT_OUTPUT_TOKENS


# ----------------------------------------------------------------------------- the two entry points
def estimate_call(api: LLM_API, params: PreparedRequest, *, cached_tokens: int = 0) -> CallEstimate:
    """Estimate the call ``api`` is about to send for ``params`` (see the module docstring)."""
    prompt, output, pico = call_numbers(api, params, cached_tokens)
    return CallEstimate(api.provider_key, params.model, prompt, output, prompt + output, pico)


def call_numbers(
    api: LLM_API, params: PreparedRequest, cached_tokens: int = 0
) -> tuple[int, int, int | None]:
    """:func:`estimate_call` as plain numbers: prompt tokens, output tokens, pico-dollars (or ``None``)."""
    # Written flat on purpose: this runs before every budgeted call (benchmarks/budget.py).
    system = params.system_prompt
    history = params.chat_history
    chars = len(system) if system else 0
    for item in history:
        chars += len(item.content)
        if item.tool_calls:
            chars += _calls_chars(item.tool_calls)
    for tool in params.tools:
        chars += _tool_chars(tool)
    messages = len(history) + 1 if system else len(history)
    prompt = -(-chars // CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS * messages
    output = params.max_tokens or _default_cap(api, params)
    cached = min(max(cached_tokens, 0), prompt) if cached_tokens else 0
    write = prompt - cached if api.settings.use_prompt_caching else 0
    pico = _price(api.pricing_provider or api.provider_key, params.model, prompt, cached, write, output)
    return prompt, output, pico


_MAX_OUTPUT_KEYS = ("max_completion_tokens", "max_output_tokens", "max_tokens")


def estimate_request_body(
    provider: str,
    model: str,
    body: bytes | str,
    *,
    pricing_provider: str | None = None,
    max_output_tokens: int | None = None,
    cached_tokens: int = 0,
    cache_write: bool = False,
) -> CallEstimate:
    """Estimate a call from the JSON request body about to be sent (an httpx transport metering an
    official SDK's requests). ``provider`` is the statek provider key, ``pricing_provider`` the
    price-table provider when it differs. ``max_output_tokens`` overrides the cap read from the
    body; ``cached_tokens`` prompt tokens are priced as cache reads; ``cache_write`` prices the rest
    of the prompt as a cache write. Never raises for a body it cannot read: it is then only a size.
    """
    prompt = -(-len(body) // CHARS_PER_TOKEN)
    output = max_output_tokens if max_output_tokens is not None else _body_output_cap(body)
    cached = min(max(cached_tokens, 0), prompt)
    write = prompt - cached if cache_write else 0
    pico = _price(pricing_provider or provider, model, prompt, cached, write, output)
    return CallEstimate(provider, model, prompt, output, prompt + output, pico)


def _body_output_cap(body: bytes | str) -> int:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return DEFAULT_OUTPUT_TOKENS
    if isinstance(payload, dict):
        candidates = [payload.get(key) for key in _MAX_OUTPUT_KEYS]
        config = payload.get("generationConfig")
        if isinstance(config, dict):
            candidates.append(config.get("maxOutputTokens"))
        for value in candidates:
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return DEFAULT_OUTPUT_TOKENS
