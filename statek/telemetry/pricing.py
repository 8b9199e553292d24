"""Pricing an answered call on the metering path: out-of-range numbers dropped, then priced.

Runs once per answered call, before the record is handed to its consumers' ``finish``; an unpriced
call beats a failed one, so a fault in pricing is logged and the call recorded ``unpriced``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ..limits import bounded, in_bounds
from ..metering import price_call
from ..metering.index import FROM_PROVIDER
from ..metering.types import UNPRICED, CallCost
from ..types import CallDetail

__all__ = ["checked", "priced"]

_log = logging.getLogger("statek.telemetry")


def priced(
    pricing_provider: str,
    model: str,
    stats: CallDetail,
    started: float,
    database_provider: str | None = FROM_PROVIDER,
) -> tuple[CallDetail, CallCost]:
    """``stats`` with its ``priced_cost`` and ``cost_status`` filled, and the pricing result, for a
    call to ``model`` that started at epoch second ``started`` (``database_provider``: see
    :func:`statek.metering.price_call`). Never raises."""
    try:
        # ``at`` as epoch seconds: a datetime is made only for a price that depends on the date
        cost = price_call(pricing_provider, model, stats, at=started, database_provider=database_provider)
        return _with_cost(stats, cost.amount, cost.status), cost
    except Exception:  # noqa: BLE001 - an unpriced call beats a failed one
        _log.exception(
            "statek could not price a %s call to %s; recorded as unpriced", pricing_provider, model
        )
        return _with_cost(stats, None, "unpriced"), UNPRICED


def checked(provider_key: str, model: str, stats: CallDetail) -> CallDetail:
    """``stats`` with any number outside :mod:`statek.limits` removed, so no exporter is poisoned by it.

    Built-in providers refuse such answers already; this guards providers added with ``add_provider``.
    """
    if in_bounds(stats):  # the common case: the same object
        return stats
    result, problems = bounded(stats)
    if problems:
        _log.warning(
            "statek dropped out-of-range numbers from a %s call to %s: %s",
            provider_key,
            model,
            "; ".join(problems),
        )
    return result


def _with_cost(stats: CallDetail, amount: Decimal | None, status: str) -> CallDetail:
    """``stats`` with ``priced_cost`` and ``cost_status`` replaced, built by position:
    ``NamedTuple._replace`` (and the NamedTuple's own Python-level ``__new__``) cost several times as
    much on this hot path, for the same tuple."""
    return _new_tuple(type(stats), stats[:_PRICED] + (amount, status) + stats[_PRICED + 2 :])  # type: ignore[no-any-return]


_new_tuple: Callable[..., Any] = tuple.__new__
_PRICED = CallDetail._fields.index("priced_cost")
"""Where ``priced_cost`` is in a :class:`CallDetail`; ``cost_status`` follows it (a test pins it)."""
