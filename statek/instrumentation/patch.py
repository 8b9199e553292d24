"""Process-wide instrumentation of httpx and its fork httpx2 (the one current official SDKs use),
reaching clients created before it as well as after.

Done the way OpenTelemetry's own httpx instrumentation does it, at the class level, once and
reversibly:

* ``HTTPTransport.handle_request`` / ``AsyncHTTPTransport.handle_async_request`` (httpx's own
  network transports, what every client uses unless given another) meter the LLM calls going
  through them: every such client is reached, whenever it was created;
* ``Client.__init__`` / ``AsyncClient.__init__`` wrap a transport of the caller's own (a mock, a
  proxy's, a retrying one) in a metering transport, for clients created while it is on;
* ``Client.send`` / ``AsyncClient.send`` notice an LLM request that went out through a transport
  statek could not reach (a client created earlier with a transport of its own): it is counted in
  ``statek.unmetered_requests`` (reason ``not_reached``) and logged once per host, never silent.

A call passes one metering transport only (the outermost): the patched network transport lets a
call through when a metering transport above it has it.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..wire.requests import recognise
from .transport import reached as _reached
from .transport import transport_classes
from .unmetered import count_unmetered

__all__ = ["instrument_httpx", "is_httpx_instrumented", "uninstrument_httpx"]

_lock = threading.Lock()
_originals: dict[tuple[type, str], Callable[..., Any]] = {}


def _wrapper(transport_class: type[Any], base: type[Any], network: type[Any]) -> Callable[[Any, Any], Any]:
    def wrap(transport: Any, endpoints: Mapping[str, str] | None) -> Any:
        if isinstance(transport, (transport_class, network)) or not isinstance(transport, base):
            return transport  # metered already, or httpx's own network transport (patched itself)
        return transport_class(transport, endpoints=endpoints)

    return wrap


def _patched_init(
    init: Callable[..., None], wrap: Callable[[Any, Any], Any], endpoints: Any
) -> Callable[..., None]:
    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        # httpx offers no public way to wrap a built client's transports (OpenTelemetry's
        # instrumentor reaches them the same way).
        self._transport = wrap(self._transport, endpoints)
        self._mounts = {
            pattern: wrap(t, endpoints) if t is not None else t for pattern, t in self._mounts.items()
        }

    return __init__


def _patched_sync_transport(original: Callable[..., Any], metering: Any) -> Callable[..., Any]:
    @functools.wraps(original)
    def handle_request(self: Any, request: Any) -> Any:
        return metering.meter(request, functools.partial(original, self))

    return handle_request


def _patched_async_transport(original: Callable[..., Any], metering: Any) -> Callable[..., Any]:
    @functools.wraps(original)
    async def handle_async_request(self: Any, request: Any) -> Any:
        return await metering.meter(request, functools.partial(original, self))

    return handle_async_request


def _unreached(request: Any) -> None:
    if request.method != "POST":
        return
    try:
        body = request.content
    except Exception:  # noqa: BLE001 - a streamed body: the path alone decides
        body = b""
    found = recognise("POST", request.url.path, body)
    if found is not None and (found.shaped or not body):
        count_unmetered(
            request.url.host,
            "not_reached",
            "an httpx client created before instrument_httpx() with a transport of its own; "
            "give it statek.http_client(transport=...)",
        )


def _patched_sync_send(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        reached = [False]
        token = _reached.set(reached)
        try:
            return original(self, request, **kwargs)
        finally:
            _reached.reset(token)
            if not reached[0]:
                _unreached(request)

    return send


def _patched_async_send(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def send(self: Any, request: Any, **kwargs: Any) -> Any:
        reached = [False]
        token = _reached.set(reached)
        try:
            return await original(self, request, **kwargs)
        finally:
            _reached.reset(token)
            if not reached[0]:
                _unreached(request)

    return send


def _patches(endpoints: Mapping[str, str] | None) -> list[tuple[type, str, Callable[..., Any]]]:
    """(class, attribute, replacement) for httpx and, when installed, httpx2."""
    found: list[tuple[type, str, Callable[..., Any]]] = []
    for name in ("httpx", "httpx2"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        sync, async_ = transport_classes(name)
        sync_metering = sync(_Unused(), endpoints=endpoints)
        async_metering = async_(_Unused(), endpoints=endpoints)
        network, async_network = module.HTTPTransport, module.AsyncHTTPTransport
        found += [
            (network, "handle_request", _patched_sync_transport(network.handle_request, sync_metering)),
            (
                async_network,
                "handle_async_request",
                _patched_async_transport(async_network.handle_async_request, async_metering),
            ),
            (
                module.Client,
                "__init__",
                _patched_init(
                    module.Client.__init__, _wrapper(sync, module.BaseTransport, network), endpoints
                ),
            ),
            (
                module.AsyncClient,
                "__init__",
                _patched_init(
                    module.AsyncClient.__init__,
                    _wrapper(async_, module.AsyncBaseTransport, async_network),
                    endpoints,
                ),
            ),
            (module.Client, "send", _patched_sync_send(module.Client.send)),
            (module.AsyncClient, "send", _patched_async_send(module.AsyncClient.send)),
        ]
    return found


class _Unused:
    """The inner transport of the metering transports the patched methods use: they are given the
    network transport's own method per call (``meter(request, send)``), never this."""

    def close(self) -> None:
        """Nothing to close."""


def instrument_httpx(*, endpoints: Mapping[str, str] | None = None) -> None:
    """Meter the LLM calls of every httpx and httpx2 client, those created before this call as well
    as after (the official OpenAI, Anthropic and Google GenAI SDKs, and the frameworks built on them).

    Calls are recognised by what they are (see :mod:`statek.instrumentation.endpoints`); ``endpoints``
    adds base URLs of gateways or self-hosted servers: ``{"https://llm.internal": "OPENAI"}``. Calling
    it again replaces ``endpoints``. A client created before with a transport of its own (not
    httpx's) cannot be reached: its LLM requests are counted in ``statek.unmetered_requests``
    (``not_reached``) and logged once per host.
    """
    with _lock:
        _restore()
        for cls, attribute, replacement in _patches(dict(endpoints) if endpoints else None):
            _originals[(cls, attribute)] = cls.__dict__[attribute]
            setattr(cls, attribute, replacement)


def uninstrument_httpx() -> None:
    """Undo :func:`instrument_httpx`: httpx's classes are as they were. Clients created while it was
    on keep the metering transport they were given. Safe to call when not instrumented."""
    with _lock:
        _restore()


def is_httpx_instrumented() -> bool:
    """Whether :func:`instrument_httpx` is in force."""
    return bool(_originals)


def _restore() -> None:
    for (cls, attribute), original in _originals.items():
        setattr(cls, attribute, original)
    _originals.clear()
