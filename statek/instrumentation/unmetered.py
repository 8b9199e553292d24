"""Requests that looked like LLM calls but could not be metered: counted and logged, never silent.

:func:`count_unmetered` adds one to ``statek.unmetered_requests`` (Prometheus
``statek_unmetered_requests_total``) by ``server.address`` and ``statek.unmetered.reason``, and logs
a warning the first time a host has such a request (a busy host must not flood the log). Reasons:

``body_not_read``
    a POST to an LLM path at a host statek does not know, whose body was a stream it could not look at;
``unrecognised_body``
    a POST to an LLM path at an unknown host, with a ``model`` but not the fields of that format;
``inspection_failed``
    statek failed while looking at the request (a bug: the request went out unmetered);
``not_reached``
    an httpx client whose transport statek could not wrap (created before instrumentation, with a
    transport of its own) sent an LLM request;
``unsupported_operation``
    a client library call statek recognises as an LLM call but cannot read (e.g. a Bedrock model
    family whose answers it does not know).
"""

from __future__ import annotations

import logging
import threading
import weakref

from .. import instruments as inst
from ..telemetry import telemetry_config

__all__ = ["count_unmetered", "reset_unmetered_log"]

_log = logging.getLogger("statek.instrumentation")
_lock = threading.Lock()
_logged: set[str] = set()
_cells: weakref.WeakKeyDictionary[inst.Instruments, dict[tuple[str, str], inst.CounterCell]] = (
    weakref.WeakKeyDictionary()
)


def count_unmetered(host: str | None, reason: str, detail: str = "") -> None:
    """Count one request to ``host`` that statek could not meter, for ``reason``; log the first per
    host. Never raises."""
    host = host or "unknown"
    try:
        with _lock:
            first = host not in _logged and len(_logged) < 1024  # bounded: hosts come from outside
            if first:
                _logged.add(host)
        if first:
            _log.warning(
                "statek could not meter a request to %s that looks like an LLM call (%s%s); such "
                "requests are counted in statek_unmetered_requests_total (logged once per host)",
                host,
                reason,
                f": {detail}" if detail else "",
            )
        config = telemetry_config()
        with _lock:
            cells = _cells.setdefault(config.instruments, {})
            cell = cells.get((host, reason))
            if cell is None:
                attributes = {inst.SERVER_ADDRESS: host, "statek.unmetered.reason": reason}
                cell = cells[(host, reason)] = config.instruments.cell(inst.UNMETERED_REQUESTS, attributes)
        with config.instruments.lock:
            cell.value += 1
    except Exception:  # noqa: BLE001 - counting a miss must not break the call
        _log.exception("statek could not count an unmetered request")


def reset_unmetered_log() -> None:
    """Forget which hosts were logged (tests; a long-running process never needs it)."""
    with _lock:
        _logged.clear()
