"""Reading numbers out of JSON answers: token counts and a provider's own cost report."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["UsagePath", "count", "dig", "reported_cost"]

UsagePath = tuple[str | int, ...]
"""Keys (and list indexes) from a JSON object to one value: ``("prompt_tokens_details", "cached_tokens")``."""

_COST_TOTALS = ("total_cost", "total", "amount")


def dig(obj: Any, path: UsagePath) -> Any:
    """The value at ``path`` inside ``obj``, ``None`` where a step is missing or of the wrong kind."""
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


def count(value: Any) -> int | None:
    """A token count: an int (floats truncated), ``None`` for anything else, booleans included."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def reported_cost(value: Any) -> Decimal | None:
    """A provider's own cost report as exact USD: a number (``"cost": 0.0012``), or an object carrying a
    total (``"cost": {"total_cost": 0.0012, ...}``). ``None`` for anything else, for a non-finite or
    negative figure, and for booleans. Numbers go through ``str`` so that a float's binary error never
    becomes money."""
    if isinstance(value, Mapping):
        value = next((value[k] for k in _COST_TOTALS if k in value), None)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() and number >= 0 else None
