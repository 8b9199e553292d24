"""The cardinality guard: a bound on the metric series any stream of label values can create.

Every distinct model name (or allow-listed job attribute value) that reaches a metric label creates
series that live as long as the process: about a dozen counter and histogram series per model,
roughly 10 KB, never freed, and each one read at every scrape. Request ids sent as model names by
mistake, or a tenant attribute carrying user ids, would grow memory and scrape time without end
and then hit the OpenTelemetry SDK's own limit (2,000 attribute sets per instrument), whose
unlabelled overflow series also swallows real models that appear later.

A :class:`LabelGuard` admits the values of one label:

- a value the ``known`` predicate accepts (for models: one a price layer prices) is always admitted
  and keeps its own series, however many unknown values came before it;
- the first ``limit`` other distinct values are admitted too;
- every later unknown value is replaced by :data:`OVERFLOW` (``_other_``): one visible series that
  the dashboards show as such. Each replaced use is counted (:attr:`LabelGuard.overflowed`, exported
  as ``statek_metric_label_overflow_total{statek_label=...}``), and the first one is logged with the
  fix.

Bound: a guard remembers at most ``limit`` unknown values plus the known values actually seen, so
the series of one label are at most (known values used + ``limit`` + 1); the series of statek's
instruments are at most that product over the guarded labels times the per-model series.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from .secrets import clip

__all__ = [
    "DEFAULT_MAX_LABEL_VALUES",
    "DEFAULT_MAX_MODELS",
    "MAX_LABEL_VALUES_ENV",
    "MAX_MODELS_ENV",
    "OVERFLOW",
    "LabelGuard",
    "limit_from_env",
]

_log = logging.getLogger("statek.telemetry")

OVERFLOW = "_other_"
"""The label value that stands for every value beyond a guard's limit."""

MAX_MODELS_ENV = "STATEK_METRICS_MAX_MODELS"
MAX_LABEL_VALUES_ENV = "STATEK_METRICS_MAX_LABEL_VALUES"
DEFAULT_MAX_MODELS = 50
"""Unknown (unpriced) model names with series of their own; priced models are never capped. About
70 samples and ~110 KB per model (measured: ``python -m benchmarks cardinality``): 50 keep a flooded
process within ~10 MB and its scrape short, and far below the SDK's 2,000 attribute sets per
instrument (five token-type series per model), leaving room for priced models and job labels."""
DEFAULT_MAX_LABEL_VALUES = 20
"""Distinct values per allow-listed job attribute (tenant, feature) with series of their own."""


def limit_from_env(name: str, default: int) -> int:
    """A non-negative integer from environment variable ``name``; ``default`` when unset or invalid
    (an invalid value is logged)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
        if value < 0:
            raise ValueError(raw)
    except ValueError:
        _log.warning("statek: %s=%r is not a non-negative integer; using %d", name, raw, default)
        return default
    return value


class LabelGuard:
    """Admits the values of one metric label (see the module docstring). Thread-safe."""

    __slots__ = ("_admitted", "_fix", "_lock", "_logged", "known", "label", "limit", "overflowed")

    def __init__(
        self,
        label: str,
        limit: int,
        known: Callable[[str], bool] | None = None,
        fix: str = "",
    ) -> None:
        self.label = label
        self.limit = limit
        self.known = known
        self._fix = fix
        self._admitted: set[str] = set()  # unknown values with series of their own (<= limit)
        self._lock = threading.Lock()
        self._logged = False
        self.overflowed = 0
        """How many uses of this label were replaced by :data:`OVERFLOW` (a cumulative count)."""

    def admit(self, value: str, known: Callable[[str], bool] | None = None) -> str:
        """``value`` itself, or :data:`OVERFLOW` when the guard is full and ``value`` is unknown
        (``known``, else the guard's own predicate, says which values are known).

        Called when a series would be created (callers cache what it admits), and for every use of a
        value it refused (so each one is counted)."""
        if value in self._admitted or value == OVERFLOW:
            return value
        known = known or self.known
        if known is not None:
            try:
                if known(value):
                    return value  # known values are bounded by the price layers, not remembered here
            except Exception:  # noqa: BLE001 - a failing predicate must not fail the call
                _log.debug("statek: could not tell whether %s=%r is known", self.label, value, exc_info=True)
        with self._lock:
            if value in self._admitted:
                return value
            if len(self._admitted) < self.limit:
                self._admitted.add(value)
                return value
            self.overflowed += 1
            first = not self._logged
            self._logged = True
        if first:
            _log.warning(
                "statek: more than %d distinct values of metric label %s; %r and later new values are "
                "recorded as %r (counted in statek_metric_label_overflow_total). %s",
                self.limit,
                self.label,
                clip(value, 120),
                OVERFLOW,
                self._fix,
            )
        return OVERFLOW

    def __len__(self) -> int:
        """How many unknown values have series of their own."""
        return len(self._admitted)
