"""The metering path: one :class:`~statek.call_record.CallRecord` per call, handed to its consumers.

Two entry points, one path:

* :func:`observe_call`, called by ``LLM_API.process_request`` / ``stream_request`` for every call,
  built-in or added with ``add_provider``;
* :class:`WireCall`, created by a client-library hook (:mod:`statek.instrumentation`) for a request
  an official SDK or framework sends.

Per call: build the record (provider, model, job, request numbers) -> every consumer's ``start`` (the
budget reserves and may refuse: nothing is sent, every consumer's ``finish`` sees ``refused``; the span
opens) -> the call runs -> the answer's usage is checked and priced (:mod:`.pricing`) -> the record is
finished (tokens, cost, status, duration, bytes, outcome) -> every consumer's ``finish``. The
consumers (:mod:`statek.call_record`) are the budget, the span, the metric instruments, the job's
usage and, when configured, the ledger; the path knows their interface, not their insides.

Contracts: the caller's exception comes back unchanged (same object); a consumer that fails is
logged (once per consumer and phase) and counted in ``statek.consumer.errors``, never raised, and
never changes the response; the context (the current call, the span) is restored on every path,
exceptions and cancellation included.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from .. import instruments as inst
from .._http import wire_tally
from ..call_record import CallConsumer, CallRecord, CallSite, call_consumers
from ..exceptions import BudgetExceededError, ProviderHTTPError
from ..executors.job import current_job
from ..metering.index import FROM_PROVIDER
from ..types import LLM_Response
from .budget import BudgetConsumer, apply_output_cap
from .metrics import count_consumer_error
from .pricing import checked, priced

if TYPE_CHECKING:
    from .._http import RetryEvent
    from ..executors.budget import Reservation
    from ..llm_api import LLM_API, PreparedRequest
    from ..types import CallDetail

__all__ = [
    "OPERATION",
    "WireCall",
    "count_budget_refusal",
    "WireEndpoint",
    "current_first_chunk_hook",
    "current_retry_hook",
    "observe_call",
    "operation_name",
    "report_retry",
    "reserve_wire_call",
]

_log = logging.getLogger("statek.telemetry")

OPERATION = "chat"
"""``gen_ai.operation.name`` of a provider call (except Gemini's: see :func:`operation_name`)."""
operation_name = inst.operation_name

_current: ContextVar[CallRecord | None] = ContextVar("statek_call", default=None)
_reported: set[tuple[str, str]] = set()


# ----------------------------------------------------------------------------- consumers, guarded
def _failed(consumer: CallConsumer, phase: str) -> None:
    name = getattr(consumer, "name", type(consumer).__name__)
    if (name, phase) not in _reported:  # once per consumer and phase; every failure is counted
        _reported.add((name, phase))
        _log.exception("statek: the %s consumer failed to %s a call; the call goes on", name, phase)
    else:
        _log.debug("statek: the %s consumer failed to %s a call", name, phase, exc_info=True)
    count_consumer_error(name)


def _start(record: CallRecord, consumers: tuple[CallConsumer, ...]) -> None:
    """Every consumer's ``start``; a budget refusal finishes the record as refused and is raised."""
    for consumer in consumers:
        try:
            consumer.start(record)
        except BudgetExceededError as refused:
            record.outcome = "refused"
            record.exception = refused
            record.error_type = "budget_exceeded"
            _finish(record, consumers)
            raise
        except Exception:  # noqa: BLE001 - a consumer never breaks the call
            _failed(consumer, "start")


def _finish(record: CallRecord, consumers: tuple[CallConsumer, ...]) -> None:
    for consumer in consumers:
        try:
            consumer.finish(record)
        except Exception:  # noqa: BLE001
            _failed(consumer, "finish")


def _each(record: CallRecord, method: str, *args: Any) -> None:
    """Every consumer's optional ``method`` (``first_chunk``, ``retry``), for those that have one."""
    consumers = call_consumers()
    handlers = _handlers.get((consumers, method))
    if handlers is None:  # once per registry and method (registries change rarely)
        if len(_handlers) >= 64:
            _handlers.clear()
        handlers = _handlers[(consumers, method)] = tuple(
            (consumer, handler)
            for consumer in consumers
            if (handler := getattr(consumer, method, None)) is not None
        )
    for consumer, handler in handlers:
        try:
            handler(record, *args)
        except Exception:  # noqa: BLE001
            _failed(consumer, method)


_handlers: dict[
    tuple[tuple[CallConsumer, ...], str], tuple[tuple[CallConsumer, Callable[..., Any]], ...]
] = {}


def _fail(record: CallRecord, exc: BaseException, error_type: str | None, sent: int, received: int) -> None:
    record.duration = time.perf_counter() - record.started
    record.outcome = "error"
    record.exception = exc
    if error_type is None:
        error_type = str(exc.status_code) if isinstance(exc, ProviderHTTPError) else type(exc).__qualname__
    record.error_type = error_type
    record.bytes_sent, record.bytes_received = sent, received


def _answered(record: CallRecord, detail: CallDetail) -> CallDetail:
    """Price ``detail`` and fill the record with the answered call; return the priced detail."""
    record.duration = time.perf_counter() - record.started
    site = record.site
    stats, cost = priced(
        site.pricing_provider, site.request_model, detail, record.started_wall, site.database_provider
    )
    record.outcome = "ok"
    record.detail = stats
    record.cost = cost
    record.bytes_sent, record.bytes_received = stats.total_bytes_sent, stats.total_bytes_received
    return stats


# ----------------------------------------------------------------------------- hooks for the call in flight
def current_retry_hook() -> Callable[[RetryEvent], None] | None:
    """The callback ``_http.post`` must call on each retry of the call being observed, or ``None``
    (which also tells a client-library hook that no ``LLM_API`` call is in flight)."""
    record = _current.get()
    return None if record is None else partial(_retried, record)


def report_retry(event: RetryEvent) -> None:
    """An ``on_retry`` for exchanges that run inside the observed call (``LLM_API`` requests and
    streams): hands ``event`` to the call in flight, looked up when the retry happens rather than
    bound for every call (few calls retry); nothing happens outside an observed call."""
    record = _current.get()
    if record is not None:
        _retried(record, event)


def _retried(record: CallRecord, event: RetryEvent) -> None:
    record.retries += 1
    _each(record, "retry", event)


def current_first_chunk_hook() -> Callable[[], None] | None:
    """The callback a streaming ``LLM_API`` call must call when its first chunk arrives, or ``None``."""
    record = _current.get()
    return None if record is None else partial(_first_chunk, record)


def _first_chunk(record: CallRecord) -> None:
    seconds = record.first_chunk_s = time.perf_counter() - record.started
    _each(record, "first_chunk", seconds)


# ----------------------------------------------------------------------------- LLM_API calls
class _SitesOf(dict[str, CallSite]):
    """An ``LLM_API`` instance's call sites by model, valid while its settings, provider key and
    streaming mode stay what they were when the sites were made."""

    __slots__ = ("provider_key", "settings", "stream")
    provider_key: str
    settings: Any
    stream: bool


_MAX_SITES = 64
"""Models kept per ``LLM_API`` instance; beyond this its sites are made again."""


def _site_of(api: LLM_API, model: str) -> CallSite:
    """The :class:`CallSite` of ``api``'s calls to ``model``, made once and kept on the instance."""
    sites = api._call_sites
    if sites is not None and sites.settings is api.settings:
        site = sites.get(model)
        if (
            site is not None
            and sites.provider_key is api.provider_key
            and sites.stream == getattr(api, "stream", False)
        ):
            return site
    return _made_site(api, model)


def _made_site(api: LLM_API, model: str) -> CallSite:
    """Make and keep ``api``'s site for ``model``; every site of the instance is made again when its
    settings, provider key or streaming mode changed since."""
    sites = api._call_sites
    stream = bool(getattr(api, "stream", False))
    if (
        sites is None
        or sites.settings is not api.settings
        or sites.provider_key is not api.provider_key
        or sites.stream is not stream
        or len(sites) >= _MAX_SITES
    ):
        sites = api._call_sites = _SitesOf()
        sites.settings, sites.provider_key, sites.stream = api.settings, api.provider_key, stream
    site = sites[model] = _new_site(api, model, stream)
    return site


def _new_site(api: LLM_API, model: str, stream: bool) -> CallSite:
    provider = api.genai_provider_name
    server = api.server_address()
    return CallSite(
        api.provider_key,
        provider,
        api.pricing_provider or api.provider_key,
        model,
        operation_name(provider),
        stream=stream,
        server_address=server[0],
        server_port=server[1],
        output_type="json" if getattr(api.settings, "response_format_file", None) else "text",
        capture_context=True,
        database_provider=getattr(api, "price_provider", FROM_PROVIDER),
    )


async def observe_call(
    api: LLM_API,
    params: PreparedRequest,
    run: Callable[[], Awaitable[LLM_Response]] | None = None,
    *,
    payload: dict[str, Any] | None = None,
) -> LLM_Response:
    """Run one provider call on the metering path; return its response with the cost filled in.

    The call is ``run()``, by default ``api._send(params, payload)`` (statek's send hook).
    Raises :class:`~statek.exceptions.BudgetExceededError` before the call when a budget refuses it;
    exceptions from the call propagate unchanged after their outcome is recorded. ``payload``: the
    request body the call will send (a dict), where a ``cap_output`` budget writes its cap.
    """
    consumers = call_consumers()
    record = CallRecord(
        _site_of(api, params.model), current_job(), params.temperature, params.max_tokens, api, params
    )
    _start(record, consumers)
    if record.reservation is not None and record.reservation.output_cap is not None:
        apply_output_cap(record, payload)
    token = _current.set(record)
    try:
        # payload is given whenever run is not (process_request), so _send gets its dict.
        response = await (api._send(params, payload) if run is None else run())  # type: ignore[arg-type]
    except BaseException as exc:
        _current.reset(token)
        tally = wire_tally(exc)  # also a cancelled call's: what it sent still counts
        _fail(record, exc, None, tally.bytes_sent, tally.bytes_received)
        _finish(record, consumers)
        raise
    _current.reset(token)
    try:
        if not isinstance(response, LLM_Response):  # a seed-style provider may return a plain 3-tuple
            response = LLM_Response(*response)
        answered = response.detail
    except BaseException as exc:  # a provider that returned None or junk: the call still ends here
        _fail(record, exc, None, 0, 0)
        _finish(record, consumers)
        raise
    if response._take_read():  # a built-in codec's answer, made for this call: checked as it was read
        response._set_detail(_answered(record, answered))
    else:
        detail = checked(api.provider_key, params.model, answered)
        stats = _answered(record, detail)
        if detail is answered:  # pricing changed no seed number: share the answer's tuple
            response = response._with_detail(stats)
        else:
            response = LLM_Response(response.text, None, response.call_requests, detail=stats)
    record.response = response
    _finish(record, consumers)
    return response


# ----------------------------------------------------------------------------- calls read off the wire
@dataclass(frozen=True, slots=True)
class WireEndpoint:
    """Who a call read off the wire went to: statek's provider key (job usage), the
    ``gen_ai.provider.name``, the price-table provider, and the server's host and port."""

    provider_key: str
    genai_provider_name: str
    pricing_provider: str
    server_address: str | None = None
    server_port: int | None = None


_wire_sites: dict[tuple[WireEndpoint, str, str, bool], CallSite] = {}
_MAX_WIRE_SITES = 4096
"""Sites kept for calls read off the wire (endpoint, model, operation, stream); beyond this the cache
starts again."""


def _wire_site(endpoint: WireEndpoint, model: str, operation: str, stream: bool) -> CallSite:
    """The :class:`CallSite` of a call read off the wire; ``operation`` ``"chat"`` is the provider's
    default (Gemini's is ``generate_content``)."""
    key = (endpoint, model, operation, stream)
    site = _wire_sites.get(key)
    if site is None:
        if len(_wire_sites) >= _MAX_WIRE_SITES:
            _wire_sites.clear()
        provider = endpoint.genai_provider_name
        site = _wire_sites[key] = CallSite(
            endpoint.provider_key,
            provider,
            endpoint.pricing_provider,
            model,
            operation_name(provider) if operation == OPERATION else operation,
            stream=stream,
            server_address=endpoint.server_address,
            server_port=endpoint.server_port,
            database_provider=FROM_PROVIDER,
        )
    return site


class WireCall:
    """One call a client-library hook (:mod:`statek.instrumentation`) saw, metered like an ``LLM_API`` call.

    Created when the request leaves (its consumers start then: with ``body``, the job's budget
    reserves the call and may raise :class:`~statek.exceptions.BudgetExceededError`, counted as a
    refusal: the hook must then send nothing); then :meth:`first_chunk` (streams) and exactly one of
    :meth:`succeed` / :meth:`fail`. The span is not made current (the answer may be read in another
    context than the request was sent from). Nothing else raises.
    """

    __slots__ = ("_consumers", "_record")

    def __init__(
        self,
        endpoint: WireEndpoint,
        operation: str,
        model: str,
        *,
        stream: bool = False,
        temperature: float | None = None,
        max_tokens: int | None = None,
        reservation: Reservation | None = None,
        body: bytes | None = None,
    ) -> None:
        record = self._record = CallRecord(
            _wire_site(endpoint, model, operation, stream),
            current_job(),
            temperature=temperature,
            max_tokens=max_tokens,
            body=body,
        )
        record.reservation = reservation
        self._consumers = call_consumers()
        _start(record, self._consumers)

    @property
    def record(self) -> CallRecord:
        """The call's record."""
        return self._record

    def first_chunk(self) -> None:
        """The first bytes of a streamed answer arrived now."""
        _first_chunk(self._record)

    def succeed(self, detail: CallDetail, text: str = "", calls: list[Any] | None = None) -> CallDetail:
        """The answer was read: price it (an answer without usage is ``no_usage``, never $0) and hand
        the record to its consumers. Returns the priced detail."""
        record = self._record
        stats = _answered(record, detail)
        record.response = LLM_Response(text, None, calls, detail=stats)
        _finish(record, self._consumers)
        return stats

    def fail(self, exc: BaseException | None, error_type: str, sent: int, received: int) -> None:
        """The call failed (an HTTP error status, a transport error, a stream that broke)."""
        record = self._record
        _fail(record, exc if exc is not None else RuntimeError(error_type), error_type, sent, received)
        _finish(record, self._consumers)


def reserve_wire_call(
    endpoint: WireEndpoint, model: str, body: bytes, max_tokens: int | None
) -> Reservation | None:
    """Reserve a call read off the wire against its job's budget before it is sent, for a hook that
    must reserve before it builds the :class:`WireCall` (pass the result as ``reservation=``).
    ``None`` when no budget applies. Raises :class:`~statek.exceptions.BudgetExceededError`, counted
    as a refusal (the hook must then send nothing); a fault in the estimate is logged and the call
    goes on unbudgeted. Hooks that can, pass ``body=`` to :class:`WireCall` instead."""
    job = current_job()
    if job is None or not job.budgets:
        return None
    record = CallRecord(_wire_site(endpoint, model, OPERATION, False), job, max_tokens=max_tokens, body=body)
    try:
        BudgetConsumer().start(record)
    except BudgetExceededError as refused:
        record.outcome, record.exception, record.error_type = "refused", refused, "budget_exceeded"
        _finish(record, call_consumers())
        raise
    return record.reservation  # type: ignore[no-any-return]


def count_budget_refusal(provider: str, model: str, refused: BudgetExceededError) -> None:
    """Record a call a budget refused, for a caller that reserved by itself (with
    :func:`~statek.executors.budget.reserve_request`): every consumer sees a ``refused`` record
    (``statek.budget.refusals`` by ``provider``, the ``gen_ai.provider.name``, and ``model``; a
    ``statek.budget.refused`` event on the job's span). Never raises."""
    site = CallSite(provider, provider, provider, model, operation_name(provider))
    record = CallRecord(site, current_job())
    record.outcome, record.exception, record.error_type = "refused", refused, "budget_exceeded"
    _finish(record, call_consumers())
