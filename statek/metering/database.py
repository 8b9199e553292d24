"""The default price layer: the field's maintained price database, ``genai-prices`` (pydantic, MIT).

statek takes the database's *data* and its *model matching* (each provider's ``find_model``, with
its fallbacks such as Azure → OpenAI and Google → Anthropic), and prices calls with its own integer
arithmetic (:mod:`statek.metering.cost`): ``genai_prices.calc_price`` costs 50-75 µs per call, a
compiled rate well under one.

Nothing is imported until the first lookup that reaches this layer: ``import statek`` never loads
the database (about 0.25 s). The data is the one bundled in the installed package; nothing is ever
fetched over the network. Users get new prices with ``pip install -U genai-prices``.

Which units are billed: input, cache reads, cache writes (the one-hour part at its own price when
listed), output, reasoning (when the model lists a reasoning price), audio and image tokens (input,
cached audio, output: carved out of their parent's count when the model lists their price, as
``genai-prices`` does), and per-request fees (``requests_kcount``). Tiered prices (``TieredPrices``, a "cliff" on the whole prompt size) and
conditional prices (effective dates, DeepSeek's off-peak hours) are compiled into one rate per
tier and condition. Units a chat call does not report (video, searches, pages, audio hours) add nothing.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from copy import copy
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
    "acceptable_match",
    "version_suffix",
    "PriceDatabase",
    "database_version",
    "default_database",
]

_MODEL_CACHE_LIMIT = 4_096
"""Cached lookups (found or not) before the cache starts over: distinct model names are unbounded."""

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
    starts: date | None = None
    """A service tier's prices: the first UTC day the database has them for (before it, none)."""
    service_tier: str | None = None

    @property
    def only(self) -> CompiledRate | None:
        """The single rate when prices never change with time, else ``None``."""
        if self.starts is None and len(self.rates) == 1 and self.rates[0][0] is None:
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


_VERSION_TOKEN: Final = re.compile(r"\d+|latest|preview|exp|v\d+(?::\d+)?", re.IGNORECASE)
_SEPARATORS: Final = re.compile(r"[-@:_]")


def version_suffix(rest: str) -> bool:
    """Whether ``rest`` (what follows a model id) only names a version of that model: date stamps and
    numbers (``-2024-11-20``, ``@20240620``, ``-0613``, ``-001``), ``-latest``, ``-preview``, ``-exp``,
    ``-v1:0``, separated by ``-``, ``@``, ``:`` or ``_``. ``-mini``, ``-cyber``, ``.5``, ``-codex``
    name other models."""
    if not rest:
        return True
    if not _SEPARATORS.match(rest):
        return False
    tokens = [t for t in _SEPARATORS.split(rest) if t]
    return bool(tokens) and all(_VERSION_TOKEN.fullmatch(t) for t in tokens)


def acceptable_match(requested: str, matched_id: str) -> bool:
    """The rule for a database match (docs/pricing.md, "Matching names"): the requested id is the
    matched model's id, or that id followed by a :func:`version_suffix`, or does not start with it at
    all (a provider-qualified or region-prefixed id the database lists as an alternative name). A
    fine-tune ``ft:BASE:ORG:NAME:ID`` is matched as ``ft:BASE``."""
    req, mid = requested.casefold(), matched_id.casefold()
    if req.startswith("ft:") and req.count(":") > 1:  # ft:BASE:ORG:NAME:ID is a fine-tune of ft:BASE
        req = req[: req.index(":", 3)]
    if not req.startswith(mid):
        return True
    return version_suffix(req[len(mid) :])


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
    if input_price is None:
        return None
    return Prices(
        input_price,
        Decimal(0) if output_price is None else output_price,
        _tier_value(values.get("cache_read_mtok"), threshold),
        _tier_value(values.get("cache_write_mtok"), threshold)
        or _tier_value(values.get("cache_write_5m_mtok"), threshold),
        _tier_value(values.get("cache_write_1h_mtok"), threshold),
        _tier_value(values.get(_REASONING), threshold),
        input_audio=_tier_value(values.get("input_audio_mtok"), threshold),
        cached_audio=_tier_value(values.get("cache_audio_read_mtok"), threshold),
        output_audio=_tier_value(values.get("output_audio_mtok"), threshold),
        input_image=_tier_value(values.get("input_image_mtok"), threshold),
        output_image=_tier_value(values.get("output_image_mtok"), threshold),
        output_listed=output_price is not None,  # embedding models list an input price only
        web_search_per_k=_decimal(values.get("web_searches_kcount")),
    )


def _compile(
    model_price: ModelPrice,
) -> tuple[CompiledRate, Prices, Decimal | None, list[tuple[int, Prices]]]:
    """A rate with one long-context level per tier start; raises ``LookupError`` if unpriceable."""
    base = _prices(model_price, None)
    if base is None:
        raise LookupError("no input token price")
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


def _tier_variants(model: ModelInfo, tier: str) -> list[Any]:
    return [v for v in model.price_variants or () if v.when == {"service_tier": tier}]


def _with_variants(standard: ModelPrice, variants: list[Any]) -> ModelPrice:
    """``standard`` with the variants' prices over it (the first variant listing a price wins)."""
    merged = copy(standard)
    overrides: dict[str, Any] = {}
    for variant in variants:
        for key, price in variant.prices.__dict__.items():
            if price is not None:
                overrides.setdefault(key, price)
    merged.__dict__.update(overrides)
    return merged


def _start(constraint: Any) -> date | None:
    return constraint.start_date if hasattr(constraint, "start_date") else None


def _tier_pairs(
    pairs: list[Any], variants: list[Any]
) -> tuple[list[tuple[_Condition | None, Any]], date | None]:
    """The standard ``pairs`` with a tier's ``variants`` over them, as dated conditions: one per day
    a standard price or a variant starts, each with what is in force from that day (the first
    variant listing a price wins, as in the database). The second value is the first day the tier
    has prices (``None``: always)."""
    if any(c is not None and c.start_date is None for c, _ in pairs):  # time-of-day standard prices
        return [(c, _with_variants(p, variants)) for c, p in pairs], None
    variant_days = [_start(v.constraint) for v in variants]
    starts = None if any(d is None for d in variant_days) else min(d for d in variant_days if d)
    days = sorted({d for d in variant_days if d} | {c.start_date for c, _ in pairs if c and c.start_date})
    out: list[tuple[_Condition | None, Any]] = []
    for day in [None, *days]:
        if day is None and starts is not None:
            continue  # before the first variant the tier has no prices at all
        standard = pairs[0][1]
        for condition, prices in pairs:
            if condition is None or (
                day is not None and condition.start_date and condition.start_date <= day
            ):
                standard = prices
        active = [v for v, d in zip(variants, variant_days) if d is None or (day is not None and d <= day)]
        out.append((None if day is None else _Condition(start_date=day), _with_variants(standard, active)))
    return out, starts


def build_model(provider: Provider, model: ModelInfo, tier: str | None = None) -> DatabaseModel | None:
    """Compile ``model`` (``None`` when the database gives it no input token price; embedding models
    list no output price). With ``tier``: its prices in that service tier (the database's
    ``service_tier`` price variants over the standard prices), ``None`` when it lists none."""
    conditional = model.prices if isinstance(model.prices, list) else None
    pairs = (
        [(_condition(c.constraint), c.prices) for c in conditional]
        if conditional is not None
        else [(None, model.prices)]
    )
    starts: date | None = None
    if tier is not None:
        variants = _tier_variants(model, tier)
        if not variants:
            return None
        pairs, starts = _tier_pairs(pairs, variants)
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
        starts,
        tier,
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
        self._tiers: dict[tuple[str, str, str], DatabaseModel | None] = {}
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
        """The database's price for ``model`` at ``provider`` (its own matching rules), or ``None``.

        A match by prefix is taken only when what follows the matched model's id is a version suffix
        (:func:`version_suffix`): ``gpt-4o-2024-11-20`` is priced as the database's ``gpt-4o`` row,
        ``gemini-3.8-flash-cyber`` is not priced as ``gemini-3.8-flash`` (logged once, unpriced)."""
        key = (provider, model)
        if key in self._models:
            return self._models[key]
        found: DatabaseModel | None = None
        db_provider = self.provider(provider)
        if db_provider is not None and model.strip():
            info = db_provider.find_model(model.strip(), all_providers=self.providers)
            if info is not None and not acceptable_match(model.strip(), info.id):
                logger.warning(
                    "statek does not price %s model %r by the price database's %r row: it names another "
                    "model (add a price row, or list %r in a row's MATCH column)",
                    provider,
                    model,
                    info.id,
                    model,
                )
                info = None
            if info is not None:
                owner = next((p for p in self.providers if any(m is info for m in p.models)), db_provider)
                found = build_model(owner, info)
        with self._lock:
            if len(self._models) >= _MODEL_CACHE_LIMIT:
                self._models.clear()  # a bound against unbounded model ids; real workloads use a few
            self._models[key] = found
        return found

    def find_tier(self, provider: str, model: str, tier: str) -> DatabaseModel | None:
        """The database's price for ``model`` in service tier ``tier`` (its ``service_tier`` price
        variants), or ``None``: also when the model is found through another provider (the database's
        tier rates are its own provider's)."""
        key = (provider, model, tier)
        if key in self._tiers:
            return self._tiers[key]
        found: DatabaseModel | None = None
        standard = self.find(provider, model)
        db_provider = self.provider(provider)
        if standard is not None and db_provider is not None and standard.provider_id == db_provider.id:
            info = next((m for m in db_provider.models if m.id == standard.model_id), None)
            if info is not None:
                found = build_model(db_provider, info, tier)
        with self._lock:
            self._tiers[key] = found
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
