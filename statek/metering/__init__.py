"""The pricing engine: the genai-prices database and price files, a compiled lookup, exact per-call cost.

Fixed interface: :func:`price_call` and :class:`CallCost`. The process-wide table is built lazily
on first use from the price database (``genai-prices``), the shipped table and
``STATEK_MODEL_INFO_DIR``; see :mod:`statek.metering.registry` for precedence and reloads,
:mod:`statek.metering.cost` for the cost rules, :mod:`statek.metering.index` for model matching, and
``docs/pricing.md`` for the file format.

Modules: ``schema`` (columns), ``records`` (rows, problems, name keys), ``loader`` (read and
validate files), ``database`` (the ``genai-prices`` layer), ``cost`` (exact arithmetic), ``index``
(compiled lookup), ``registry`` (the process-wide table), ``types`` (:class:`CallCost`), ``diff``,
``export``, ``litellm``, ``audit`` (the database against LiteLLM's map) and ``explain`` (which row
prices a call, and why) for ``statek pricing``, ``gcpause`` (bulk-load helper).
"""

from __future__ import annotations

from .cost import Prices
from .index import PriceTable
from .loader import LoadReport, read_price_files
from .records import PriceRow, Problem, normalise
from .registry import (
    PriceRegistry,
    default_registry,
    price_call,
    set_default_registry,
    shipped_prices_path,
    use_price_data,
)
from .types import COST_STATUSES, CallCost, CostStatus

__all__ = [
    "COST_STATUSES",
    "CallCost",
    "CostStatus",
    "LoadReport",
    "PriceRegistry",
    "PriceRow",
    "PriceTable",
    "Prices",
    "Problem",
    "default_registry",
    "normalise",
    "price_call",
    "read_price_files",
    "set_default_registry",
    "shipped_prices_path",
    "use_price_data",
]
