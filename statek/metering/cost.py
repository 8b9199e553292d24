"""Exact cost of one call from one price row: the rules, and the integer arithmetic that applies them.

The rules (USD; prices are per million tokens; token counts have the meaning of
:class:`~statek.types.CallDetail`):

* uncached input = ``input_tokens - cached_tokens - cache_write_tokens`` (never below zero), at the
  input price;
* cache reads (``cached_tokens``) at the cached price, or the input price when the row has none;
* cache writes at the 5-minute write price (the input price when the row has none), the one-hour
  part (``cache_write_1h_tokens``) at the one-hour write price (else the 5-minute write price);
* output at the output price; reasoning tokens (part of the output) at the reasoning price when the
  row has one, else at the output price;
* a per-request fee (USD per 1000 requests, Perplexity) is added once per call;
* when the row has long-context tiers and ``input_tokens`` (the whole prompt, cache included) is
  above a tier's threshold, the highest such tier's prices replace **all** of the above for the
  whole call, as Gemini and Anthropic bill it ("cliff" pricing, as in ``genai-prices``). A price
  missing from the tier falls back within the tier, as above.

These are the rules of ``genai-prices``' unit hierarchy (a more specific unit is carved out of its
parent only when it has its own price), so a call costs the same here as its ``calc_price`` says.

Money stays exact without paying for ``Decimal`` arithmetic per call: a row's prices are scaled once
to integers (``price * 10**scale``), a call's cost is an integer sum of ``tokens * scaled price``,
and only the final sum becomes a ``Decimal`` (``sum * 10**-(scale + 6)``), under a private context
wide enough that nothing is ever rounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Final

__all__ = ["CompiledRate", "Prices", "compile_rate"]

_EXACT: Final = Context(prec=80)
"""Wide enough for any token count times any price we accept; the user's context is never consulted."""
_PER_MILLION_DIGITS: Final = 6


@dataclass(frozen=True, slots=True)
class Prices:
    """One set of prices (USD per million tokens). ``None`` means "not listed": a fallback applies."""

    input: Decimal
    output: Decimal
    cached: Decimal | None = None
    cache_write_5m: Decimal | None = None
    cache_write_1h: Decimal | None = None
    reasoning: Decimal | None = None
    input_audio: Decimal | None = None
    cached_audio: Decimal | None = None
    output_audio: Decimal | None = None
    input_image: Decimal | None = None
    output_image: Decimal | None = None
    output_listed: bool = True
    """False when the source lists no output price (embedding models): ``output`` is then 0 and a
    call that generated output is unpriced (:attr:`CompiledRate.output_listed`)."""
    web_search_per_k: Decimal | None = None
    """USD per 1000 web searches run by a server tool; ``None``: not listed (a call that ran searches
    is then unpriced)."""

    def modal(self) -> tuple[Decimal | None, ...]:
        """The modality prices in :data:`MODALITY_ORDER`; all ``None`` when the row lists none."""
        return (self.input_audio, self.cached_audio, self.output_audio, self.input_image, self.output_image)


MODALITY_ORDER: Final = (
    "input_audio_tokens",
    "cached_audio_tokens",
    "output_audio_tokens",
    "input_image_tokens",
    "output_image_tokens",
)
"""The :class:`~statek.types.CallDetail` counts a modality price applies to, in :meth:`Prices.modal`'s order."""


class CompiledRate:
    """A row's prices scaled to integers, ready for :meth:`cost`. Immutable after construction.

    ``long_context`` is the tier used when ``input_tokens > threshold``.
    """

    __slots__ = (
        "cache_write_1h",
        "cache_write_5m",
        "cached",
        "exponent",
        "input",
        "long_context",
        "modal",
        "output",
        "output_listed",
        "plain",
        "reasoning",
        "request_fee",
        "search_fee",
        "threshold",
    )

    def __init__(
        self,
        input: int,
        cached: int,
        output: int,
        cache_write_5m: int,
        cache_write_1h: int,
        exponent: int,
        threshold: int | None = None,
        long_context: CompiledRate | None = None,
        reasoning: int | None = None,
        request_fee: int = 0,
        modal: tuple[int, int, int, int, int] | None = None,
        output_listed: bool = True,
        search_fee: int | None = None,
    ) -> None:
        self.output_listed = output_listed
        self.search_fee = search_fee
        # Each modality price as the difference to its parent's (input, cache read, output), so that
        # carving a part out of its parent is one multiply-add; None when the row lists none.
        self.modal = modal
        self.reasoning = output if reasoning is None else reasoning
        self.request_fee = request_fee
        self.input = input
        self.cached = cached
        self.output = output
        self.cache_write_5m = cache_write_5m
        self.cache_write_1h = cache_write_1h
        self.exponent = exponent
        self.threshold = threshold
        self.long_context = long_context
        # The common rate (no tiers, fee, modality, search or own reasoning price) has a formula of
        # its own in cost(): the same integer sum, without the branches for what it does not have.
        self.plain = (
            long_context is None
            and modal is None
            and self.reasoning == output
            and not request_fee
            and not search_fee
        )

    def cost(
        self,
        input_tokens: int,
        cached_tokens: int,
        cache_write_tokens: int,
        cache_write_1h_tokens: int,
        output_tokens: int,
        reasoning_tokens: int = 0,
        modal_tokens: tuple[int, ...] | None = None,
        web_searches: int = 0,
    ) -> Decimal:
        """The exact USD cost of a call with these token counts (see the module docstring for the rules).

        ``modal_tokens`` are the counts named by :data:`MODALITY_ORDER`; they matter only when the
        rate lists a price for that modality (else they are priced as their parent's tokens).
        ``web_searches`` are priced at :attr:`search_fee` (the caller checks it is listed)."""
        if self.plain:  # the general way below gives the same sum for such a rate
            uncached = input_tokens - cached_tokens - cache_write_tokens
            total = output_tokens * self.output + cached_tokens * self.cached
            if uncached > 0:  # (not max(): a builtin call costs more than the whole sum)
                total += uncached * self.input
            if cache_write_tokens:
                one_hour = min(cache_write_tokens, cache_write_1h_tokens)
                five_minutes = cache_write_tokens - one_hour
                total += five_minutes * self.cache_write_5m + one_hour * self.cache_write_1h
            return Decimal(total).scaleb(self.exponent, _EXACT)
        rate = self
        if rate.long_context is not None:
            while rate.long_context is not None and input_tokens > rate.threshold:  # type: ignore[operator]
                rate = rate.long_context
        uncached = input_tokens - cached_tokens - cache_write_tokens
        uncached = max(uncached, 0)
        total = uncached * rate.input + output_tokens * rate.output + rate.request_fee
        if reasoning_tokens and rate.reasoning != rate.output:
            total += min(reasoning_tokens, output_tokens) * (rate.reasoning - rate.output)
        if cached_tokens:
            total += cached_tokens * rate.cached
        if cache_write_tokens:
            one_hour = min(cache_write_tokens, cache_write_1h_tokens)
            total += (cache_write_tokens - one_hour) * rate.cache_write_5m + one_hour * rate.cache_write_1h
        if rate.modal is not None and modal_tokens is not None and any(modal_tokens):
            total += _modal_delta(rate.modal, modal_tokens, cached_tokens)
        if web_searches and rate.search_fee:
            total += web_searches * rate.search_fee
        return Decimal(total).scaleb(rate.exponent, _EXACT)

    def fee_amount(self) -> Decimal:
        """The per-request fee of this rate in USD (0 when it has none)."""
        return _fee_amount(self)


def _fee_amount(rate: CompiledRate) -> Decimal:
    return Decimal(rate.request_fee).scaleb(rate.exponent, _EXACT)


def _modal_delta(deltas: tuple[int, int, int, int, int], tokens: tuple[int, ...], cached_tokens: int) -> int:
    """What pricing the modality parts at their own prices adds to (or takes from) the text price."""
    d_audio, d_cached_audio, d_out_audio, d_image, d_out_image = deltas
    audio, cached_audio, out_audio, image, out_image = tokens
    cached_audio = min(cached_audio, audio, cached_tokens)
    # uncached audio leaves the input price; cached audio leaves the cache-read price
    return (
        (audio - cached_audio) * d_audio
        + cached_audio * d_cached_audio
        + out_audio * d_out_audio
        + image * d_image
        + out_image * d_out_image
    )


def _scale_of(price: Decimal) -> int:
    exponent = price.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _scaled(price: Decimal, scale: int) -> int:
    return int(price.scaleb(scale, _EXACT))


def compile_rate(
    prices: Prices,
    threshold: int | None = None,
    long_context: Prices | None = None,
    *,
    levels: Sequence[tuple[int, Prices]] = (),
    request_fee_per_k: Decimal | None = None,
) -> CompiledRate:
    """Scale ``prices`` (and the long-context tiers, if any) to integers for :meth:`CompiledRate.cost`.

    ``threshold``/``long_context`` give one tier (a price file's columns); ``levels`` any number of
    ``(threshold, prices)`` tiers, ascending (the database's). ``request_fee_per_k`` is USD per 1000
    requests. Fallbacks are resolved here, once (see the module docstring).
    """
    tiers = list(levels) if levels else ([(threshold, long_context)] if long_context is not None else [])
    tiers = [(t, p) for t, p in tiers if t is not None]
    next_level = None
    if tiers:
        (_, first_prices), rest = tiers[0], tiers[1:]
        next_level = compile_rate(first_prices, levels=rest, request_fee_per_k=request_fee_per_k)
    # a fee per 1000 requests is, per request, fee * 1000 per million "units" of one
    fee = request_fee_per_k.scaleb(3, _EXACT) if request_fee_per_k else None
    search = prices.web_search_per_k.scaleb(3, _EXACT) if prices.web_search_per_k is not None else None
    listed = [
        p
        for p in (
            prices.input,
            prices.output,
            prices.cached,
            prices.cache_write_5m,
            prices.cache_write_1h,
            prices.reasoning,
            *prices.modal(),
            fee,
            search,
        )
        if p is not None
    ]
    scale = max(_scale_of(p) for p in listed)

    def scaled(price: Decimal | None, fallback: Decimal | None = None) -> int:
        if price is None:
            price = fallback if fallback is not None else prices.input
        return _scaled(price, scale)

    return CompiledRate(
        input=scaled(prices.input),
        cached=scaled(prices.cached),
        output=scaled(prices.output),
        cache_write_5m=scaled(prices.cache_write_5m),
        cache_write_1h=scaled(prices.cache_write_1h, prices.cache_write_5m),
        exponent=-(scale + _PER_MILLION_DIGITS),
        threshold=tiers[0][0] if tiers else None,
        long_context=next_level,
        reasoning=scaled(prices.reasoning, prices.output),
        request_fee=_scaled(fee, scale) if fee is not None else 0,
        modal=_compile_modal(prices, scale),
        output_listed=prices.output_listed,
        search_fee=_scaled(search, scale) if search is not None else None,
    )


def _compile_modal(prices: Prices, scale: int) -> tuple[int, int, int, int, int] | None:
    """Each listed modality price minus its parent's price (0 when not listed), scaled; ``None`` when
    the row lists no modality price (the common case: nothing to carve out)."""
    if not any(p is not None for p in prices.modal()):
        return None
    cached = prices.cached if prices.cached is not None else prices.input
    audio = prices.input_audio

    def delta(price: Decimal | None, parent: Decimal) -> int:
        return 0 if price is None else _scaled(price, scale) - _scaled(parent, scale)

    return (
        delta(audio, prices.input),
        delta(prices.cached_audio, cached),
        delta(prices.output_audio, prices.output),
        delta(prices.input_image, prices.input),
        delta(prices.output_image, prices.output),
    )
