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
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigurationError
from .budget import Budget, BudgetLedger, ledgers_of
from .llm_usage import LLM_Usage

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Job", "current_job"]

_log = logging.getLogger("statek.telemetry")
_current: ContextVar[Job | None] = ContextVar("statek_job", default=None)


def current_job() -> Job | None:
    """The innermost job entered in this context, or ``None``."""
    return _current.get()


class Job:
    """A named unit of work; every provider call made inside it accumulates into :attr:`usage`.

    ``attributes`` are small string labels (tenant, feature, ...). ``budget`` limits what the job
    and its children may spend (default: :meth:`Budget.from_env`; ``Budget()`` for none); its
    ledger is :attr:`budget` (also ``usage.budget``), ``None`` when nothing is limited. A job is
    entered once, with ``with`` or ``async with``; entering it again raises :class:`ConfigurationError`.
    """

    def __init__(
        self, job_id: str, *, attributes: Mapping[str, str] | None = None, budget: Budget | None = None
    ) -> None:
        if not isinstance(job_id, str) or not job_id.strip():
            raise ConfigurationError(f"a Job needs a non-empty string id, not {job_id!r}")
        self.job_id = job_id
        self.usage = LLM_Usage()
        limits = Budget.from_env() if budget is None else budget
        self.budget: BudgetLedger | None = BudgetLedger(job_id, limits) if limits.is_limited else None
        self.usage.budget = self.budget
        self.parent: Job | None = None
        self.lineage: tuple[Job, ...] = (self,)
        """This job and its ancestors, innermost first: the usages a call inside it is added to."""
        self.budgets: tuple[BudgetLedger, ...] = ledgers_of(self)
        """The budgets a call inside this job counts against: its own and its ancestors', innermost first."""
        self._own = {str(k): str(v) for k, v in (attributes or {}).items()}
        self.attributes: Mapping[str, str] = MappingProxyType(dict(self._own))
        self._entered = False
        self._token: Token[Job | None] | None = None
        self._span: Any = None
        self._span_token: object = None

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
            self.lineage = (self, *parent.lineage)
            self.attributes = MappingProxyType({**parent.attributes, **self._own})
            self.budgets = ledgers_of(self)
        self._start_span()
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
        self._end_span(exc)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # ----------------------------------------------------------------- the job span
    def _start_span(self) -> None:
        try:
            from opentelemetry import context, trace

            from ..telemetry import telemetry_config

            attributes = {"statek.job.id": self.job_id}
            attributes.update({f"statek.job.{k}": v for k, v in self.attributes.items() if k != "id"})
            self._span = telemetry_config().tracer.start_span(f"job {self.job_id}", attributes=attributes)
            self._span_token = context.attach(trace.set_span_in_context(self._span))
        except Exception:  # noqa: BLE001 - telemetry never breaks the job
            _log.exception("statek could not start the span of job %r", self.job_id)

    def _end_span(self, exc: BaseException | None) -> None:
        span, self._span = self._span, None
        if span is None:
            return
        try:
            from opentelemetry import context
            from opentelemetry.trace import Status, StatusCode

            if self._span_token is not None:
                try:
                    context.detach(self._span_token)  # type: ignore[arg-type]
                finally:
                    self._span_token = None
            span.set_attributes(self.totals())
            if exc is not None:
                span.set_attribute("error.type", type(exc).__qualname__)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {str(exc)[:200]}"))
            span.end()
        except Exception:  # noqa: BLE001
            _log.exception("statek could not end the span of job %r", self.job_id)

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
