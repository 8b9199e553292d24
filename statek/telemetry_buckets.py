"""Histogram series aggregated by statek between collections, replayed into the OpenTelemetry SDK
through its public ``Histogram.record`` when a reader collects.

Why: a synchronous ``Histogram.record`` through the SDK costs 5-8 µs (attribute copy and hashing,
a ``Measurement`` object, the exemplar filter, per reader), and a call makes three. A call instead
adds its value to a :class:`HistogramCell` - per bucket a count and a sum, plus min and max of one
attribute set since the last collection - under the lock the call already holds for its counters
(well under a microsecond, no object per measurement, a fixed size whatever the call rate).

When any reader collects, statek's observable-counter callback (which the SDK runs before it reads
any storage, outside the storages' locks, in every SDK release statek supports) calls
:func:`replay`: for each bucket it records, through the public API, as many measurements as the
bucket counted, chosen so that the SDK's explicit-bucket aggregation ends up exactly where the real
measurements would have put it: the same bucket counts, the same min and max (recorded as
themselves), the same sum (integers are spread as integers, so token sums are exact; float sums
may differ in the last bit, as any summation order does), and the latest sampled exemplar per
bucket recorded last, with its span, as the SDK's bucket-aligned reservoir keeps it.

Cost: the replay makes one public ``record`` per measurement, so a collection pays what
synchronous recording would have cost the calls since the last one (a few µs per measurement):
moved off the callers' path, not saved. A process making thousands of calls a second with a
minute between collections spends seconds in one collection (the SDK's collection timeout is 10 s).

That equality holds only for an explicit-bucket aggregation with statek's boundaries (the
instruments' advisory, the SDK default). Under another aggregation (a view, an exponential
histogram preference) the replayed values would misplace measurements, so statek uses cells only
for meter providers known to aggregate plainly (:func:`declare_plain`: the providers
:func:`statek.instrument` builds, or one an application declares); for any other provider calls
record synchronously, which is exact under any aggregation, only slower. Only public OpenTelemetry
API is used here: no SDK internals, so every SDK version ``pyproject.toml`` allows behaves the same.
"""

from __future__ import annotations

import math
import time
import weakref
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, set_span_in_context

__all__ = ["HistogramCell", "declare_plain", "is_plain", "replay"]

_plain: weakref.WeakSet[Any] = weakref.WeakSet()


def declare_plain(meter_provider: Any) -> None:
    """Declare that ``meter_provider`` aggregates statek's histograms with explicit buckets at the
    boundaries they advise (no view or reader preference changes their aggregation), so that statek
    may aggregate between collections and :func:`replay`. Call it before
    :func:`statek.telemetry.configure_telemetry` first sees the provider."""
    _plain.add(meter_provider)


def is_plain(meter_provider: Any) -> bool:
    """Whether :func:`declare_plain` was called for ``meter_provider``."""
    try:
        return meter_provider in _plain
    except TypeError:  # not weak-referenceable: never declared
        return False


class HistogramCell:
    """Per-bucket counts and sums, min and max of one histogram series since the last collection.

    :meth:`add` and :meth:`take` are called under the owning ``Instruments`` lock.
    """

    __slots__ = (
        "attributes",
        "boundaries",
        "counts",
        "exemplars",
        "histogram",
        "integral",
        "max",
        "min",
        "sums",
    )

    def __init__(self, histogram: Any, attributes: Mapping[str, str], boundaries: tuple[float, ...]) -> None:
        self.histogram = histogram
        self.attributes = attributes
        self.boundaries = boundaries
        self.counts: list[int] | None = None
        self.sums: list[float] = []
        self.min: float = math.inf
        self.max: float = -math.inf
        self.integral = True
        """Every value since the last take was an ``int`` (token counts): replayed as integers."""
        self.exemplars: dict[int, tuple[float, int, Any]] | None = None
        """The latest ``(value, time_ns, span context)`` per bucket given with one, as the SDK's
        bucket-aligned exemplar reservoir keeps them."""

    def add(self, value: float, exemplar: Any = None) -> None:
        """Add one measurement (non-negative, finite: durations and token counts); ``exemplar``:
        the sampled span context it may become an exemplar of."""
        counts = self.counts
        if counts is None:
            counts = self.counts = [0] * (len(self.boundaries) + 1)
            self.sums = [0] * (len(self.boundaries) + 1)
        bucket = bisect_left(self.boundaries, value)
        counts[bucket] += 1
        self.sums[bucket] += value
        if value.__class__ is not int:
            self.integral = False
        if exemplar is not None:
            if self.exemplars is None:
                self.exemplars = {}
            self.exemplars[bucket] = (value, time.time_ns(), exemplar)
        if value < self.min:  # noqa: PLR1730 - a compare is cheaper than min() on the hot path
            self.min = value
        if value > self.max:  # noqa: PLR1730
            self.max = value

    def take(self) -> Delta | None:
        """The delta since the last :meth:`take` (``None`` when empty), and start a new one."""
        counts = self.counts
        if counts is None:
            return None
        delta = Delta(counts, self.sums, self.min, self.max, self.exemplars, self.integral)
        self.counts, self.sums, self.exemplars = None, [], None
        self.min, self.max, self.integral = math.inf, -math.inf, True
        return delta


class Delta:
    """What one cell counted since the last collection (see :meth:`HistogramCell.take`)."""

    __slots__ = ("counts", "exemplars", "integral", "max", "min", "sums")

    def __init__(
        self,
        counts: list[int],
        sums: list[float],
        low: float,
        high: float,
        exemplars: dict[int, tuple[float, int, Any]] | None,
        integral: bool,
    ) -> None:
        self.counts, self.sums, self.min, self.max = counts, sums, low, high
        self.exemplars, self.integral = exemplars, integral


def replay(cell: HistogramCell, delta: Delta, no_exemplar: Context) -> None:
    """Record ``delta`` into ``cell.histogram`` through the public API (see the module docstring);
    ``no_exemplar``: the context of measurements that carry no span."""
    record = cell.histogram.record
    attributes = cell.attributes
    boundaries = cell.boundaries
    low_bucket = bisect_left(boundaries, delta.min)
    high_bucket = bisect_left(boundaries, delta.max)
    exemplars = delta.exemplars or {}
    for bucket, n in enumerate(delta.counts):
        if not n:
            continue
        fixed: list[float] = []  # real measurements of this bucket, recorded as themselves
        if bucket == low_bucket:
            fixed.append(delta.min)
        if bucket == high_bucket and len(fixed) < n:
            fixed.append(delta.max)
        exemplar = exemplars.get(bucket)
        if exemplar is not None and exemplar[0] in fixed:
            fixed.remove(exemplar[0])  # that measurement is recorded once, as the exemplar
        shown = 1 if exemplar is not None else 0
        rest = n - len(fixed) - shown
        rest_sum = delta.sums[bucket] - sum(fixed) - (exemplar[0] if exemplar is not None else 0)
        if rest:
            for value in _spread(rest, rest_sum, delta, boundaries, bucket):
                record(value, attributes, no_exemplar)
        for value in fixed:
            record(value, attributes, no_exemplar)
        if exemplar is not None:  # last: the bucket-aligned reservoir keeps the latest offer
            record(exemplar[0], attributes, set_span_in_context(NonRecordingSpan(exemplar[2]), no_exemplar))


def _spread(
    count: int, total: float, delta: Delta, boundaries: tuple[float, ...], bucket: int
) -> Sequence[float]:
    """``count`` values in ``bucket`` summing to ``total``: the mean of real measurements that lay
    between min and max in that bucket, so the mean lies there too."""
    if delta.integral:
        quotient, remainder = divmod(round(total), count)
        return [quotient + 1] * remainder + [quotient] * (count - remainder)
    value = total / count
    upper = boundaries[bucket] if bucket < len(boundaries) else math.inf
    lower = boundaries[bucket - 1] if bucket else -math.inf
    value = min(value, upper, delta.max)  # rounding must not move it to another bucket
    if value <= lower:
        value = math.nextafter(lower, math.inf)
    return [max(value, delta.min)] * count
