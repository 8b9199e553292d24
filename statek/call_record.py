"""One record per provider call and per job, and the consumers that read them.

The metering path (:mod:`statek.telemetry.pipeline`) builds a :class:`CallRecord` once per call, from
``LLM_API.process_request`` or from a client-library hook (:mod:`statek.instrumentation`), and hands
it to every registered :class:`CallConsumer`: ``start`` before anything is sent, ``finish`` once the
call has ended (``record.outcome`` says how). :class:`~statek.executors.job.Job` hands a
:class:`JobRecord` to every :class:`JobConsumer` when it ends. statek's own consumers are the budget,
the span, the metric instruments, the job's usage and the ledger; each lives in its own module and
knows the record, not the other consumers, so adding one touches no other.

Contracts for a consumer:

* ``start`` may raise :class:`~statek.exceptions.BudgetExceededError` only (the budget's refusal:
  the call is then not sent, and every consumer's ``finish`` sees ``outcome == "refused"``); any
  other exception is logged and counted, and the call goes on.
* ``finish`` is called exactly once per record, also for consumers whose ``start`` failed or never
  ran (a refused call), and must not raise: what escapes is logged and counted, never raised into
  the application.
* Consumer state for one call lives on the record (its ``span``, ``series``, ``reservation`` slots
  for statek's own consumers; :attr:`CallRecord.extras` for others).

This module sits low in the package (it imports only the standard library, and types for annotations),
so that jobs, the metering path and the consumers can all use it without an import cycle.
"""

from __future__ import annotations

import threading
import time
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from .metering.types import CallCost
    from .types import CallDetail, LLM_Response

__all__ = [
    "CallConsumer",
    "CallRecord",
    "CallSite",
    "JobConsumer",
    "JobRecord",
    "Outcome",
    "add_call_consumer",
    "add_job_consumer",
    "call_consumers",
    "job_consumers",
    "remove_call_consumer",
    "remove_job_consumer",
]

Outcome = Literal["pending", "ok", "error", "refused"]
"""How a call ended: answered (``ok``), failed (``error``: see ``error_type``), or refused by a budget
before anything was sent (``refused``). ``pending`` while it runs."""


class CallSite:
    """What is the same for every call of one endpoint and model: who the call goes to, how it is
    priced and named. Made once per (``LLM_API`` instance, model) or (client-library endpoint, model,
    operation, stream) by the metering path and shared by their records; immutable by contract, so a
    consumer may key its own per-site state on it (by identity: the span's name and attributes, say).
    """

    __slots__ = (
        "capture_context",
        "database_provider",
        "genai_provider",
        "operation",
        "output_type",
        "pricing_provider",
        "provider_key",
        "request_model",
        "server_address",
        "server_port",
        "stream",
    )

    def __init__(
        self,
        provider_key: str,
        genai_provider: str,
        pricing_provider: str,
        request_model: str,
        operation: str,
        *,
        stream: bool = False,
        server_address: str | None = None,
        server_port: int | None = None,
        output_type: str | None = None,
        capture_context: bool = False,
        database_provider: str | None = None,
    ) -> None:
        self.provider_key = provider_key
        """statek's provider key (``"OPENAI"``): the key of job usage."""
        self.genai_provider = genai_provider
        """``gen_ai.provider.name`` (``"openai"``): spans and metric labels."""
        self.pricing_provider = pricing_provider
        """The price-table provider the call is priced as."""
        self.request_model = request_model
        self.operation = operation
        """``gen_ai.operation.name``."""
        self.stream = stream
        self.server_address = server_address
        self.server_port = server_port
        self.output_type = output_type
        self.capture_context = capture_context
        """Whether the call's span is made current while the provider runs (``LLM_API`` calls: yes;
        calls read off the wire by a client-library hook: no, their answer may be read elsewhere)."""
        self.database_provider = database_provider
        """The price database's provider id when the catalogue names one (``None``: from the provider)."""

    def __repr__(self) -> str:
        return f"CallSite({self.provider_key} {self.request_model!r}, {self.operation})"


class CallRecord:
    """Everything statek knows about one provider call, filled in as the call goes.

    Built by the metering path; read by every consumer. What is the same for every call of its
    endpoint and model is its :attr:`site`'s (``provider_key``, ``request_model``, ... read through
    to it). Times: ``started_wall`` is the epoch second the call started (pricing uses it),
    ``started`` the ``time.perf_counter()`` reading at that moment, ``duration`` seconds until it ended.
    """

    __slots__ = (
        "_record_id",
        "api",
        "body",
        "bytes_received",
        "bytes_sent",
        "cost",
        "detail",
        "duration",
        "error_type",
        "exception",
        "extras",
        "first_chunk_s",
        "job",
        "max_tokens",
        "outcome",
        "request",
        "reservation",
        "response",
        "retries",
        "series",
        "site",
        "span",
        "span_context",
        "span_scope",
        "started",
        "started_wall",
        "temperature",
    )

    # The site's fields, read through (statek's own consumers read record.site directly).
    @property
    def provider_key(self) -> str:
        """statek's provider key (``"OPENAI"``): the key of job usage."""
        return self.site.provider_key

    @property
    def genai_provider(self) -> str:
        """``gen_ai.provider.name`` (``"openai"``): spans and metric labels."""
        return self.site.genai_provider

    @property
    def pricing_provider(self) -> str:
        """The price-table provider the call is priced as."""
        return self.site.pricing_provider

    @property
    def database_provider(self) -> str | None:
        """The price database's provider id when the catalogue names one (``None``: from the provider)."""
        return self.site.database_provider

    @property
    def request_model(self) -> str:
        """The model the call asked for."""
        return self.site.request_model

    @property
    def operation(self) -> str:
        """``gen_ai.operation.name``."""
        return self.site.operation

    @property
    def stream(self) -> bool:
        """Whether the answer is streamed."""
        return self.site.stream

    @property
    def server_address(self) -> str | None:
        """The server's host, or ``None``."""
        return self.site.server_address

    @property
    def server_port(self) -> int | None:
        """The server's port, or ``None``."""
        return self.site.server_port

    @property
    def output_type(self) -> str | None:
        """``gen_ai.output.type`` (``"text"``, ``"json"``), or ``None``."""
        return self.site.output_type

    @property
    def capture_context(self) -> bool:
        """Whether the call's span is current while the provider runs (see :class:`CallSite`)."""
        return self.site.capture_context

    def __init__(
        self,
        site: CallSite,
        job: Any,
        temperature: float | None = None,
        max_tokens: int | None = None,
        api: Any = None,
        request: Any = None,
        body: bytes | None = None,
    ) -> None:
        self.site = site
        """What the call shares with every call of its endpoint and model."""
        self._record_id: str | None = None
        self.job = job
        """The :class:`~statek.executors.job.Job` current when the call started, or ``None``."""
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.api = api
        """The ``LLM_API`` making the call (``None`` for a call read off the wire)."""
        self.request = request
        """The ``PreparedRequest`` of an ``LLM_API`` call, or ``None``."""
        self.body = body
        """The raw JSON request body of a call read off the wire, or ``None``."""
        self.started_wall = time.time()
        self.started = time.perf_counter()
        self.outcome: Outcome = "pending"
        self.error_type: str | None = None
        self.exception: BaseException | None = None
        self.detail: CallDetail | None = None
        """The priced detail of an answered call (tokens, cost and its status, response model, ...)."""
        self.response: LLM_Response | None = None
        self.cost: CallCost | None = None
        """How the answered call was priced (amount, status, the table's amount beside a reported one)."""
        self.bytes_sent = 0
        self.bytes_received = 0
        self.duration = 0.0
        self.first_chunk_s: float | None = None
        self.retries = 0
        self.span: Any = None
        """The call's span (the span consumer's), or ``None``."""
        self.span_context: Any = None
        """The span's ``SpanContext`` (trace and span ids), or ``None`` without a span."""
        self.span_scope: Any = None
        """What restores the context the span was made current in (the span consumer's), or ``None``."""
        self.series: Any = None
        """The metrics consumer's state for the call (the configuration it is counted under), or ``None``."""
        self.reservation: Any = None
        """The budget reservation held for the call (the budget consumer's), or ``None``."""
        self.extras: dict[str, Any] | None = None
        """State of consumers other than statek's own, by consumer name."""

    def __repr__(self) -> str:
        return (
            f"CallRecord({self.provider_key} {self.request_model!r}, outcome={self.outcome!r}, "
            f"id={self.record_id})"
        )

    @property
    def record_id(self) -> str:
        """Unique per call (a uuid4's hex): a retried write of this record is recognised by it. Made
        on first read, so a call that no consumer names pays nothing for it."""
        record_id = self._record_id
        if record_id is None:
            record_id = self._record_id = uuid.uuid4().hex
        return record_id

    @property
    def known_record_id(self) -> str | None:
        """:attr:`record_id` if a consumer has made it already, else ``None`` (making none)."""
        return self._record_id

    @property
    def table_cost(self) -> Decimal | None:
        """The price table's amount for a call whose cost the provider reported, else ``None``."""
        cost = self.cost
        return cost.table_amount if cost is not None else None

    @property
    def drift(self) -> Decimal | None:
        """Reported minus table cost, when both are known, else ``None``."""
        cost = self.cost
        return cost.drift if cost is not None else None

    @property
    def trace_id(self) -> int:
        """The call span's trace id (0 without a span)."""
        context = self.span_context
        return context.trace_id if context is not None else 0

    @property
    def span_id(self) -> int:
        """The call span's id (0 without a span)."""
        context = self.span_context
        return context.span_id if context is not None else 0


class JobRecord:
    """One ended job: the :class:`~statek.executors.job.Job` (its id, lineage, attributes, usage and
    budget) with its start and end (epoch seconds) and, when its body raised, the error."""

    __slots__ = ("_record_id", "ended_wall", "error_type", "exception", "job", "started_wall")

    def __init__(
        self, job: Any, started_wall: float, ended_wall: float, exception: BaseException | None
    ) -> None:
        self._record_id: str | None = None
        self.job = job
        self.started_wall = started_wall
        self.ended_wall = ended_wall
        self.exception = exception
        self.error_type = type(exception).__qualname__ if exception is not None else None

    @property
    def record_id(self) -> str:
        """Unique per job record (a uuid4's hex), made on first read."""
        record_id = self._record_id
        if record_id is None:
            record_id = self._record_id = uuid.uuid4().hex
        return record_id

    def __repr__(self) -> str:
        return f"JobRecord({self.job.job_id!r}, error_type={self.error_type!r})"


class CallConsumer(Protocol):
    """Reads every call (see the module docstring for the contract)."""

    name: str

    def start(self, record: CallRecord) -> None: ...

    def finish(self, record: CallRecord) -> None: ...


class JobConsumer(Protocol):
    """Reads every job: ``job_started`` when it is entered, ``job_finished`` when it ends."""

    name: str

    def job_started(self, job: Any) -> None: ...

    def job_finished(self, record: JobRecord) -> None: ...


# Copy-on-write tuples: the hot path iterates them without a lock.
_lock = threading.Lock()
_call_consumers: tuple[CallConsumer, ...] = ()
_job_consumers: tuple[JobConsumer, ...] = ()


def call_consumers() -> tuple[CallConsumer, ...]:
    """The registered call consumers, in the order they were added (``start`` in this order,
    ``finish`` too)."""
    return _call_consumers


def job_consumers() -> tuple[JobConsumer, ...]:
    """The registered job consumers, in the order they were added."""
    return _job_consumers


def add_call_consumer(consumer: CallConsumer, *, first: bool = False) -> None:
    """Register ``consumer`` for every call from now on (at the end, or ``first``); adding one that
    is registered already does nothing."""
    global _call_consumers
    with _lock:
        if consumer not in _call_consumers:
            _call_consumers = (consumer, *_call_consumers) if first else (*_call_consumers, consumer)


def remove_call_consumer(consumer: CallConsumer) -> None:
    """Unregister ``consumer`` (nothing happens when it is not registered)."""
    global _call_consumers
    with _lock:
        _call_consumers = tuple(each for each in _call_consumers if each is not consumer)


def add_job_consumer(consumer: JobConsumer) -> None:
    """Register ``consumer`` for every job from now on; adding one twice does nothing."""
    global _job_consumers
    with _lock:
        if consumer not in _job_consumers:
            _job_consumers = (*_job_consumers, consumer)


def remove_job_consumer(consumer: JobConsumer) -> None:
    """Unregister ``consumer`` (nothing happens when it is not registered)."""
    global _job_consumers
    with _lock:
        _job_consumers = tuple(each for each in _job_consumers if each is not consumer)
