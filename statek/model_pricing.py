"""Seed pricing API: :class:`ModelPricing`, :func:`get_model_pricing`, :func:`set_model_pricing`,
:func:`init_model_pricing`.

These read and change the process-wide price table of :mod:`statek.metering` (the one every call is
priced with), so a price set or loaded here is used by the next call. Provider, family and model
names match after removing whitespace and ignoring case (``"Open AI"`` = ``"OPENAI"``,
``"gpt-4 turbo"`` = ``"GPT-4TURBO"``), and **exactly**, as in the original: an unlisted variant is
never priced as a listed prefix (a file may list variants in its ``MATCH`` column). A model no
file names is looked up in the price database (``genai-prices``) with its own matching rules.

Prices are USD per million tokens. Pass them as ``Decimal``, ``int`` or ``str``; a ``float`` is
taken by its shortest decimal spelling (``0.15`` means ``Decimal("0.15")``), never by its binary value.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from .exceptions import ConfigurationError
from .metering.loader import LoadReport
from .metering.records import PriceRow, normalise, provider_key
from .metering.registry import default_registry
from .metering.schema import MAX_PRICE

__all__ = ["ModelPricing", "get_model_pricing", "init_model_pricing", "set_model_pricing"]

SET_IN_CODE = "<set_model_pricing>"
"""The ``path`` of rows created by :func:`set_model_pricing`."""

PriceLike = Decimal | int | str | float


@dataclass(slots=True)
class ModelPricing:
    """Prices of one model, USD per million tokens; ``None`` where not known.

    ``is_valid`` when the input and output prices are both set; the cached-input price is optional
    (cached tokens are then priced at the input price). Mutable, as in the original: an empty
    placeholder returned for an unknown model is filled in place by :func:`set_model_pricing`.
    """

    input_price_per_M: Decimal | None = None
    input_price_per_cached_M: Decimal | None = None
    output_price_per_M: Decimal | None = None

    @property
    def is_valid(self) -> bool:
        """Input and output prices are both known."""
        return self.input_price_per_M is not None and self.output_price_per_M is not None

    @classmethod
    def from_row(cls, row: PriceRow) -> ModelPricing:
        """The seed view of a price-table row (its standard tier)."""
        return cls(row.input, row.cached, row.output)


def _price(value: PriceLike | None, what: str, *, required: bool) -> Decimal | None:
    if value is None:
        if required:
            raise ConfigurationError(f"{what} is required")
        return None
    try:
        price = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise ConfigurationError(f"{what} must be a decimal number, not {value!r}") from None
    if not price.is_finite() or price < 0 or price > MAX_PRICE:
        raise ConfigurationError(
            f"{what} must be a finite number from 0 to {MAX_PRICE} (USD per million tokens), not {value!r}"
        )
    return price


def _key(provider: str, model: str, model_family: str | None) -> tuple[str, str, str]:
    return provider_key(provider), normalise(model_family or ""), normalise(model)


def get_model_pricing(
    provider: str, model: str, model_family: str | None = None, no_create: bool = False
) -> ModelPricing | None:
    """The pricing in force now for ``model``.

    When no row matches, an empty placeholder (``is_valid`` false) is created, remembered and
    returned, so later calls return that same object; with ``no_create=True`` the answer is
    ``None`` instead and nothing is created.
    """
    registry = default_registry()
    row = registry.find(provider, model, model_family)
    if row is not None:
        return ModelPricing.from_row(row)
    key = _key(provider, model, model_family)
    if no_create:
        return registry.existing_placeholder(key)  # type: ignore[no-any-return]
    return registry.placeholder(key, ModelPricing)  # type: ignore[no-any-return]


def set_model_pricing(
    provider: str,
    model: str,
    input_price_per_M: PriceLike,
    output_price_per_M: PriceLike,
    input_price_per_cached_M: PriceLike | None = None,
    model_family: str | None = None,
) -> ModelPricing:
    """Set the price of ``model`` from now on and return the record now in effect: the same object
    on every call for that model (a placeholder :func:`get_model_pricing` handed out is filled in place).

    The new row replaces every row of that provider/family/model, including dated versions and any
    cache-write or long-context prices they had. Raises ``ConfigurationError`` (a ``ValueError``)
    for a missing, negative or non-numeric price.
    """
    if not str(provider).strip() or not str(model).strip():
        raise ConfigurationError("provider and model must not be empty")
    registry = default_registry()
    row = PriceRow(
        provider=provider,
        model_family=model_family or "",
        model=model,
        input=_price(input_price_per_M, "input_price_per_M", required=True),  # type: ignore[arg-type]
        cached=_price(input_price_per_cached_M, "input_price_per_cached_M", required=False),
        output=_price(output_price_per_M, "output_price_per_M", required=True),  # type: ignore[arg-type]
        path=SET_IN_CODE,
    )
    registry.set_row(row)
    # The record is kept: as in the original, the same prices set again return the same record, and
    # a placeholder callers already hold (e.g. an LLM_Usage's pricing) is filled in place.
    record = registry.placeholder(_key(provider, model, model_family), lambda: ModelPricing.from_row(row))
    if isinstance(record, ModelPricing):
        record.input_price_per_M = row.input
        record.input_price_per_cached_M = row.cached
        record.output_price_per_M = row.output
        return record
    return ModelPricing.from_row(row)


def init_model_pricing(model_info_dir: str | Path, *, strict: bool = False) -> LoadReport:
    """Load every ``.csv`` and ``.txt`` file under ``model_info_dir`` (recursively) into the price table.

    Both hold CSV in the STATEK metering format (``docs/pricing.md``). The loaded rows take
    precedence over the shipped table and earlier loads. Lenient by default: good rows take effect
    and every problem is logged and returned in the report; with ``strict=True`` any problem raises
    :class:`~statek.exceptions.PricingError` listing all of them, and the table is left unchanged.
    A folder that does not exist is reported as a problem like any other.
    """
    return default_registry().load([model_info_dir], strict=strict)
