"""aiohttp: the LLM calls of every ``aiohttp.ClientSession`` created while instrumented, through
aiohttp's own tracing (``TraceConfig``), as OpenTelemetry's aiohttp-client instrumentation does.

``ClientSession.__init__`` is wrapped to add a :class:`aiohttp.TraceConfig` (the public
``trace_configs`` argument). Its signals:

* ``on_request_start`` / ``on_request_chunk_sent``: the method, URL and body as sent;
* ``on_request_end`` (status and headers in): the request is recognised like an httpx one (path and
  body, then the host: ``endpoints``, the provider tables, the SDKs' base-URL variables, else the
  wire format's generic provider) and the call starts;
* the answer's ``content`` is handed to the caller wrapped (:class:`MeteredContent`): every read
  (``read()``, ``json()``, ``text()``, ``async for line in response.content``, ``iter_any()``, ...)
  returns the same bytes, which pass the same :class:`~._exchange.Exchange` as an httpx answer
  (streams read event by event, time to first chunk, usage); the call is recorded when the body ends,
  breaks, or the response goes unread; ``on_request_exception``: a failed call.

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
from typing import Any, cast

from .. import telemetry
from ..exceptions import BudgetExceededError
from ..executors.job import current_job
from ..telemetry import WireCall, reserve_wire_call
from ..wire.requests import recognise
from ._exchange import Exchange
from .endpoints import EndpointTable, default_table, generic_route
from .transport import _metering
from .unmetered import count_unmetered

__all__ = ["instrument_aiohttp", "is_aiohttp_instrumented", "uninstrument_aiohttp"]

_log = logging.getLogger("statek.instrumentation")
_lock = threading.Lock()
_original_init: Callable[..., None] | None = None


class _Answer:
    """The answer's status and headers as :class:`~._exchange.Exchange` reads them. aiohttp decodes
    ``gzip``/``deflate``/``br`` bodies itself unless the session says otherwise: the encoding is then
    kept from the exchange, which would decode the bytes a second time."""

    __slots__ = ("headers", "status_code")

    def __init__(self, response: Any, decoded: bool) -> None:
        self.status_code = response.status
        self.headers = {k.lower(): v for k, v in response.headers.items()}
        if decoded:
            self.headers.pop("content-encoding", None)


class _Chunks:
    """``async for`` over one of the content's read methods, as aiohttp's own iterators do."""

    __slots__ = ("_read",)

    def __init__(self, read: Callable[[], Any]) -> None:
        self._read = read

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> Any:
        data = await self._read()
        if data in (b"", (b"", False)):
            raise StopAsyncIteration
        return data


class MeteredContent:
    """A response's ``content`` as the caller gets it: the same bytes, unchanged and when they come,
    each shown to the call's exchange as it passes (streams read event by event); the call is recorded
    when the body ends, breaks, or the response goes. Everything else is the wrapped
    ``aiohttp.StreamReader``'s."""

    def __init__(self, inner: Any, exchange: Exchange) -> None:
        self._inner, self._exchange = inner, exchange

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _seen(self, data: bytes) -> bytes:
        exchange = self._exchange
        exchange.chunk(data)
        if not data or self._inner.at_eof():
            exchange.end()
        return data

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            data = await getattr(self._inner, method)(*args, **kwargs)
        except BaseException as exc:
            self._exchange.broke(exc)
            raise
        self._seen(data[0] if isinstance(data, tuple) else data)
        return data

    async def read(self, n: int = -1) -> bytes:
        """As ``StreamReader.read``."""
        return await self._call("read", n)  # type: ignore[no-any-return]

    async def readany(self) -> bytes:
        """As ``StreamReader.readany``."""
        return await self._call("readany")  # type: ignore[no-any-return]

    async def readline(self, **kwargs: Any) -> bytes:
        """As ``StreamReader.readline``."""
        return await self._call("readline", **kwargs)  # type: ignore[no-any-return]

    async def readuntil(self, *args: Any, **kwargs: Any) -> bytes:
        """As ``StreamReader.readuntil``."""
        return await self._call("readuntil", *args, **kwargs)  # type: ignore[no-any-return]

    async def readexactly(self, n: int) -> bytes:
        """As ``StreamReader.readexactly``."""
        return await self._call("readexactly", n)  # type: ignore[no-any-return]

    async def readchunk(self) -> tuple[bytes, bool]:
        """As ``StreamReader.readchunk``."""
        return await self._call("readchunk")  # type: ignore[no-any-return]

    def __aiter__(self) -> _Chunks:
        return _Chunks(self.readline)

    def iter_any(self) -> _Chunks:
        """As ``StreamReader.iter_any``."""
        return _Chunks(self.readany)

    def iter_chunks(self) -> _Chunks:
        """As ``StreamReader.iter_chunks``."""
        return _Chunks(self.readchunk)

    def iter_chunked(self, n: int) -> _Chunks:
        """As ``StreamReader.iter_chunked``."""
        set_size = getattr(self._inner, "set_read_chunk_size", None)
        if set_size is not None:
            set_size(n)
        return _Chunks(lambda: self.read(n))


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

    def _recognised(ctx: Any, url: Any, *, count: bool) -> tuple[Any, Any, bytes] | None:
        """(request, route, body) of an LLM call sent to ``url``, or ``None``; ``count``: an LLM-shaped
        request statek cannot attribute is counted as unmetered."""
        body = b"".join(ctx.statek_body)
        request = recognise("POST", url.path, body)
        if request is None:
            return None
        route = table.lookup(url.host or "", url.port, url.scheme, request.format)
        if route is None:
            if not request.shaped:
                if count and request.model is not None:
                    count_unmetered(url.host, "unrecognised_body", request.format)
                return None
            route = generic_route(request.format, request.model)
        return request, route, body

    async def on_request_chunk_sent(session: Any, ctx: Any, params: Any) -> None:
        if getattr(ctx, "statek", None) == "candidate":
            ctx.statek_body.append(params.chunk)

    async def on_request_end(session: Any, ctx: Any, params: Any) -> None:
        if getattr(ctx, "statek", None) != "candidate":
            return
        ctx.statek = None
        try:
            url, response = params.url, params.response
            found = _recognised(ctx, url, count=True)
            if found is None:
                return
            request, route, body = found
            endpoint = route.endpoint(url.host, url.port)
            call = WireCall(
                endpoint,
                request.operation,
                request.model or "unknown",
                stream=request.stream,
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                reservation=_reserve(endpoint, request.model or "unknown", body, request.max_tokens),
            )
            exchange = Exchange(request, route, call, len(body))
            exchange.answered(cast(Any, _Answer(response, session.auto_decompress)))
            response.content = MeteredContent(response.content, exchange)
            # An answer the caller never reads to its end is recorded when the response goes.
            weakref.finalize(response, exchange.close)
        except Exception as exc:  # noqa: BLE001 - metering never breaks the call
            _log.exception("statek could not inspect an aiohttp request; it goes unmetered")
            count_unmetered(params.url.host, "inspection_failed", type(exc).__qualname__)

    async def on_request_exception(session: Any, ctx: Any, params: Any) -> None:
        """No answer (a refused connection, a timeout): a failed call, when it was an LLM one."""
        if getattr(ctx, "statek", None) != "candidate":
            return
        ctx.statek = None
        try:
            url, exc = params.url, params.exception
            found = _recognised(ctx, url, count=False)
            if found is None:
                return
            request, route, body = found
            call = WireCall(route.endpoint(url.host, url.port), request.operation, request.model or "unknown")
            call.fail(exc, type(exc).__qualname__, len(body), 0)
        except Exception:  # noqa: BLE001
            _log.exception("statek could not record a failed aiohttp call")

    config = aiohttp.TraceConfig()
    config.on_request_start.append(on_request_start)
    config.on_request_chunk_sent.append(on_request_chunk_sent)
    config.on_request_end.append(on_request_end)
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
