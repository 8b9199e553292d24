"""Reading numbers out of JSON answers: token counts and a provider's own cost report.

Answers are outside input, so a number is taken only when it is one statek can record
(:mod:`statek.limits`): a count is a non-negative integer no larger than :data:`~statek.limits.MAX_COUNT`
(an integral float such as ``12.0`` is accepted), a reported cost a finite, non-negative amount no larger
than :data:`~statek.limits.MAX_COST_USD`. A count that is absent (or ``null``) is no number; a count
that is present but outside those bounds (negative, ``NaN``, ``1e308``, ``10**400``, ``"12"``, ``true``)
makes the whole answer unreadable: :class:`~statek.wire.errors.WireFormatError`. A cost outside them
is no cost (see :func:`reported_cost`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..limits import MAX_COST_USD, MAX_COUNT
from ..secrets import clip
from .errors import WireFormatError

__all__ = ["UsagePath", "count", "dig", "reported_cost", "token_count"]

UsagePath = tuple[str | int, ...]
"""Keys (and list indexes) from a JSON object to one value: ``("prompt_tokens_details", "cached_tokens")``."""

_COST_TOTALS = ("total_cost", "total", "amount")
_log = logging.getLogger("statek.wire")


def text_id(value: Any) -> str | None:
    """An identifier the provider gave (an answer's id): non-empty text of sane length, else ``None``."""
    return value if isinstance(value, str) and 0 < len(value) <= 256 else None


def dig(obj: Any, path: UsagePath) -> Any:
    """The value at ``path`` inside ``obj``, ``None`` where a step is missing or of the wrong kind."""
    for step in path:
        if type(obj) is dict and type(step) is str:  # the common step, without the ABC checks below
            obj = obj.get(step)
        elif isinstance(step, int):
            if not isinstance(obj, list) or not -len(obj) <= step < len(obj):
                return None
            obj = obj[step]
        elif isinstance(obj, Mapping):
            obj = obj.get(step)
        else:
            return None
    return obj


def count(value: Any, where: str = "token count") -> int | None:
    """A token count: ``None`` when absent (``None``), else a non-negative integer within the bounds.
    Raises :class:`WireFormatError` for anything else (``where`` names the field in the message)."""
    if value is None:
        return None
    if type(value) is int and 0 <= value <= MAX_COUNT:  # the common case, ahead of the general one
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireFormatError(f"{where} is not an integer: {clip(value, 40)}")
    if not 0 <= value <= MAX_COUNT:
        raise WireFormatError(f"{where} is out of range (0 to {MAX_COUNT:,}): {clip(value, 40)}")
    return value


def token_count(usage: Mapping[str, Any], key: str) -> int:
    """``usage[key]`` as a count (see :func:`count`), 0 when absent."""
    return count(usage.get(key), key) or 0


def reported_cost(value: Any, unit_usd: Decimal = Decimal(1)) -> Decimal | None:
    """A provider's own cost report as exact USD: a number (``"cost": 0.0012``), or an object carrying a
    total (``"cost": {"total_cost": 0.0012, ...}``). Numbers go through ``str`` so that a float's binary
    error never becomes money; ``unit_usd`` converts the provider's unit (xAI reports ticks of 1e-10 USD).

    ``None`` (no reported cost: the call is priced from the tables instead) for anything that is not a
    cost: absent, a shape without a number, a boolean, unreadable text, and a number that is negative,
    not finite or larger than :data:`~statek.limits.MAX_COST_USD`. Unlike a bad count, a bad cost does
    not make the answer unreadable: the cost is optional and the counts still stand."""
    if isinstance(value, Mapping):
        value = next((value[k] for k in _COST_TOTALS if k in value), None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return _dropped(value)
    try:
        number = Decimal(str(value)) * unit_usd
    except (ArithmeticError, ValueError):
        return _dropped(value)
    return number if number.is_finite() and 0 <= number <= MAX_COST_USD else _dropped(value)


def _dropped(value: Any) -> Decimal | None:
    """A reported cost statek cannot record: logged (the first one of each process, so a provider
    sending it on every answer does not flood the log), and ``None``: the call is priced from the
    tables, its cost status says so (``calculated``, or ``unpriced`` when no table knows the model)."""
    global _dropped_logged
    if not _dropped_logged:
        _dropped_logged = True
        _log.warning(
            "statek ignored a provider-reported cost it cannot record (%s: not a finite amount from 0 "
            "to %s USD); such calls are priced from the price tables (logged once)",
            clip(value, 40),
            MAX_COST_USD,
        )
    return None


_dropped_logged = False
