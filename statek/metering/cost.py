"""Exact cost of one call from one price row: the rules, and the integer arithmetic that applies them.

The rules (USD; prices are per million tokens; token counts have the meaning of
:class:`~statek.types.CallDetail`):

* uncached input = ``input_tokens - cached_tokens - cache_write_tokens`` (never below zero), at the
  input price;
* cache reads (``cached_tokens``) at the cached price, or the input price when the row has none;
* cache writes at the 5-minute write price, the one-hour part (``cache_write_1h_tokens``) at the
  one-hour write price; either falls back to the input price when the row has none;
* output (reasoning included) at the output price;
* when the row has a long-context tier and ``input_tokens`` (the whole prompt, cache included) is
  above its threshold, the tier's prices replace **all** of the above for the whole call, as Gemini
  and Anthropic bill it. A price missing from the tier falls back within the tier, as above.

Money stays exact without paying for ``Decimal`` arithmetic per call: a row's prices are scaled once
to integers (``price * 10**scale``), a call's cost is an integer sum of ``tokens * scaled price``,
and only the final sum becomes a ``Decimal`` (``sum * 10**-(scale + 6)``), under a private context
wide enough that nothing is ever rounded.
"""

from __future__ import annotations

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
        "output",
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
    ) -> None:
        self.input = input
        self.cached = cached
        self.output = output
        self.cache_write_5m = cache_write_5m
        self.cache_write_1h = cache_write_1h
        self.exponent = exponent
        self.threshold = threshold
        self.long_context = long_context

    def cost(
        self,
        input_tokens: int,
        cached_tokens: int,
        cache_write_tokens: int,
        cache_write_1h_tokens: int,
        output_tokens: int,
    ) -> Decimal:
        """The exact USD cost of a call with these token counts (see the module docstring for the rules)."""
        rate = self
        if rate.long_context is not None and input_tokens > rate.threshold:  # type: ignore[operator]
            rate = rate.long_context
        uncached = input_tokens - cached_tokens - cache_write_tokens
        total = (max(0, uncached)) * rate.input + output_tokens * rate.output
        if cached_tokens:
            total += cached_tokens * rate.cached
        if cache_write_tokens:
            one_hour = min(cache_write_tokens, cache_write_1h_tokens)
            total += (cache_write_tokens - one_hour) * rate.cache_write_5m + one_hour * rate.cache_write_1h
        return Decimal(total).scaleb(rate.exponent, _EXACT)


def _scale_of(price: Decimal) -> int:
    exponent = price.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _scaled(price: Decimal, scale: int) -> int:
    return int(price.scaleb(scale, _EXACT))


def compile_rate(
    prices: Prices, threshold: int | None = None, long_context: Prices | None = None
) -> CompiledRate:
    """Scale ``prices`` (and the long-context tier, if any) to integers for :meth:`CompiledRate.cost`.

    Fallbacks are resolved here, once: a missing cached or cache-write price becomes the input price.
    """
    tier = compile_rate(long_context) if long_context is not None else None
    listed = [
        p
        for p in (prices.input, prices.output, prices.cached, prices.cache_write_5m, prices.cache_write_1h)
        if p is not None
    ]
    scale = max(_scale_of(p) for p in listed)

    def scaled(price: Decimal | None) -> int:
        return _scaled(prices.input if price is None else price, scale)

    return CompiledRate(
        input=scaled(prices.input),
        cached=scaled(prices.cached),
        output=scaled(prices.output),
        cache_write_5m=scaled(prices.cache_write_5m),
        cache_write_1h=scaled(prices.cache_write_1h),
        exponent=-(scale + _PER_MILLION_DIGITS),
        threshold=threshold if tier is not None else None,
        long_context=tier,
    )
