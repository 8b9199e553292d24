"""Histogram series aggregated by statek, merged into the OpenTelemetry SDK when a reader collects.

Why: a synchronous ``Histogram.record`` through the SDK costs 5-8 µs (attribute copy and hashing,
a ``Measurement`` object, the exemplar filter, per reader), and a call makes three. A call instead
adds its value to a :class:`HistogramCell` - the bucket counts, sum, min and max of one attribute
set since the last collection, the same state the SDK's explicit-bucket aggregation keeps - under
the lock the call already holds for its counters (well under a microsecond, and no object per
measurement: nothing for the garbage collector to promote, no queue to drain).

When any reader collects, statek's observable-counter callback (which the SDK runs before it reads
any storage) calls :func:`merge`: each cell's delta is added to the SDK aggregation of that
attribute set in every reader's storage, exactly as if each value had been recorded then. Counts,
sums, min and max are exact and each measurement is counted once; temporality, cardinality limits
and export stay the SDK's.

The merge needs the SDK's explicit-bucket aggregation with statek's boundaries. :func:`mergeable`
says whether a meter provider gives that to statek's histograms (the official SDK, no view or
reader preference changing their aggregation); where it does not (another SDK, a view), statek
records each measurement synchronously instead, which is exact too, only slower.
"""

from __future__ import annotations

import logging
import math
import time
from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

__all__ = ["HistogramCell", "merge", "mergeable"]

_log = logging.getLogger("statek.telemetry")


class HistogramCell:
    """Bucket counts, sum, min and max of one histogram series since the last collection.

    :meth:`add` and :meth:`take` are called under the owning ``Instruments`` lock.
    """

    __slots__ = ("attributes", "boundaries", "counts", "exemplars", "histogram", "max", "min", "sum")

    def __init__(self, histogram: Any, attributes: Mapping[str, str], boundaries: tuple[float, ...]) -> None:
        self.histogram = histogram
        self.attributes = attributes
        self.boundaries = boundaries
        self.counts: list[int] | None = None
        self.sum: float = 0
        self.min: float = math.inf
        self.max: float = -math.inf
        self.exemplars: dict[int, tuple[float, int, Any]] | None = None
        """The latest ``(value, time_ns, span context)`` per bucket given with one, as the SDK's
        bucket-aligned exemplar reservoir keeps them."""

    def add(self, value: float, exemplar: Any = None) -> None:
        """Add one measurement (non-negative, finite: durations and token counts); ``exemplar``:
        the sampled span context it may become an exemplar of."""
        counts = self.counts
        if counts is None:
            counts = self.counts = [0] * (len(self.boundaries) + 1)
        bucket = bisect_left(self.boundaries, value)
        counts[bucket] += 1
        if exemplar is not None:
            if self.exemplars is None:
                self.exemplars = {}
            self.exemplars[bucket] = (value, time.time_ns(), exemplar)
        self.sum += value
        if value < self.min:  # noqa: PLR1730 - a compare is cheaper than min() on the hot path
            self.min = value
        if value > self.max:  # noqa: PLR1730
            self.max = value

    def take(self) -> Delta | None:
        """The delta since the last :meth:`take` (``None`` when empty), and start a new one."""
        counts = self.counts
        if counts is None:
            return None
        delta = (counts, self.sum, self.min, self.max, self.exemplars)
        self.counts, self.sum, self.min, self.max, self.exemplars = None, 0, math.inf, -math.inf, None
        return delta


Delta = tuple[list[int], float, float, float, "dict[int, tuple[float, int, Any]] | None"]
"""Bucket counts, sum, min, max and exemplars of one cell since the last collection."""


# ----------------------------------------------------------------------------- the SDK side
def _sdk() -> tuple[type, type] | None:
    """(the SDK's histogram instrument class, its explicit-bucket aggregation class), or ``None``."""
    try:
        from opentelemetry.sdk.metrics._internal.aggregation import _ExplicitBucketHistogramAggregation
        from opentelemetry.sdk.metrics._internal.instrument import _Histogram
    except ImportError:  # no SDK, or one whose internals moved: record synchronously
        return None
    return _Histogram, _ExplicitBucketHistogramAggregation


def mergeable(histogram: Any, boundaries: tuple[float, ...]) -> bool:
    """True when :func:`merge` can feed ``histogram``: an official SDK histogram whose every reader
    storage aggregates it with explicit buckets at ``boundaries``. Checked once, when statek's
    instruments are created; :func:`merge` checks each aggregation again."""
    sdk = _sdk()
    if sdk is None or type(histogram) is not sdk[0]:
        return False
    instrument: Any = histogram  # the SDK's private attributes are not typed
    try:
        consumer = instrument._measurement_consumer
        for storage in consumer._reader_storages.values():
            for match in storage._get_or_init_view_instrument_match(histogram):
                if not _compatible_view(match, histogram, boundaries):
                    return False
        return True
    except Exception:  # noqa: BLE001 - internals not as expected: the synchronous path is exact
        _log.debug("statek histograms are recorded synchronously", exc_info=True)
        return False


def _compatible_view(match: Any, histogram: Any, boundaries: tuple[float, ...]) -> bool:
    from opentelemetry.sdk.metrics._internal.aggregation import (
        DefaultAggregation,
        ExplicitBucketHistogramAggregation,
    )

    view = match._view
    if view._attribute_keys is not None:
        return False  # a view that drops attributes: keep the SDK's own attribute handling
    aggregation = view._aggregation
    if isinstance(aggregation, DefaultAggregation):
        aggregation = match._instrument_class_aggregation.get(type(histogram), aggregation)
    if isinstance(aggregation, DefaultAggregation):
        return True  # explicit buckets from the instrument's advisory boundaries (statek's)
    if isinstance(aggregation, ExplicitBucketHistogramAggregation):
        chosen = aggregation._boundaries  # None: the instrument's advisory boundaries (statek's)
        return chosen is None or tuple(chosen) == boundaries
    return False


def merge(cell: HistogramCell, delta: Delta) -> bool:
    """Add ``delta`` (from :meth:`HistogramCell.take`) to ``cell.histogram``'s aggregation of
    ``cell.attributes`` in every reader storage. False if some aggregation was not the expected
    kind (that storage misses the delta; the caller switches to synchronous recording)."""
    sdk = _sdk()
    assert sdk is not None
    bucket_aggregation: Any = sdk[1]
    histogram = cell.histogram
    if not histogram._is_enabled():
        return True
    from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes

    counts, total, low, high, exemplars = delta
    offers = _exemplar_offers(cell, exemplars) if exemplars else ()
    aggregation: Any
    ok = True
    for storage in histogram._measurement_consumer._reader_storages.values():
        for match in storage._get_or_init_view_instrument_match(histogram):
            attributes = dict(cell.attributes)
            key = _hash_attributes(attributes)
            with match._lock:
                aggregation = match._get_or_create_aggregation(key, attributes)
                if (
                    aggregation.__class__ is not bucket_aggregation
                    or aggregation._boundaries != cell.boundaries
                ):
                    ok = False
                    continue
                with aggregation._lock:  # the SDK's aggregate(), for many measurements at once
                    if aggregation._value is None:
                        aggregation._value = aggregation._get_empty_bucket_counts()
                    value = aggregation._value
                    for i, n in enumerate(counts):
                        if n:
                            value[i] += n
                    aggregation._sum += total
                    if aggregation._record_min_max:
                        aggregation._min = min(aggregation._min, low)
                        aggregation._max = max(aggregation._max, high)
            for measurement, sample in offers:  # as aggregate() does, after the lock
                aggregation._sample_exemplar(measurement, sample)
    return ok


def _exemplar_offers(
    cell: HistogramCell, exemplars: dict[int, tuple[float, int, Any]]
) -> list[tuple[Any, bool]]:
    """The SDK measurements (with the span in their context) a delta's exemplars stand for, each
    with the meter provider's exemplar-filter verdict, as ``Histogram.record`` would have made them."""
    from opentelemetry.sdk.metrics._internal.measurement import Measurement
    from opentelemetry.trace import NonRecordingSpan, set_span_in_context

    histogram: Any = cell.histogram
    exemplar_filter = histogram._measurement_consumer._sdk_config.exemplar_filter
    offers = []
    for value, time_ns, span_context in exemplars.values():
        context = set_span_in_context(NonRecordingSpan(span_context))
        measurement = Measurement(value, time_ns, histogram, context, cell.attributes)
        offers.append((measurement, exemplar_filter.should_sample(value, time_ns, cell.attributes, context)))
    return offers
