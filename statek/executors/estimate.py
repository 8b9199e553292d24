"""The estimate of a call before it is sent: prompt tokens, output cap, and their price.

Used by budgets (:mod:`statek.executors.budget`) to hold what a call may cost while it is in flight.
It runs on every budgeted call, so it is cheap: a few ``len`` calls and integer arithmetic, no
tokenizer, no JSON encoding of the prompt, no ``Decimal``.

* **Prompt tokens**: the size of the system prompt, every message, the tool calls in the history
  and the tools' schemas in :func:`text_units` (a character each, plus two per UTF-8 byte beyond a
  character's first, so CJK text counts about a token a character), divided by
  :data:`CHARS_PER_TOKEN` (rounded up), plus :data:`MESSAGE_OVERHEAD_TOKENS` per message and for the
  system prompt. For a raw JSON body (:func:`estimate_request_body`): the body in the same units.
* **Output tokens**: the request's ``MAX_TOKENS`` (checked: a negative, zero, non-numeric or absurd
  cap raises :class:`~statek.executors.output_limits.InvalidOutputCap`); else the provider's own
  default cap (``default_max_tokens``: Anthropic, grown by a thinking budget as its adapter grows
  it); else the model's maximum output (:mod:`statek.executors.output_limits`: the worst case, the
  default), or :data:`DEFAULT_OUTPUT_TOKENS` when the budget opted into ``reserve="estimate"``. For
  a body: ``max_completion_tokens``, ``max_output_tokens``, ``max_tokens`` or
  ``generationConfig.maxOutputTokens``.
* **Cache**: no cache read is assumed unless the caller passes ``cached_tokens``; with prompt
  caching switched on (``use_prompt_caching``) the whole prompt is priced as a cache write, the
  dearer case.
* **Price**: the price table's rate for (pricing provider, model), the same rate the recorded cost
  uses, as integer pico-dollars (10^-12 USD) per token, rounded up, plus the model's per-request fee
  once (Perplexity's ``sonar``). Rates are cached per model and looked up again when the price table
  changes and at least every :data:`RATE_TTL_SECONDS` (so a dated ``VALID_FROM`` row takes effect). A
  prompt above :data:`LONG_PROMPT_TOKENS` is priced by the table in full, so long-context tiers
  (Gemini, Anthropic above 200k tokens) apply.

Known error (``docs/budgets.md`` has the measured table): the prompt estimate runs high for English
prose and JSON and close to a byte-level tokenizer for CJK text; images and files are not counted.
The output is reserved at its worst case, so a call costs at most its reservation unless its model
is unknown (:data:`~statek.executors.output_limits.UNKNOWN_MAX_OUTPUT`) or ignores its cap.
"""

from __future__ import annotations

import json
import time
from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from ..metering import default_registry, price_call
from ..types import CallDetail
from .output_limits import checked_cap, model_max_output

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
    "body_output_cap",
    "body_units",
    "call_numbers",
    "estimate_call",
    "estimate_request_body",
    "from_pico",
    "output_price",
    "output_reservation",
    "prompt_tokens",
    "text_units",
    "to_pico",
]

CHARS_PER_TOKEN = 4
"""Characters (or body bytes) per token in the prompt estimate: the original STATEK's own rule."""
MESSAGE_OVERHEAD_TOKENS = 8
"""Tokens added per message (and once for the system prompt) for the chat template's role markers."""
DEFAULT_OUTPUT_TOKENS = 4096
"""Output tokens assumed for an uncapped call by a budget with ``reserve="estimate"`` (the old rule)."""
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


# One token of each kind, and two input tokens: the difference of the two input probes is the
# per-token rate, the rest of one probe a per-request fee (Perplexity's), which is then taken out of
# every per-token rate: a fee is charged once per request, not once per token.
_UNIT_PROBES = (
    _usage(1, 0, 0, 0),
    _usage(1, 1, 0, 0),
    _usage(1, 0, 1, 0),
    _usage(0, 0, 0, 1),
    _usage(2, 0, 0, 0),
)
_Rate = tuple[int, int, int, int, int] | None
"""pico-USD per token (input, cache read, cache write, output) and per request (the fee)."""
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
    units: list[Decimal] = []
    for probe in _UNIT_PROBES:
        unit = _table_price(pricing_provider, model, probe)
        if unit is None:
            return None
        units.append(unit)
    # Each probe is one token of one kind (a cache read or write is not also billed as input).
    one, read, write, out, two = units
    fee = max(2 * one - two, Decimal(0))
    inp, cache_read, cache_write, output = (
        to_pico(max(unit - fee, Decimal(0))) for unit in (one, read, write, out)
    )
    return inp, cache_read, cache_write, output, to_pico(fee)


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
    inp, read, cache_write, out, fee = rate
    return fee + (prompt - cached - write) * inp + cached * read + write * cache_write + output * out


# ----------------------------------------------------------------------------- size
def text_units(text: str) -> int:
    """``text``'s size in estimate units (:data:`CHARS_PER_TOKEN` units make a token): one per
    character, plus two per UTF-8 byte beyond a character's first. ASCII runs 4 characters a token;
    a Cyrillic or Greek letter (2 bytes) counts 3/4 of a token, a CJK character (3 bytes) 5/4, an
    emoji (4 bytes) 7/4: byte-level tokenizers spend about a token per CJK character, so counting
    characters alone underestimated Chinese prompts about 2x (``docs/budgets.md`` has the measured
    error). Costs one C-speed ``isascii`` for ASCII text, one UTF-8 encoding otherwise."""
    size = len(text)
    if text.isascii():
        return size
    return size + 2 * (len(text.encode("utf-8", "surrogatepass")) - size)


def body_units(body: bytes | str) -> int:
    """A JSON body's size in estimate units, as :func:`text_units` counts them: its bytes, plus, per
    non-ASCII character, its bytes beyond the first (a ``\\uXXXX`` escape is already six bytes)."""
    if isinstance(body, str):
        return text_units(body)
    size = len(body)
    if body.isascii():
        return size
    return size + (size - len(body.decode("utf-8", "replace")))


def _calls_chars(calls: Any) -> int:
    """Size of the tool calls an assistant message carries (name, argument names and values)."""
    return sum(
        text_units(c.name) + sum(text_units(str(k)) + text_units(str(v)) + 6 for k, v in c.kwargs.items())
        for c in calls
    )


_TOOL_CHARS: dict[tuple[str, str], int] = {}
_TOOL_CHARS_LIMIT = 1024


def _tool_chars(tool: Any) -> int:
    """Size of a tool's name, description and JSON schema. Tool specifications are built anew
    for every call, so the size is remembered by (name, description), in a bounded cache."""
    key = (tool.name, tool.description)
    size = _TOOL_CHARS.get(key)
    if size is None:
        if len(_TOOL_CHARS) >= _TOOL_CHARS_LIMIT:
            _TOOL_CHARS.clear()
        size = _TOOL_CHARS[key] = (
            text_units(tool.name)
            + text_units(tool.description)
            + text_units(json.dumps(tool.parameters, default=str, ensure_ascii=False))
        )
    return size


def _provider_cap(api: LLM_API, params: PreparedRequest) -> int | None:
    """The output cap the provider itself sends when the request sets none (Anthropic's
    ``default_max_tokens``, grown by a thinking budget as its adapter grows it), else ``None``."""
    default = getattr(api, "default_max_tokens", None)
    if isinstance(default, int) and not isinstance(default, bool) and default > 0:
        thinking = params.reasoning_budget_tokens if params.enable_reasoning else None
        return thinking + default if thinking is not None and default <= thinking else default
    return None


def output_reservation(
    provider_key: str, pricing_provider: str, model: str, cap: Any, *, worst_case: bool = True
) -> int:
    """The output tokens to reserve for a call with output cap ``cap`` (``None``: uncapped): the
    cap (checked: :class:`~statek.executors.output_limits.InvalidOutputCap`); else, in worst-case
    mode, the model's maximum (:func:`~statek.executors.output_limits.model_max_output`); else
    (the ``reserve="estimate"`` opt-in) :data:`DEFAULT_OUTPUT_TOKENS`."""
    checked = checked_cap(cap)
    if checked is not None:
        return checked
    if worst_case:
        return model_max_output(provider_key, pricing_provider, model)[0]
    return DEFAULT_OUTPUT_TOKENS


# ----------------------------------------------------------------------------- the two entry points
def estimate_call(
    api: LLM_API, params: PreparedRequest, *, cached_tokens: int = 0, worst_case: bool = True
) -> CallEstimate:
    """Estimate the call ``api`` is about to send for ``params`` (see the module docstring)."""
    prompt, output, pico = call_numbers(api, params, cached_tokens, worst_case)
    return CallEstimate(api.provider_key, params.model, prompt, output, prompt + output, pico)


def prompt_tokens(params: PreparedRequest) -> int:
    """The estimated prompt tokens of ``params`` (see the module docstring)."""
    # Written flat on purpose: this runs before every budgeted call (benchmarks/budget.py).
    system = params.system_prompt
    history = params.chat_history
    chars = text_units(system) if system else 0
    for item in history:
        content = item.content
        chars += len(content) if content.isascii() else text_units(content)
        if item.tool_calls:
            chars += _calls_chars(item.tool_calls)
    for tool in params.tools:
        chars += _tool_chars(tool)
    messages = len(history) + 1 if system else len(history)
    return -(-chars // CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS * messages


def call_numbers(
    api: LLM_API, params: PreparedRequest, cached_tokens: int = 0, worst_case: bool = True
) -> tuple[int, int, int | None]:
    """:func:`estimate_call` as plain numbers: prompt tokens, output tokens, pico-dollars (or ``None``)."""
    prompt = prompt_tokens(params)
    pricing = api.pricing_provider or api.provider_key
    cap = checked_cap(params.max_tokens)
    output = (
        cap
        if cap is not None
        else _provider_cap(api, params)
        or output_reservation(api.provider_key, pricing, params.model, None, worst_case=worst_case)
    )
    cached = min(max(cached_tokens, 0), prompt) if cached_tokens else 0
    write = prompt - cached if api.settings.use_prompt_caching else 0
    pico = _price(pricing, params.model, prompt, cached, write, output)
    return prompt, output, pico


def output_price(pricing_provider: str, model: str) -> int | None:
    """pico-USD per output token of ``model`` (``None``: unpriced): what ``cap_output`` budgets
    divide their room by."""
    rate = _rates.get(pricing_provider, model)
    return None if rate is None else rate[3]


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
    worst_case: bool = True,
) -> CallEstimate:
    """Estimate a call from the JSON request body about to be sent (an httpx transport metering an
    official SDK's requests). ``provider`` is the statek provider key, ``pricing_provider`` the
    price-table provider when it differs. ``max_output_tokens`` overrides the cap read from the
    body; ``cached_tokens`` prompt tokens are priced as cache reads; ``cache_write`` prices the rest
    of the prompt as a cache write. A body it cannot read is only a size; an output cap a budget
    cannot bound (negative, zero, absurd, not a number) raises
    :class:`~statek.executors.output_limits.InvalidOutputCap`.
    """
    prompt = -(-body_units(body) // CHARS_PER_TOKEN)
    cap = max_output_tokens if max_output_tokens is not None else body_output_cap(body)
    pricing = pricing_provider or provider
    output = output_reservation(provider, pricing, model, cap, worst_case=worst_case)
    cached = min(max(cached_tokens, 0), prompt)
    write = prompt - cached if cache_write else 0
    pico = _price(pricing, model, prompt, cached, write, output)
    return CallEstimate(provider, model, prompt, output, prompt + output, pico)


def body_output_cap(body: bytes | str) -> Any:
    """The output cap a JSON request body sets (``max_completion_tokens``, ``max_output_tokens``,
    ``max_tokens`` or Gemini's ``generationConfig.maxOutputTokens``, first present wins), as found
    (unchecked: it may be ``-1`` or ``"lots"``); ``None`` when it sets none or is not JSON."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, dict):
        return None
    for key in _MAX_OUTPUT_KEYS:
        if payload.get(key) is not None:
            return payload[key]
    config = payload.get("generationConfig")
    if isinstance(config, dict) and config.get("maxOutputTokens") is not None:
        return config["maxOutputTokens"]
    return None
