"""httpx transports that meter the LLM calls going through them, and clients built on them.

:class:`MeteringTransport` (sync) and :class:`AsyncMeteringTransport` wrap another transport (by
default httpx's own). For each request they decide, cheaply, whether it is an LLM call
(:func:`statek.wire.requests.recognise` on the path and body, :mod:`.endpoints` on the host); any other
request goes straight to the wrapped transport, untouched. An LLM call is reported through
:class:`statek.telemetry.WireCall`: the same span, instruments, pricing and job usage as an
``LLM_API`` call. The answer's bytes reach the caller unchanged and when they arrive: the transport
only looks at them as they pass (streams are read event by event, never buffered whole), and the call
is recorded when the answer ends, breaks, or is closed by the caller.

A request made while an ``LLM_API`` call is being observed is that call's own request: it is already
metered, so the transport lets it through (no double counting when statek's own client is built on
a metered transport or the process-wide instrumentation is on).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from contextvars import ContextVar
from types import ModuleType
from typing import Any

import httpx

from .. import telemetry
from ..exceptions import BudgetExceededError, ConfigurationError
from ..executors.output_cap import cap_body
from ..telemetry import WireCall, WireEndpoint
from ..wire.requests import recognise
from ._exchange import FOLLOWS, Exchange
from .endpoints import EndpointTable, ProviderRoute, default_table, generic_route, route_for
from .unmetered import count_unmetered

__all__ = [
    "AsyncMeteringTransport",
    "MeteringTransport",
    "async_http_client",
    "http_client",
    "transport_classes",
]

_log = logging.getLogger("statek.instrumentation")

_metering: ContextVar[bool] = ContextVar("statek_metering_request", default=False)
"""True while a metering transport hands an LLM call to the transport it wraps: a metering
transport further down (a client built under ``instrument_httpx()`` around a transport that wraps
a ``MeteringTransport``; httpx's own transport, patched by ``instrument_httpx()``) lets it through,
so that each call is counted once."""

reached: ContextVar[list[bool] | None] = ContextVar("statek_transport_reached", default=None)
"""Set by ``instrument_httpx()``'s ``Client.send`` around one request; every metering transport that
sees the request marks it, so that ``send`` knows whether any did."""


class _Router:
    """Decides whether a request is an LLM call, and to which provider."""

    __slots__ = ("_endpoints", "_not_read", "_provider", "_table")

    def __init__(
        self, provider: str | None, endpoints: Mapping[str, str] | None, not_read: type[Exception]
    ) -> None:
        self._not_read = not_read
        self._endpoints: dict[tuple[ProviderRoute, str, int], WireEndpoint] = {}
        self._provider: ProviderRoute | None = route_for(provider) if provider else None
        table = default_table() if self._provider is None else EndpointTable({})
        self._table = table.with_endpoints(endpoints) if endpoints else table

    def begin(self, request: Any) -> tuple[Any, Exchange] | None:
        """An :class:`Exchange` for an LLM call, ``None`` for anything else. Raises only
        :class:`~statek.exceptions.BudgetExceededError`, when the current job's budget refuses the call
        (nothing is sent)."""
        mark = reached.get()
        if mark is not None:
            mark[0] = True
        if request.method != "POST" or _metering.get() or telemetry.current_retry_hook() is not None:
            # Not an LLM call; or a metering transport further up, or an LLM_API call being
            # observed, has it already.
            return None
        try:
            return self._begin(request)
        except BudgetExceededError:
            raise
        except Exception as exc:  # noqa: BLE001 - metering never breaks the call
            _log.exception("statek could not inspect a request; it goes out unmetered")
            count_unmetered(_host(request), "inspection_failed", type(exc).__qualname__)
            return None

    def _begin(self, request: Any) -> tuple[Any, Exchange] | None:
        url = request.url
        path = url.path
        read = True
        try:
            body = request.content
        except self._not_read:
            body, read = b"", False
        wire_request = recognise("POST", path, body)
        if wire_request is None:
            return None
        route = self._provider or self._table.lookup(url.host, url.port, url.scheme, wire_request.format)
        if route is None:
            if not read:
                count_unmetered(url.host, "body_not_read")
                return None
            if not wire_request.shaped:
                if wire_request.model is not None:  # a model, but not that format's fields
                    count_unmetered(url.host, "unrecognised_body", wire_request.format)
                return None  # another API with a path like an LLM one (e.g. a chat app's /messages)
            route = generic_route(wire_request.format, wire_request.model)
        host, port = url.host, url.port or (443 if url.scheme == "https" else 80)
        endpoint = self._endpoints.get((route, host, port))
        if endpoint is None:
            endpoint = self._endpoints[(route, host, port)] = route.endpoint(host, port)
        model = wire_request.model or "unknown"
        call = WireCall(  # may refuse (BudgetExceededError): nothing is sent then
            endpoint,
            wire_request.operation,
            model,
            stream=wire_request.stream,
            temperature=wire_request.temperature,
            max_tokens=wire_request.max_tokens,
            body=body,
        )
        reservation = call.record.reservation
        cap = None if reservation is None else reservation.output_cap
        if cap is not None and wire_request.format in _CAP_WIRE:  # a cap_output budget: send its cap
            body = cap_body(body, _CAP_WIRE[wire_request.format], cap)  # type: ignore[arg-type]
            headers = request.headers.copy()
            headers.pop("content-length", None)
            request = type(request)(
                request.method, request.url, headers=headers, content=body, extensions=request.extensions
            )
        return request, Exchange(wire_request, route, call, len(body))


def _follows(request: Any) -> tuple[Any, Exchange] | None:
    """The exchange ``request`` continues, when it follows a metered call's redirect."""
    exchange = request.extensions.get(FOLLOWS)
    if isinstance(exchange, Exchange) and exchange.follow(request):
        del request.extensions[FOLLOWS]
        return request, exchange
    return None


_CAP_WIRE = {
    "openai_chat": "chat_completions",
    "openai_responses": "responses",
    "anthropic": "anthropic",
    "gemini": "gemini",
}
"""Where a budget's output cap goes, by recognised wire format (:mod:`statek.executors.output_cap`)."""


def _transports(module: ModuleType) -> tuple[type[Any], type[Any]]:
    """The sync and async metering transports for ``module`` (``httpx``, or its drop-in fork
    ``httpx2`` that newer official SDKs use): subclasses of that module's own base classes."""
    found = _by_module.get(module.__name__)
    if found is not None:
        return found

    class _SyncStream(module.SyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, exchange: Exchange) -> None:
            self._inner, self._exchange = inner, exchange

        def __iter__(self) -> Iterator[bytes]:
            exchange = self._exchange
            try:
                for chunk in self._inner:
                    exchange.chunk(chunk)
                    yield chunk
            except GeneratorExit:
                raise
            except BaseException as exc:
                exchange.broke(exc)
                raise
            exchange.end()

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                self._exchange.close()

    class _AsyncStream(module.AsyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, exchange: Exchange) -> None:
            self._inner, self._exchange = inner, exchange

        async def __aiter__(self) -> AsyncIterator[bytes]:
            exchange = self._exchange
            try:
                async for chunk in self._inner:
                    exchange.chunk(chunk)
                    yield chunk
            except GeneratorExit:
                raise
            except BaseException as exc:
                exchange.broke(exc)
                raise
            exchange.end()

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                self._exchange.close()

    class SyncTransport(module.BaseTransport):  # type: ignore[name-defined,misc]
        """A sync transport that meters the LLM calls passing through ``transport``.

        ``transport`` defaults to the library's ``HTTPTransport()``. ``provider`` (a registered
        provider name) says that every LLM call through this transport goes to that provider, whatever
        the host (a gateway, a local server, a test double); without it the host is looked up among
        the known and configured providers (:mod:`statek.instrumentation.endpoints`); a call to an
        unknown host whose body has its wire format's fields goes to that format's generic provider
        (``OPENAI_COMPATIBLE``, ...). ``endpoints`` adds base URLs: ``{"https://gateway.internal": "OPENAI"}``.
        """

        def __init__(
            self,
            transport: Any = None,
            *,
            provider: str | None = None,
            endpoints: Mapping[str, str] | None = None,
        ) -> None:
            self.transport = transport if transport is not None else module.HTTPTransport()
            self._router = _Router(provider, endpoints, module.RequestNotRead)

        def handle_request(self, request: Any) -> Any:
            return self.meter(request, self.transport.handle_request)

        def meter(self, request: Any, send: Any) -> Any:
            """``send(request)``, metered when ``request`` is an LLM call."""
            begun = _follows(request) or self._router.begin(request)
            if begun is None:
                return send(request)
            request, exchange = begun
            token = _metering.set(True)
            try:
                response = send(request)
            except BaseException as exc:
                exchange.broke(exc)
                raise
            finally:
                _metering.reset(token)
            exchange.answered(response)
            exchange.redirected(request)
            if response.is_closed:  # built in memory and already read (a mock transport)
                exchange.whole(response.content)
            else:
                response.stream = _SyncStream(response.stream, exchange)
            return response

        def close(self) -> None:
            self.transport.close()

    class AsyncTransport(module.AsyncBaseTransport):  # type: ignore[name-defined,misc]
        """The asyncio twin of the sync metering transport (default inner ``AsyncHTTPTransport()``)."""

        def __init__(
            self,
            transport: Any = None,
            *,
            provider: str | None = None,
            endpoints: Mapping[str, str] | None = None,
        ) -> None:
            self.transport = transport if transport is not None else module.AsyncHTTPTransport()
            self._router = _Router(provider, endpoints, module.RequestNotRead)

        async def handle_async_request(self, request: Any) -> Any:
            return await self.meter(request, self.transport.handle_async_request)

        async def meter(self, request: Any, send: Any) -> Any:
            """``await send(request)``, metered when ``request`` is an LLM call."""
            begun = _follows(request) or self._router.begin(request)
            if begun is None:
                return await send(request)
            request, exchange = begun
            token = _metering.set(True)
            try:
                response = await send(request)
            except BaseException as exc:
                exchange.broke(exc)
                raise
            finally:
                _metering.reset(token)
            exchange.answered(response)
            exchange.redirected(request)
            if response.is_closed:  # built in memory and already read (a mock transport)
                exchange.whole(response.content)
            else:
                response.stream = _AsyncStream(response.stream, exchange)
            return response

        async def aclose(self) -> None:
            await self.transport.aclose()

    name = "" if module is httpx else module.__name__.capitalize()
    SyncTransport.__name__ = SyncTransport.__qualname__ = f"{name}MeteringTransport"
    AsyncTransport.__name__ = AsyncTransport.__qualname__ = f"Async{name}MeteringTransport"
    _by_module[module.__name__] = (SyncTransport, AsyncTransport)
    return SyncTransport, AsyncTransport


_by_module: dict[str, tuple[type[Any], type[Any]]] = {}


def _host(request: Any) -> str | None:
    try:
        return str(request.url.host)
    except Exception:  # noqa: BLE001
        return None


MeteringTransport, AsyncMeteringTransport = _transports(httpx)
"""The metering transports built on ``httpx`` (see :func:`transport_classes` for ``httpx2``)."""


def transport_classes(backend: str = "httpx") -> tuple[type[Any], type[Any]]:
    """The (sync, async) metering transport classes for ``backend``: ``"httpx"`` or ``"httpx2"``."""
    return _transports(_backend(backend))


def _backend(name: str | None) -> ModuleType:
    if name is None:
        try:
            return importlib.import_module("httpx2")
        except ImportError:
            return httpx
    if name not in ("httpx", "httpx2"):
        raise ConfigurationError(f"backend must be 'httpx' or 'httpx2', got {name!r}")
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigurationError(f"backend {name!r} is not installed: pip install {name}") from None


def http_client(
    *,
    provider: str | None = None,
    endpoints: Mapping[str, str] | None = None,
    transport: Any = None,
    backend: str | None = None,
    **client_kwargs: Any,
) -> Any:
    """A client whose LLM calls are metered: ``OpenAI(http_client=statek.http_client())``.

    ``backend`` picks the HTTP library: ``"httpx2"`` (the fork that current ``openai``, ``anthropic``
    and ``google-genai`` releases are built on; the default when it is installed) or ``"httpx"``
    (older SDK releases, and any httpx code). ``provider`` and ``endpoints`` as for
    :class:`MeteringTransport`; ``transport`` is the transport to wrap (default: the library's own);
    other keywords go to the ``Client`` (defaults: the official SDKs' timeout of 600 s, 5 s to
    connect, redirects followed, up to 1000 connections).
    """
    module = _backend(backend)
    client_kwargs.setdefault("timeout", module.Timeout(600.0, connect=5.0))
    client_kwargs.setdefault("follow_redirects", True)
    if transport is None:
        transport = module.HTTPTransport(limits=client_kwargs.pop("limits", _limits(module)))
    metering = _transports(module)[0](transport, provider=provider, endpoints=endpoints)
    return module.Client(transport=metering, **client_kwargs)


def async_http_client(
    *,
    provider: str | None = None,
    endpoints: Mapping[str, str] | None = None,
    transport: Any = None,
    backend: str | None = None,
    **client_kwargs: Any,
) -> Any:
    """An async client whose LLM calls are metered:
    ``AsyncAnthropic(http_client=statek.async_http_client())``. Arguments as for :func:`http_client`."""
    module = _backend(backend)
    client_kwargs.setdefault("timeout", module.Timeout(600.0, connect=5.0))
    client_kwargs.setdefault("follow_redirects", True)
    if transport is None:
        transport = module.AsyncHTTPTransport(limits=client_kwargs.pop("limits", _limits(module)))
    metering = _transports(module)[1](transport, provider=provider, endpoints=endpoints)
    return module.AsyncClient(transport=metering, **client_kwargs)


def _limits(module: ModuleType) -> Any:
    return module.Limits(max_connections=1000, max_keepalive_connections=100)
