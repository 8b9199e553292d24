"""Seed API: :class:`LLM_Usage`, the usage and cost a job accumulated.

Two ways to fill one in. By hand (the seed's way): set the ``total_*`` fields and a ``pricing``,
and :attr:`LLM_Usage.total_cost` applies the seed rule. By recording calls (what ``Job`` does):
:meth:`LLM_Usage.record` adds each call's counts and its own cost, priced when the call was made
(with that call's model, tier and date); ``total_cost`` is then the sum of those costs and is never
computed again from summed tokens.

Cost statuses are counted per call: ``calculated`` and ``reported`` calls add their cost;
``unpriced`` calls (usage but no price) and ``no_usage`` calls (an answer without any usage) add
none and are counted apart, so a total is never a made-up ``$0``. When a provider reported a cost
and the price table priced the call too, the reported figure is the cost and ``reported - table``
is summed in :attr:`LLM_Usage.total_cost_drift` (a stale table shows here first).

A call the metering path records for a job is queued (:meth:`LLM_Usage.fed_by`, the job's
``add_call``), and the queue is added up when a figure is read (every read sees every call queued
before it), or when it holds :data:`FOLD_AT` calls: a job whose usage nobody reads until its end,
or at all, pays for one append per call, and a long job's queue stays short. :meth:`LLM_Usage.record`,
called directly, adds its call at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from ..model_pricing import ModelPricing, get_model_pricing

if TYPE_CHECKING:
    from typing_extensions import Self

    from ..types import CallDetail
    from .budget import BudgetLedger

__all__ = ["FOLD_AT", "LLM_Usage", "ModelUsage", "RecordedCall"]

_EXACT = Context(prec=80)
_PLACEHOLDER: Any = object()  # the default ``pricing``: a new empty record for each usage
_T = TypeVar("_T")

FOLD_AT = 64
"""Queued calls beyond which recording adds them up at once rather than at the next read."""

RecordedCall = tuple[str, str, "CallDetail", "str | None", "Decimal | None", "Decimal | None"]
"""One answered call as queued by :meth:`LLM_Usage.record`: ``(provider, model, stats, status, cost,
table_cost)``; ``status`` ``None`` takes the status and cost of ``stats``."""


@dataclass(frozen=True, slots=True)
class ModelUsage:
    """A snapshot of what one (provider, model) used within a job.

    ``cost`` sums the costs of the calls that had one (``None`` when none did);
    ``unpriced_calls`` counts the calls without any, which ``cost`` therefore leaves out.
    """

    provider: str
    model: str
    calls: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    cost: Decimal | None = None
    reported_cost: Decimal | None = None
    calculated_calls: int = 0
    reported_calls: int = 0
    unpriced_calls: int = 0
    failed_calls: int = 0
    no_usage_calls: int = 0
    cost_drift: Decimal | None = None


class _Totals:
    """Mutable per-model counters, touched only under the usage's lock."""

    __slots__ = (
        "bytes_received",
        "bytes_sent",
        "cache_write_tokens",
        "cached_tokens",
        "calculated_calls",
        "calls",
        "cost",
        "cost_drift",
        "failed_calls",
        "input_tokens",
        "no_usage_calls",
        "output_tokens",
        "reasoning_tokens",
        "reported_calls",
        "reported_cost",
        "unpriced_calls",
    )

    def __init__(self) -> None:
        self.calls = self.input_tokens = self.cached_tokens = self.cache_write_tokens = 0
        self.output_tokens = self.reasoning_tokens = self.bytes_sent = self.bytes_received = 0
        self.calculated_calls = self.reported_calls = self.unpriced_calls = self.failed_calls = 0
        self.no_usage_calls = 0
        self.cost: Decimal | None = None
        self.cost_drift: Decimal | None = None
        self.reported_cost: Decimal | None = None


class _Figure(Generic[_T]):
    """A field of :class:`LLM_Usage`: reading or setting it first adds up the queued calls."""

    __slots__ = ("_store",)

    def __set_name__(self, owner: type, name: str) -> None:
        self._store = "_" + name

    @overload
    def __get__(self, usage: None, owner: type | None = None) -> Self: ...

    @overload
    def __get__(self, usage: LLM_Usage, owner: type | None = None) -> _T: ...

    def __get__(self, usage: LLM_Usage | None, owner: type | None = None) -> Any:
        if usage is None:
            return self
        if usage._queue:
            usage.fold()
        return getattr(usage, self._store)

    def __set__(self, usage: LLM_Usage, value: _T) -> None:
        usage.fold()
        setattr(usage, self._store, value)


class LLM_Usage:
    """Accumulated byte counts, token counts, provider-reported cost and calculated cost of a job.

    ``total_cached_tokens`` is included in ``total_input_tokens``. ``total_reported_cost`` sums what
    providers reported (``None`` when none did). See :attr:`total_cost` for how the cost is obtained.
    ``context_bytes`` is ``total_bytes_sent + total_bytes_received``, updated after every call (the
    original's contract). ``pricing`` is a record, never ``None`` unless set so by hand: an empty
    placeholder (``is_valid`` false) by default, the model's price with :meth:`for_model`.
    :meth:`record` is thread-safe; reading a field while calls are being recorded gives a value that
    was current at some moment (use :meth:`by_model` for a consistent per-model snapshot).
    """

    context_bytes = _Figure[int]()
    total_bytes_sent = _Figure[int]()
    total_bytes_received = _Figure[int]()
    total_input_tokens = _Figure[int]()
    total_cached_tokens = _Figure[int]()
    total_output_tokens = _Figure[int]()
    total_reported_cost = _Figure["Decimal | None"]()
    total_cache_write_tokens = _Figure[int]()
    total_reasoning_tokens = _Figure[int]()
    calls = _Figure[int]()
    unpriced_calls = _Figure[int]()
    failed_calls = _Figure[int]()
    no_usage_calls = _Figure[int]()
    total_cost_drift = _Figure["Decimal | None"]()

    def __init__(
        self,
        pricing: ModelPricing | None = _PLACEHOLDER,
        context_bytes: int = 0,
        total_bytes_sent: int = 0,
        total_bytes_received: int = 0,
        total_input_tokens: int = 0,
        total_cached_tokens: int = 0,
        total_output_tokens: int = 0,
        total_reported_cost: Decimal | None = None,
        total_cache_write_tokens: int = 0,
        total_reasoning_tokens: int = 0,
        calls: int = 0,
        unpriced_calls: int = 0,
        failed_calls: int = 0,
        no_usage_calls: int = 0,
        total_cost_drift: Decimal | None = None,
    ) -> None:
        self.pricing = ModelPricing() if pricing is _PLACEHOLDER else pricing
        self._context_bytes = context_bytes
        self._total_bytes_sent = total_bytes_sent
        self._total_bytes_received = total_bytes_received
        self._total_input_tokens = total_input_tokens
        self._total_cached_tokens = total_cached_tokens
        self._total_output_tokens = total_output_tokens
        self._total_reported_cost = total_reported_cost
        self._total_cache_write_tokens = total_cache_write_tokens
        self._total_reasoning_tokens = total_reasoning_tokens
        self._calls = calls
        self._unpriced_calls = unpriced_calls
        self._failed_calls = failed_calls
        self._no_usage_calls = no_usage_calls
        self._total_cost_drift = total_cost_drift
        self.budget: BudgetLedger | None = None
        """The job's budget (spend against the limits: ``budget.status()``), ``None`` when unlimited."""
        self._recorded_cost: Decimal | None = None
        self._models: dict[tuple[str, str], _Totals] = {}
        self._lock = threading.Lock()
        self._queue: list[RecordedCall] = []

    @classmethod
    def fed_by(cls, queue: list[RecordedCall]) -> LLM_Usage:
        """An empty usage that also adds up the calls someone else appends to ``queue`` (a
        :class:`~statek.executors.job.Job` does, so that its usage is made only when read); the
        appender calls :meth:`fold` once the queue holds more than :data:`FOLD_AT` calls."""
        usage = cls()
        usage._queue = queue
        return usage

    @classmethod
    def for_model(cls, provider: str, model: str, model_family: str | None = None) -> LLM_Usage:
        """An empty usage priced with the table's current price for ``model``.

        ``pricing`` is always a record: for a model nothing prices, the empty placeholder that
        :func:`~statek.model_pricing.set_model_pricing` later fills in place (as in the original).
        """
        pricing = get_model_pricing(provider, model, model_family)
        return cls(pricing=pricing if pricing is not None else ModelPricing())

    def __repr__(self) -> str:
        return "LLM_Usage(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS) + ")"

    @property
    def total_cost(self) -> Decimal | None:
        """The job's cost in USD, or ``None`` when it cannot be known (never a made-up ``$0``).

        After :meth:`record`: the sum of the recorded calls' own costs; calls that were unpriced add
        nothing and are counted in :attr:`unpriced_calls`; ``None`` when no call had a cost.

        Filled in by hand (no call recorded): when ``pricing`` is valid and tokens were used,
        non-cached input at the input price, cached input at the cached price (the input price when
        there is none) and output at the output price; else the provider-reported cost; else ``None``.
        """
        if self.calls:
            return self._recorded_cost
        pricing = self.pricing
        if pricing is not None and pricing.is_valid and (self.total_input_tokens or self.total_output_tokens):
            input_price: Decimal = pricing.input_price_per_M  # type: ignore[assignment]
            cached_price = pricing.input_price_per_cached_M
            if cached_price is None:
                cached_price = input_price
            cached = min(self.total_cached_tokens, self.total_input_tokens)
            total = (
                (self.total_input_tokens - cached) * input_price
                + cached * cached_price
                + self.total_output_tokens * pricing.output_price_per_M  # type: ignore[operator]
            )
            return total.scaleb(-6, _EXACT)
        return self.total_reported_cost

    def record(
        self,
        provider: str,
        model: str,
        stats: CallDetail,
        status: str | None = None,
        cost: Decimal | None = None,
        table_cost: Decimal | None = None,
    ) -> None:
        """Add one priced call.

        ``status``/``cost`` are the call's cost status and cost (default: ``stats.cost_status`` and
        ``stats.priced_cost``); ``table_cost`` is the table's price of a call whose cost was
        reported, for the drift. Added at once (after any queued calls), so a malformed ``stats``
        raises here, to its caller; the metering path queues its calls instead (see the module
        docstring).
        """
        with self._lock:
            self._fold_queue()  # the queued calls first, so that by_model keeps first-use order
            self._add(provider, model, stats, status, cost, table_cost)

    def record_failure(self, provider: str, model: str, bytes_sent: int = 0, bytes_received: int = 0) -> None:
        """Add one call that failed for good (after its retries): it counts in :attr:`failed_calls` and
        its bytes on the wire in the byte totals; it has no tokens and no cost, and is not in
        :attr:`calls` (the successful calls)."""
        with self._lock:
            self._fold_queue()  # the calls before it first, so that by_model keeps first-use order
            totals = self._totals(provider, model)
            self._failed_calls += 1
            self._total_bytes_sent += bytes_sent
            self._total_bytes_received += bytes_received
            self._context_bytes = self._total_bytes_sent + self._total_bytes_received
            totals.failed_calls += 1
            totals.bytes_sent += bytes_sent
            totals.bytes_received += bytes_received

    def fold(self) -> None:
        """Add up the queued calls now (every read of a figure does it first)."""
        with self._lock:
            self._fold_queue()

    def _fold_queue(self) -> None:
        # A call leaves the queue only once it is added, so a reader that finds the queue empty
        # (and skips the lock) never misses a call that another thread is adding up; calls
        # appended meanwhile stay queued for the next round.
        queue = self._queue
        while queue:
            added = len(queue)
            for call in queue[:added]:
                self._add(*call)
            del queue[:added]

    def _add(
        self,
        provider: str,
        model: str,
        stats: CallDetail,
        status: str | None,
        cost: Decimal | None,
        table_cost: Decimal | None,
    ) -> None:
        """Add one queued call; call with the lock held."""
        if status is None:
            status = getattr(stats, "cost_status", "unpriced")
            cost = getattr(stats, "priced_cost", None)
        if status in ("unpriced", "no_usage"):
            cost = None
        reported = stats.cost
        totals = self._totals(provider, model)
        self._calls += 1
        self._total_bytes_sent += stats.total_bytes_sent
        self._total_bytes_received += stats.total_bytes_received
        self._context_bytes = self._total_bytes_sent + self._total_bytes_received
        self._total_input_tokens += stats.input_tokens
        self._total_cached_tokens += stats.cached_tokens
        self._total_output_tokens += stats.output_tokens
        cache_write = getattr(stats, "cache_write_tokens", 0)
        reasoning = getattr(stats, "reasoning_tokens", 0)
        self._total_cache_write_tokens += cache_write
        self._total_reasoning_tokens += reasoning
        totals.calls += 1
        totals.input_tokens += stats.input_tokens
        totals.cached_tokens += stats.cached_tokens
        totals.cache_write_tokens += cache_write
        totals.output_tokens += stats.output_tokens
        totals.reasoning_tokens += reasoning
        if status == "reported" and cost is not None and table_cost is not None:
            drift = cost - table_cost
            self._total_cost_drift = (
                drift if self._total_cost_drift is None else self._total_cost_drift + drift
            )
            totals.cost_drift = drift if totals.cost_drift is None else totals.cost_drift + drift
        totals.bytes_sent += stats.total_bytes_sent
        totals.bytes_received += stats.total_bytes_received
        if reported is not None:
            self._total_reported_cost = (
                reported if self._total_reported_cost is None else self._total_reported_cost + reported
            )
            totals.reported_cost = (
                reported if totals.reported_cost is None else totals.reported_cost + reported
            )
        if cost is None:
            if status == "no_usage":
                self._no_usage_calls += 1
                totals.no_usage_calls += 1
            else:
                self._unpriced_calls += 1
                totals.unpriced_calls += 1
            return
        self._recorded_cost = cost if self._recorded_cost is None else self._recorded_cost + cost
        totals.cost = cost if totals.cost is None else totals.cost + cost
        if status == "reserved":  # no usage in the answer: counted at its budget reservation
            self._no_usage_calls += 1
            totals.no_usage_calls += 1
        elif status == "calculated":
            totals.calculated_calls += 1
        else:
            totals.reported_calls += 1

    def _totals(self, provider: str, model: str) -> _Totals:
        """The model's counters (created on first use); call with the lock held."""
        totals = self._models.get((provider, model))
        if totals is None:
            totals = self._models[(provider, model)] = _Totals()
        return totals

    def by_model(self) -> dict[tuple[str, str], ModelUsage]:
        """A consistent snapshot of the per-(provider, model) breakdown, in first-use order."""
        with self._lock:
            self._fold_queue()
            return {
                (provider, model): ModelUsage(
                    provider,
                    model,
                    calls=t.calls,
                    input_tokens=t.input_tokens,
                    cached_tokens=t.cached_tokens,
                    cache_write_tokens=t.cache_write_tokens,
                    output_tokens=t.output_tokens,
                    reasoning_tokens=t.reasoning_tokens,
                    bytes_sent=t.bytes_sent,
                    bytes_received=t.bytes_received,
                    cost=t.cost,
                    reported_cost=t.reported_cost,
                    calculated_calls=t.calculated_calls,
                    reported_calls=t.reported_calls,
                    unpriced_calls=t.unpriced_calls,
                    failed_calls=t.failed_calls,
                    no_usage_calls=t.no_usage_calls,
                    cost_drift=t.cost_drift,
                )
                for (provider, model), t in self._models.items()
            }


_FIELDS = (
    "pricing",
    "context_bytes",
    "total_bytes_sent",
    "total_bytes_received",
    "total_input_tokens",
    "total_cached_tokens",
    "total_output_tokens",
    "total_reported_cost",
    "total_cache_write_tokens",
    "total_reasoning_tokens",
    "calls",
    "unpriced_calls",
    "failed_calls",
    "no_usage_calls",
    "total_cost_drift",
    "budget",
)
"""The fields, in the order of the constructor's arguments (the seed's dataclass order) and the repr."""
