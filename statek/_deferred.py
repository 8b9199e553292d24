"""Work a finalizer must not do itself, done by the next metering call instead.

A finalizer (``__del__``) can run in any thread, at any allocation, even while that thread holds a
lock the work needs (a budget's, an instrument's): doing the work there could deadlock. So an object
collected with work left (a reservation never settled, a stream dropped without closing) hands that
work to :func:`defer`, which only appends to a list; :func:`drain` runs it from a safe place: the
next budget check or settlement, the next metered transport call, a budget's status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ["defer", "drain", "pending"]

pending: list[Callable[[], None]] = []
"""The deferred work, oldest first (test it for emptiness: a cheap check on hot paths)."""

_log = logging.getLogger("statek")


def defer(action: Callable[[], None]) -> None:
    """Run ``action`` at the next :func:`drain`; safe to call from a finalizer (one list append)."""
    pending.append(action)


def drain() -> None:
    """Run the deferred work; call it holding no statek lock. Never raises."""
    while pending:
        try:
            action = pending.pop(0)
        except IndexError:
            return
        try:
            action()
        except Exception:  # noqa: BLE001 - one failed finalization never stops the others
            _log.exception("statek could not finish work left by a collected object")
