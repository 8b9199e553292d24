"""The default price layer: the field's maintained price database, ``genai-prices`` (pydantic, MIT).

statek takes the database's *data* and its *model matching* (each provider's ``find_model``, with
its fallbacks such as Azure → OpenAI and Google → Anthropic), and prices calls with its own integer
arithmetic (:mod:`statek.metering.cost`): ``genai_prices.calc_price`` costs 50-75 µs per call, a
compiled rate well under one.

Nothing is imported until the first lookup that reaches this layer: ``import statek`` never loads
the database (about 0.25 s). The data is the one bundled in the installed package; nothing is ever
fetched over the network. Users get new prices with ``pip install -U genai-prices``.

Which units are billed: input, cache reads, cache writes (the one-hour part at its own price when
listed), output, reasoning (when the model lists a reasoning price), and per-request fees
(``requests_kcount``). Tiered prices (``TieredPrices``, a "cliff" on the whole prompt size) and
conditional prices (effective dates, DeepSeek's off-peak hours) are compiled into one rate per
tier and condition. Units a chat call does not report (audio, images, searches, pages) add nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from .cost import CompiledRate, Prices, compile_rate

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, ModelPrice, Provider

__all__ = [
    "LOCAL_PROVIDERS",
    "DatabaseModel",
    "PriceDatabase",
    "database_version",
    "default_database",
]

LOCAL_PROVIDERS: Final = frozenset(
    {"ollama", "lmstudio", "lm_studio", "vllm", "sglang", "llama_cpp", "llamacpp", "llama_cpp_python"}
)
"""Provider keys never priced from the database: local servers cost what the user says they cost."""

_REASONING: Final = "output_reasoning_mtok"
logger = logging.getLogger("statek.metering")


def database_version() -> str:
    """The installed ``genai-prices`` version (``"unknown"`` when the metadata is missing)."""
    try:
        from importlib.metadata import version

        return version("genai-prices")
    except Exception:  # noqa: BLE001 - a vendored copy without metadata
        return "unknown"


@dataclass(frozen=True, slots=True)
class _Condition:
    """When one set of prices applies: from a UTC date on, or within a daily UTC time window."""

    start_date: date | None = None
    start_time: time | None = None
    end_time: time | None = None

    def active(self, at: datetime) -> bool:
        at = at.astimezone(timezone.utc) if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)
        if self.start_date is not None:
            return at.date() >= self.start_date
        if self.start_time is None or self.end_time is None:
            return True
        now, start, end = at.time(), _naive_utc(self.start_time), _naive_utc(self.end_time)
        if end < start:
            return now >= start or now < end
        return start <= now < end


def _naive_utc(value: time) -> time:
    if value.tzinfo is None:
        return value
    return datetime.combine(date(1970, 1, 1), value).astimezone(timezone.utc).time()


@dataclass(frozen=True, slots=True)
class DatabaseModel:
    """One model of the database as statek prices it.

    ``rates`` pairs each condition with its compiled rate, in the database's order; the last active
    one applies, else the first (the database's rule). ``only`` is set when no condition exists, so
    the hot path needs no clock. ``prices`` keeps the standard (first-tier) prices for display.
    """

    provider_id: str
    model_id: str
    name: str
    rates: tuple[tuple[_Condition | None, CompiledRate], ...]
    prices: tuple[tuple[_Condition | None, Prices, Decimal | None], ...]
    tiers: tuple[tuple[int, Prices], ...]
    pricing_url: str

    @property
    def only(self) -> CompiledRate | None:
        """The single rate when prices never change with time, else ``None``."""
        if len(self.rates) == 1 and self.rates[0][0] is None:
            return self.rates[0][1]
        return None

    def rate_at(self, at: datetime) -> CompiledRate:
        """The rate in force at ``at`` (the last active condition, else the first)."""
        for condition, rate in reversed(self.rates):
            if condition is None or condition.active(at):
                return rate
        return self.rates[0][1]

    def prices_at(self, at: datetime) -> tuple[Prices, Decimal | None]:
        """Standard prices and per-request fee (USD per 1000 requests) in force at ``at``."""
        for condition, prices, fee in reversed(self.prices):
            if condition is None or condition.active(at):
                return prices, fee
        return self.prices[0][1], self.prices[0][2]


def _decimal(value: Any) -> Decimal | None:
    return value if isinstance(value, Decimal) else None


def _tier_value(value: Any, threshold: int | None) -> Decimal | None:
    """The price of a (possibly tiered) unit for prompts above ``threshold`` (``None``: the base)."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    price = value.base
    if threshold is not None:
        for tier in value.tiers:
            if threshold >= tier.start:
                price = tier.price
    return price  # type: ignore[no-any-return]


def _thresholds(model_price: ModelPrice) -> list[int]:
    starts: set[int] = set()
    for value in model_price.__dict__.values():
        for tier in getattr(value, "tiers", ()) or ():
            starts.add(int(tier.start))
    return sorted(starts)


def _prices(model_price: ModelPrice, threshold: int | None) -> Prices | None:
    values = model_price.__dict__
    input_price = _tier_value(values.get("input_mtok"), threshold)
    output_price = _tier_value(values.get("output_mtok"), threshold)
    if input_price is None or output_price is None:
        return None
    return Prices(
        input_price,
        output_price,
        _tier_value(values.get("cache_read_mtok"), threshold),
        _tier_value(values.get("cache_write_mtok"), threshold)
        or _tier_value(values.get("cache_write_5m_mtok"), threshold),
        _tier_value(values.get("cache_write_1h_mtok"), threshold),
        _tier_value(values.get(_REASONING), threshold),
    )


def _compile(
    model_price: ModelPrice,
) -> tuple[CompiledRate, Prices, Decimal | None, list[tuple[int, Prices]]]:
    """A rate with one long-context level per tier start; raises ``LookupError`` if unpriceable."""
    base = _prices(model_price, None)
    if base is None:
        raise LookupError("no input and output token price")
    fee = _decimal(model_price.__dict__.get("requests_kcount"))
    levels = [
        (start, p) for start in _thresholds(model_price) if (p := _prices(model_price, start)) is not None
    ]
    return compile_rate(base, levels=levels, request_fee_per_k=fee), base, fee, levels


def _condition(constraint: Any) -> _Condition | None:
    if constraint is None:
        return None
    if hasattr(constraint, "start_date"):
        return _Condition(start_date=constraint.start_date)
    return _Condition(start_time=constraint.start_time, end_time=constraint.end_time)


def build_model(provider: Provider, model: ModelInfo) -> DatabaseModel | None:
    """Compile ``model`` (``None`` when the database gives it no input and output token price)."""
    conditional = model.prices if isinstance(model.prices, list) else None
    pairs = (
        [(_condition(c.constraint), c.prices) for c in conditional]
        if conditional is not None
        else [(None, model.prices)]
    )
    rates, shown = [], []
    tiers: list[tuple[int, Prices]] = []
    try:
        for condition, model_price in pairs:
            rate, prices, fee, levels = _compile(model_price)  # type: ignore[arg-type]
            rates.append((condition, rate))
            shown.append((condition, prices, fee))
            tiers = tiers or levels
    except LookupError:
        return None
    urls = provider.pricing_urls or []
    return DatabaseModel(
        provider.id,
        model.id,
        model.name or model.id,
        tuple(rates),
        tuple(shown),
        tuple(tiers),
        urls[0] if urls else "",
    )


class PriceDatabase:
    """Lookups in the bundled database, loaded on first use; thread-safe; results are cached.

    ``providers`` may be given (tests); by default it is ``genai_prices.data.providers``.
    """

    def __init__(self, providers: Sequence[Provider] | None = None) -> None:
        self._given = providers
        self._providers: list[Provider] | None = None
        self._by_id: dict[str, Provider] = {}
        self._lock = threading.Lock()
        self._models: dict[tuple[str, str], DatabaseModel | None] = {}
        self._provider_of: dict[str, Provider | None] = {}

    @property
    def providers(self) -> list[Provider]:
        """Every provider of the database (loads it)."""
        providers = self._providers
        if providers is None:
            with self._lock:
                if self._providers is None:
                    if self._given is not None:
                        loaded = list(self._given)
                    else:
                        loaded = _bundled_providers()
                    self._by_id = {p.id: p for p in loaded}
                    self._providers = loaded
                providers = self._providers
        return providers

    @property
    def loaded(self) -> bool:
        """Whether the database has been read yet."""
        return self._providers is not None

    def provider(self, provider: str) -> Provider | None:
        """The database provider for a statek provider key (``None`` for local servers and unknowns).

        ``provider`` is an id of the database (``openai``, ``google``, ``aws``, ``x-ai``) or a name
        its own provider matching recognises (``gemini``, ``vertex``, ``bedrock``, ``anthropic``).
        """
        key = provider.strip().lower()
        if key in self._provider_of:
            return self._provider_of[key]
        found: Provider | None = None
        if key and key not in LOCAL_PROVIDERS:
            found = self._by_id.get(key) if self.providers else None
            if found is None:
                found = next(
                    (p for p in self.providers if p.provider_match and p.provider_match.is_match(key)), None
                )
        self._provider_of[key] = found
        return found

    def find(self, provider: str, model: str) -> DatabaseModel | None:
        """The database's price for ``model`` at ``provider`` (its own matching rules), or ``None``."""
        key = (provider, model)
        if key in self._models:
            return self._models[key]
        found: DatabaseModel | None = None
        db_provider = self.provider(provider)
        if db_provider is not None and model.strip():
            info = db_provider.find_model(model.strip(), all_providers=self.providers)
            if info is not None:
                owner = next((p for p in self.providers if any(m is info for m in p.models)), db_provider)
                found = build_model(owner, info)
        with self._lock:
            self._models[key] = found
        return found

    def models(self, provider: str) -> list[DatabaseModel]:
        """Every priceable model the database lists for ``provider`` itself (no fallbacks)."""
        db_provider = self.provider(provider)
        if db_provider is None:
            return []
        out = []
        for info in db_provider.models:
            built = build_model(db_provider, info)
            if built is not None:
                out.append(built)
        return out

    def provider_ids(self) -> Mapping[str, str]:
        """Database provider id → display name."""
        return {p.id: p.name for p in self.providers}


def _bundled_providers() -> list[Provider]:
    try:
        from genai_prices.data import providers as bundled
    except ImportError:  # a dependency (the 0.1 line on Python 3.10); if removed, price files only
        logger.warning("genai-prices is not installed: calls are priced from price files only")
        return []
    return list(bundled)


_default: PriceDatabase | None = None
_default_lock = threading.Lock()


def default_database() -> PriceDatabase:
    """The process-wide database layer (nothing is read until it is first asked for a price)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = PriceDatabase()
    return _default
