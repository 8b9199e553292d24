"""``Job``: the unit of work whose provider calls add up into one :class:`LLM_Usage`.

::

    with Job("job-42", attributes={"tenant": "acme"}) as job:      # or: async with Job(...)
        await api.process_request(...)
    job.usage.total_cost

The current job lives in a ``contextvars.ContextVar``, so it follows awaits and is inherited by
asyncio tasks created inside the block (and by ``asyncio.to_thread`` / ``contextvars.copy_context``),
while a plain ``threading.Thread`` starts with no job, as contextvars do. Jobs nest: a call made in
a child job is added to the child and to every ancestor (:attr:`Job.lineage`); a child inherits its
parent's attributes unless it sets its own.

A job may carry a :class:`~statek.executors.budget.Budget` (``Job("j", budget=Budget(usd="2.50"))``;
without ``budget=``, the environment's, see :meth:`Budget.from_env`): a call that would pass it, or
any ancestor's, raises :class:`~statek.exceptions.BudgetExceededError` before it is sent.

The job id goes on spans only (``statek.job.id`` on each call span and on the job's own span, which
ends with the job's totals). It is never a metric label; a job's attributes become metric labels
only for the keys allow-listed with ``configure_telemetry(job_label_keys=...)``.

A job's own span is not free (about as much as the call's own, and one more object per call for
the garbage collector), so by default a job gets one only when it earns it: when it held more than
one call (its own or its child jobs'), a call of it was refused by a budget, or its body raised.
That span is made when the job ends, starts at the time the job was entered, links to the spans of
the job's calls (up to :data:`MAX_CALL_LINKS`), carries the budget and what it left, and one
``statek.budget.refused`` event per refusal (up to :data:`MAX_REFUSAL_EVENTS`, at the time each
happened); a job per request with one call costs no span, budget or not. ``Job(..., span=True)``
asks for the span from entry, current while the job runs, so the calls' spans are its children;
``span=False`` never makes one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any

from ..call_record import JobRecord, job_consumers
from ..exceptions import ConfigurationError
from .budget import Budget, BudgetLedger, ledgers_of
from .budget_limits import default_limits
from .llm_usage import FOLD_AT, LLM_Usage, RecordedCall

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["MAX_CALL_LINKS", "MAX_REFUSAL_EVENTS", "Job", "current_job"]

MAX_CALL_LINKS = 64
"""Links from a job's span (made at its end) to its calls' spans; later calls are not linked."""
MAX_REFUSAL_EVENTS = 64
"""Budget refusals kept as events for a job's span made at its end; later ones are only counted."""

_log = logging.getLogger("statek.telemetry")
_NO_ATTRIBUTES: Mapping[str, str] = MappingProxyType({})
_current: ContextVar[Job | None] = ContextVar("statek_job", default=None)
_usage_lock = threading.Lock()  # makes a job's usage once, however many threads read it first


def current_job() -> Job | None:
    """The innermost job entered in this context, or ``None``."""
    return _current.get()


class Job:
    """A named unit of work; every provider call made inside it accumulates into :attr:`usage`.

    ``attributes`` are small string labels (tenant, feature, ...). ``budget`` limits what the job
    and its children may spend (default: :meth:`Budget.from_env`; ``Budget()`` for none); its
    ledger is :attr:`budget` (also ``usage.budget``), ``None`` when nothing is limited. ``span``:
    ``None`` (default) a span only if the job earns one, ``True`` always
    (parenting the calls), ``False`` never (see the module docstring). A job is entered once, with ``with`` or
    ``async with``; entering it again raises :class:`ConfigurationError`.
    """

    # Class-level defaults: most jobs never change these, so a new job does not store them.
    budget: BudgetLedger | None = None
    """The job's own budget ledger, ``None`` when nothing is limited."""
    budgets: tuple[BudgetLedger, ...] = ()
    """The budgets a call inside this job counts against: its own and its ancestors', innermost first."""
    parent: Job | None = None
    attributes: Mapping[str, str] = _NO_ATTRIBUTES
    span: Any = None
    """The job's open span, set and ended by the span consumer (:mod:`statek.telemetry.job_span`)."""
    entered_wall = 0.0
    """When the job was entered (epoch seconds)."""
    ancestors: tuple[Job, ...] = ()
    """The jobs this one was entered in, innermost first."""
    _own: Mapping[str, str] = _NO_ATTRIBUTES
    _entered = False
    _token: Token[Job | None] | None = None
    _usage: LLM_Usage | None = None
    _call_spans: list[Any] | None = None
    _refusals: list[tuple[int, dict[str, Any]]] | None = None

    def __init__(
        self,
        job_id: str,
        *,
        attributes: Mapping[str, str] | None = None,
        budget: Budget | None = None,
        span: bool | None = None,
    ) -> None:
        if not isinstance(job_id, str) or not job_id.strip():
            raise ConfigurationError(f"a Job needs a non-empty string id, not {job_id!r}")
        self.job_id = job_id
        limits = default_limits() if budget is None else budget if budget.is_limited else None
        if limits is not None:
            self.budget = BudgetLedger(job_id, limits)
            self.budgets = (self.budget,)
        if attributes:
            self._own = {str(k): str(v) for k, v in attributes.items()}
            self.attributes = MappingProxyType(dict(self._own))
        self.span_mode = span
        """``span=`` as given: ``None`` a span if earned, ``True`` from entry, ``False`` never."""
        self._queue: list[RecordedCall] = []
        """The answered calls not yet added up into :attr:`usage` (see :mod:`statek.executors.llm_usage`)."""

    @property
    def usage(self) -> LLM_Usage:
        """What the job's calls (and its child jobs') used and cost so far; made on first read."""
        usage = self._usage
        if usage is None:
            with _usage_lock:
                usage = self._usage
                if usage is None:
                    usage = LLM_Usage.fed_by(self._queue)
                    usage.budget = self.budget
                    self._usage = usage
        return usage

    @property
    def lineage(self) -> tuple[Job, ...]:
        """This job and its ancestors, innermost first: the usages a call inside it is added to."""
        # Made on each read rather than kept: a job holding a tuple that holds the job is a
        # reference cycle, which only the garbage collector frees (a collection every few hundred jobs).
        return (self, *self.ancestors)

    def __repr__(self) -> str:
        return f"Job({self.job_id!r}, calls={self.usage.calls}, cost={self.usage.total_cost})"

    # ----------------------------------------------------------------- context manager
    def __enter__(self) -> Self:
        if self._entered:
            raise ConfigurationError(
                f"Job {self.job_id!r} was already entered; create a new Job for new work"
            )
        self._entered = True
        parent = _current.get()
        if parent is not None:
            self.parent = parent
            self.ancestors = parent.lineage
            self.attributes = MappingProxyType({**parent.attributes, **self._own})
            self.budgets = ledgers_of(self)
        self.entered_wall = time.time()
        for consumer in job_consumers():
            try:
                consumer.job_started(self)
            except Exception:  # noqa: BLE001 - telemetry never breaks the job
                _log.exception("statek: the %s consumer could not start job %r", consumer.name, self.job_id)
        self._token = _current.set(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            try:
                _current.reset(self._token)
            except ValueError:  # exited in another context than it was entered in
                _current.set(self.parent)
            self._token = None
        record = JobRecord(self, self.entered_wall, time.time(), exc)
        for consumer in job_consumers():
            try:
                consumer.job_finished(record)
            except Exception:  # noqa: BLE001 - telemetry never breaks the job
                _log.exception("statek: the %s consumer could not record job %r", consumer.name, self.job_id)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # ----------------------------------------------------------------- the job's calls
    def add_call(self, call: RecordedCall, span_context: Any) -> None:
        """Add an answered call (as :meth:`LLM_Usage.record` queues it) to this job's usage, and note
        its span context for a span made at the job's end; the job usage consumer calls this for
        every job of a call's lineage."""
        queue = self._queue
        queue.append(call)
        if len(queue) > FOLD_AT:
            self.usage.fold()
        self.note_call_span(span_context)

    def add_failure(
        self, provider: str, model: str, bytes_sent: int, bytes_received: int, span_context: Any
    ) -> None:
        """Add a call that failed for good (:meth:`LLM_Usage.record_failure`) and note its span context."""
        self.usage.record_failure(provider, model, bytes_sent, bytes_received)
        self.note_call_span(span_context)

    # ----------------------------------------------------------------- what the job's span needs
    def note_call_span(self, span_context: Any) -> None:
        """Remember a call's span context, for the links of a span made at the job's end."""
        if self.span_mode is None and span_context is not None:
            spans = self._call_spans
            if spans is None:
                self._call_spans = [span_context]
            elif len(spans) < MAX_CALL_LINKS:
                spans.append(span_context)

    def note_refusal(self, attributes: dict[str, Any]) -> None:
        """A call of this job was refused by a budget: a ``statek.budget.refused`` event with these
        attributes, on the job's span now when it has one, else when the span is made at the end."""
        if self.span is not None:
            self.span.add_event("statek.budget.refused", attributes)
            return
        if self.span_mode is not None:  # span=False: no span to carry it
            return
        refusals = self._refusals
        if refusals is None:
            refusals = self._refusals = []
        if len(refusals) < MAX_REFUSAL_EVENTS:
            refusals.append((time.time_ns(), attributes))

    @property
    def call_spans(self) -> tuple[Any, ...]:
        """The span contexts of the job's calls noted so far (up to :data:`MAX_CALL_LINKS`)."""
        return tuple(self._call_spans or ())

    @property
    def refusals(self) -> tuple[tuple[int, dict[str, Any]], ...]:
        """Refusals kept for a span made at the end: (time in ns, event attributes)."""
        return tuple(self._refusals or ())

    def earned_span(self, exc: BaseException | None) -> bool:
        """Whether a job with ``span=None`` gets a span at its end: it held more than one call, a call
        of it was refused, or its body raised."""
        if exc is not None or self._refusals is not None:
            return True
        usage = self._usage
        if usage is None:  # every call so far is still queued: a failure or a fold makes the usage
            return len(self._queue) > 1
        return usage.calls + usage.failed_calls > 1

    def totals(self) -> dict[str, int | float | str]:
        """The job's usage so far as ``statek.job.*`` span attributes (cost as a float, at this edge)."""
        usage = self.usage
        totals: dict[str, int | float | str] = {
            "statek.job.calls": usage.calls,
            "statek.job.unpriced_calls": usage.unpriced_calls,
            "statek.job.no_usage_calls": usage.no_usage_calls,
            "statek.job.failed_calls": usage.failed_calls,
            "statek.job.input_tokens": usage.total_input_tokens,
            "statek.job.cached_tokens": usage.total_cached_tokens,
            "statek.job.cache_write_tokens": usage.total_cache_write_tokens,
            "statek.job.output_tokens": usage.total_output_tokens,
            "statek.job.reasoning_tokens": usage.total_reasoning_tokens,
            "statek.job.bytes_sent": usage.total_bytes_sent,
            "statek.job.bytes_received": usage.total_bytes_received,
        }
        cost = usage.total_cost
        if cost is not None:
            totals["statek.job.cost.usd"] = float(cost)
        if self.budget is not None:
            totals.update(self.budget.span_attributes())
        return totals
