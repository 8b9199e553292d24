"""aiohttp: the LLM calls of every ``aiohttp.ClientSession`` created while instrumented, through
aiohttp's own tracing (``TraceConfig``), as OpenTelemetry's aiohttp-client instrumentation does.

``ClientSession.__init__`` is wrapped to add a :class:`aiohttp.TraceConfig` (the public
``trace_configs`` argument). Its signals:

* ``on_request_start`` / ``on_request_chunk_sent``: the method, URL and body as sent;
* ``on_request_end`` (status and headers in): the request is recognised like an httpx one (path and
  body, then the host: ``endpoints``, the provider tables, the SDKs' base-URL variables, else the
  wire format's generic provider) and the call starts;
* ``on_response_chunk_received``: the whole body, when the caller reads it (``read()``, ``json()``,
  ``text()``): read with the format's codec, priced and recorded;
* the end of the body (``StreamReader.on_eof``) of a streamed answer the caller iterates: recorded
  with its bytes; aiohttp's tracing shows no streamed bytes, so such a stream is ``no_usage``
  (counted, never $0); ``on_request_exception``: a failed call.

Budgets: the body is seen only as it leaves, so an aiohttp call cannot be refused before it is sent;
it is reserved when its answer's headers arrive and settled with its real usage, so the job's budget
counts it (and refuses the job's next calls through httpx or botocore). One that no longer fits is
logged and counted as a refusal, though it was sent. A session created before instrumentation cannot
be given a trace config (a warning says how many exist).
"""

from __future__ import annotations

import functools
import gc
import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from .. import telemetry
from ..exceptions import BudgetExceededError
from ..executors.job import current_job
from ..telemetry import WireCall, reserve_wire_call
from ..types import CallDetail
from ..wire.requests import read_answer, recognise
from .endpoints import EndpointTable, default_table, generic_route
from .transport import _metering
from .unmetered import count_unmetered

__all__ = ["instrument_aiohttp", "is_aiohttp_instrumented", "uninstrument_aiohttp"]

_log = logging.getLogger("statek.instrumentation")
_lock = threading.Lock()
_original_init: Callable[..., None] | None = None


class _Call:
    """One aiohttp LLM call from its answer's headers to the end of its body."""

    __slots__ = ("__weakref__", "call", "done", "profile", "request", "sent")

    def __init__(self, call: WireCall, request: Any, profile: Any, sent: int) -> None:
        self.call, self.request, self.profile, self.sent = call, request, profile, sent
        self.done = False

    def body(self, body: bytes) -> None:
        if self.done:
            return
        self.done = True
        try:
            answer = read_answer(self.request, body, self.sent, len(body), self.profile)
        except Exception:  # noqa: BLE001
            _log.warning("statek could not read a %s answer; recorded as not metered", self.request.format)
            self.call.succeed(CallDetail(self.sent, len(body), None, has_usage=False))
            return
        self.call.succeed(answer.detail, answer.text, answer.tool_calls)

    def unread(self, received: int) -> None:
        if not self.done:
            self.done = True
            self.call.succeed(CallDetail(self.sent, received, None, has_usage=False))

    def fail(self, exc: BaseException | None, error_type: str, received: int = 0) -> None:
        if not self.done:
            self.done = True
            self.call.fail(exc, error_type, self.sent, received)


class _SentAnyway:
    """The reservation of an aiohttp call its job's budget refused after it was sent: nothing to settle."""

    def settle(self, *_: Any) -> None:
        """Nothing was reserved."""

    def settle_failure(self, *_: Any) -> None:
        """Nothing was reserved."""


def _reserve(endpoint: Any, model: str, body: bytes, max_tokens: int | None) -> Any:
    """The call's reservation, taken when its answer's headers arrive (aiohttp shows the body only as
    it leaves, so it cannot be refused before): settled with the real usage at the end, so the job's
    budget counts it and refuses the job's next calls (through httpx, botocore) once spent."""
    job = current_job()
    if job is None or not job.budgets:
        return None
    try:
        return reserve_wire_call(endpoint, model, body, max_tokens)
    except BudgetExceededError as refused:
        _log.warning(
            "an aiohttp call went past its job's budget (sent before statek could check): %s", refused
        )
        return _SentAnyway()


def _trace_config(table: EndpointTable) -> Any:
    import aiohttp

    async def on_request_start(session: Any, ctx: Any, params: Any) -> None:
        ctx.statek = None
        if params.method != "POST" or _metering.get() or telemetry.current_retry_hook() is not None:
            return  # not an LLM call; or an httpx metering transport on top of aiohttp has it
        found = recognise("POST", params.url.path, b"")
        if found is None:
            return
        ctx.statek_body = []
        ctx.statek = "candidate"

    async def on_request_chunk_sent(session: Any, ctx: Any, params: Any) -> None:
        if getattr(ctx, "statek", None) == "candidate":
            ctx.statek_body.append(params.chunk)

    async def on_request_end(session: Any, ctx: Any, params: Any) -> None:
        if getattr(ctx, "statek", None) != "candidate":
            return
        ctx.statek = None
        try:
            url, response = params.url, params.response
            body = b"".join(ctx.statek_body)
            request = recognise("POST", url.path, body)
            if request is None:
                return
            host, port = url.host, url.port
            route = table.lookup(host or "", port, url.scheme, request.format)
            if route is None:
                if not request.shaped:
                    if request.model is not None:
                        count_unmetered(host, "unrecognised_body", request.format)
                    return
                route = generic_route(request.format, request.model)
            endpoint = route.endpoint(host, port)
            call = WireCall(
                endpoint,
                request.operation,
                request.model or "unknown",
                stream=request.stream,
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                reservation=_reserve(endpoint, request.model or "unknown", body, request.max_tokens),
            )
            state = _Call(call, request, route.profile, len(body))
            if response.status >= 400:
                state.fail(None, str(response.status))
                return
            ctx.statek = state
            content = response.content
            if request.stream:
                content.on_eof(lambda: state.unread(content.total_bytes))
            else:  # read() reports the body; a body never read is recorded when the answer goes
                weakref.finalize(response, state.unread, 0)
        except Exception as exc:  # noqa: BLE001 - metering never breaks the call
            _log.exception("statek could not inspect an aiohttp request; it goes unmetered")
            count_unmetered(params.url.host, "inspection_failed", type(exc).__qualname__)

    async def on_response_chunk_received(session: Any, ctx: Any, params: Any) -> None:
        state = getattr(ctx, "statek", None)
        if isinstance(state, _Call):
            state.body(params.chunk)

    async def on_request_exception(session: Any, ctx: Any, params: Any) -> None:
        state = getattr(ctx, "statek", None)
        if isinstance(state, _Call):
            state.fail(params.exception, type(params.exception).__qualname__)

    config = aiohttp.TraceConfig()
    config.on_request_start.append(on_request_start)
    config.on_request_chunk_sent.append(on_request_chunk_sent)
    config.on_request_end.append(on_request_end)
    config.on_response_chunk_received.append(on_response_chunk_received)
    config.on_request_exception.append(on_request_exception)
    return config


def instrument_aiohttp(*, endpoints: Mapping[str, str] | None = None) -> bool:
    """Meter the LLM calls of every ``aiohttp.ClientSession`` created from now on. Returns ``False``
    (and does nothing) when aiohttp is not installed. Sessions that exist already cannot be reached:
    a warning says how many."""
    global _original_init
    try:
        import aiohttp
    except ImportError:
        return False
    with _lock:
        if _original_init is not None:
            aiohttp.ClientSession.__init__ = _original_init  # type: ignore[method-assign]
        original = aiohttp.ClientSession.__init__
        fixed = dict(endpoints) if endpoints else None

        @functools.wraps(original)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            table = default_table()
            config = _trace_config(table.with_endpoints(fixed) if fixed else table)
            kwargs["trace_configs"] = [*(kwargs.get("trace_configs") or ()), config]
            original(self, *args, **kwargs)

        _original_init = original
        aiohttp.ClientSession.__init__ = __init__  # type: ignore[method-assign]
        session = aiohttp.ClientSession  # type(), not isinstance(): see bedrock.instrument_botocore
        existing = sum(1 for obj in gc.get_objects() if issubclass(type(obj), session) and not obj.closed)
    if existing:
        _log.warning(
            "statek cannot meter the %d aiohttp session(s) created before instrumentation; "
            "create them after statek.instrument_clients()",
            existing,
        )
    return True


def uninstrument_aiohttp() -> None:
    """Stop adding the trace config to new sessions (sessions made meanwhile keep it)."""
    global _original_init
    with _lock:
        if _original_init is None:
            return
        import aiohttp

        aiohttp.ClientSession.__init__ = _original_init  # type: ignore[method-assign]
        _original_init = None


def is_aiohttp_instrumented() -> bool:
    """Whether :func:`instrument_aiohttp` is in force."""
    return _original_init is not None
