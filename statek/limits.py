"""The range every number of a call must be in before statek records it.

A provider answer is outside input: one negative count would make a counter go down, one ``1e308``
added twice makes a Prometheus scrape fail, ``2**64`` breaks every OTLP push. The answer codecs refuse
such answers (:class:`~statek.exceptions.ResponseFormatError`), and the telemetry wrapper checks once
more at the one place calls are recorded (:func:`bounded`), so that a provider written by a user cannot
poison the exporters either.

The bounds are far beyond any real call and far inside what the exporters can add up: a count is an
``int`` in ``[0, MAX_COUNT]`` (so millions of calls at the bound still fit a signed 64-bit counter), a
cost a finite ``Decimal`` in ``[0, MAX_COST_USD]``.
"""

from __future__ import annotations

from decimal import Decimal
from operator import itemgetter
from typing import Any

from .types import CallDetail

__all__ = [
    "COUNT_FIELDS",
    "MAX_COST_USD",
    "MAX_COUNT",
    "bounded",
    "cost_problem",
    "count_problem",
    "in_bounds",
    "problems",
]

MAX_COUNT = 10**12
"""Largest token (or byte) count of one call: a trillion, a thousand times any context window."""
MAX_COST_USD = Decimal(1_000_000)
"""Largest cost of one call, in USD."""

COUNT_FIELDS = (
    "total_bytes_sent",
    "total_bytes_received",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "input_audio_tokens",
    "cached_audio_tokens",
    "output_audio_tokens",
    "input_image_tokens",
    "output_image_tokens",
    "web_search_requests",
)
_COST_FIELDS = ("cost", "priced_cost", "explained_cost")


def count_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable count, or ``None`` when it is one."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"not an integer ({type(value).__name__})"
    if value < 0:
        return f"negative ({value})"
    if value > MAX_COUNT:
        return f"larger than {MAX_COUNT:,}"
    return None


def cost_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable cost (``None`` is: no cost), or ``None`` when it is one."""
    if value is None:
        return None
    if not isinstance(value, Decimal):
        return f"not a Decimal ({type(value).__name__})"
    if not value.is_finite():
        return "not finite"
    if value < 0:
        return "negative"
    if value > MAX_COST_USD:
        return f"larger than {MAX_COST_USD} USD"
    return None


def problems(detail: CallDetail) -> list[str]:
    """Every field of ``detail`` outside its range, as ``"field: reason"``; empty when all are fine."""
    found = []
    for name in COUNT_FIELDS:
        why = count_problem(getattr(detail, name))
        if why:
            found.append(f"{name}: {why}")
    for name in _COST_FIELDS:
        why = cost_problem(getattr(detail, name))
        if why:
            found.append(f"{name}: {why}")
    return found


_COUNT_INDEXES = tuple(CallDetail._fields.index(name) for name in COUNT_FIELDS)
_COST_INDEXES = tuple(CallDetail._fields.index(name) for name in _COST_FIELDS)
_ZERO = Decimal(0)
_counts_of = itemgetter(*_COUNT_INDEXES)
_costs_of = itemgetter(*_COST_INDEXES)
_NO_COSTS = (None,) * len(_COST_FIELDS)


def in_bounds(detail: CallDetail) -> bool:
    """True when every number of ``detail`` is in its range (a sufficient test: an ``int`` subclass,
    say, fails it though :func:`problems` finds nothing wrong; :func:`bounded` then decides).

    The hot path, no messages built: one pass over the counts (a loop with the interpreter's own
    ``type(x)`` is cheaper than a set of their types plus ``min`` and ``max``: three passes); the
    costs compared at once with "none at all" (an unpriced answer with no reported cost), else one
    by one."""
    for value in _counts_of(detail):
        if type(value) is not int or value < 0 or value > MAX_COUNT:
            return False
    costs = _costs_of(detail)
    if costs != _NO_COSTS:
        for cost in costs:
            if cost is not None and not (
                type(cost) is Decimal and cost.is_finite() and _ZERO <= cost <= MAX_COST_USD
            ):
                return False
    return True


def bounded(detail: CallDetail) -> tuple[CallDetail, list[str]]:
    """``detail`` with every field outside its range replaced (counts by 0, costs by ``None``, an
    unusable priced cost also marks the call ``unpriced``), and the problems found. The same object
    when there were none (the common case costs one pass over ten fields)."""
    if in_bounds(detail):
        return detail, []
    found = problems(detail)
    if not found:  # an int subclass, say: fine, only not on the fast path
        return detail, found
    fixes: dict[str, Any] = {n: 0 for n in COUNT_FIELDS if count_problem(getattr(detail, n))}
    for name in _COST_FIELDS:
        if cost_problem(getattr(detail, name)):
            fixes[name] = None
    if "priced_cost" in fixes:
        fixes["cost_status"] = "unpriced"
    return detail._replace(**fixes), found
