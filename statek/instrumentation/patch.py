"""Process-wide instrumentation: every ``httpx.Client`` / ``httpx.AsyncClient`` (and their ``httpx2``
twins, the fork current official SDKs use) created while it is on meters its LLM calls.

Done the way OpenTelemetry's own httpx instrumentation does it: the clients' ``__init__`` is wrapped,
and after it ran the client's transport (and every mounted transport, e.g. for proxies) is wrapped in
a metering transport. Nothing else about the client changes; requests to anything but an LLM
endpoint go straight through. :func:`uninstrument_httpx` restores ``__init__``; clients created
while instrumentation was on keep metering (their transport is theirs).
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

from .transport import transport_classes

__all__ = ["instrument_httpx", "is_httpx_instrumented", "uninstrument_httpx"]

_lock = threading.Lock()
_originals: dict[type, Callable[..., None]] = {}


def _wrapper(transport_class: type[Any], base: type[Any]) -> Callable[[Any, Any], Any]:
    def wrap(transport: Any, endpoints: Mapping[str, str] | None) -> Any:
        if isinstance(transport, transport_class) or not isinstance(transport, base):
            return transport
        return transport_class(transport, endpoints=endpoints)

    return wrap


def _client_classes() -> list[tuple[type[Any], Callable[[Any, Any], Any]]]:
    """(client class, transport wrapper) for httpx and, when installed, its fork httpx2."""
    found = []
    for name in ("httpx", "httpx2"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        sync, async_ = transport_classes(name)
        found.append((module.Client, _wrapper(sync, module.BaseTransport)))
        found.append((module.AsyncClient, _wrapper(async_, module.AsyncBaseTransport)))
    return found


def _patched(
    init: Callable[..., None], wrap: Callable[[Any, Any], Any], endpoints: Any
) -> Callable[..., None]:
    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._transport = wrap(self._transport, endpoints)
        self._mounts = {
            pattern: wrap(t, endpoints) if t is not None else t for pattern, t in self._mounts.items()
        }

    __init__.__statek_original__ = init  # type: ignore[attr-defined]
    return __init__


def instrument_httpx(*, endpoints: Mapping[str, str] | None = None) -> None:
    """Meter the LLM calls of every httpx client created from now on (the official OpenAI, Anthropic
    and Google GenAI SDKs, and the frameworks built on them, all use httpx).

    Calls are recognised by endpoint (see :mod:`statek.instrumentation.endpoints`); ``endpoints``
    adds base URLs of gateways or self-hosted servers: ``{"https://llm.internal": "OPENAI"}``.
    Calling it again replaces ``endpoints`` for clients created afterwards. Clients created before
    are not touched; pass them ``statek.http_client()`` instead.
    """
    with _lock:
        _restore()
        for cls, wrap in _client_classes():
            original = cls.__init__
            _originals[cls] = original
            cls.__init__ = _patched(original, wrap, dict(endpoints) if endpoints else None)  # type: ignore[method-assign]


def uninstrument_httpx() -> None:
    """Stop metering httpx clients created from now on. Safe to call when not instrumented."""
    with _lock:
        _restore()


def is_httpx_instrumented() -> bool:
    """Whether :func:`instrument_httpx` is in force."""
    return bool(_originals)


def _restore() -> None:
    for cls, original in _originals.items():
        cls.__init__ = original  # type: ignore[method-assign,misc]
    _originals.clear()
