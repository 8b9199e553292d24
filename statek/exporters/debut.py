"""No lost first increment: a cumulative series is shown at zero once before its first real value.

Prometheus' ``rate()`` / ``increase()`` measure the growth *between* samples, so a counter whose
first sample is already 1 contributes 0: a model called once, a rare error, every series of a new
pod went uncounted (measured before this module: one success and one failure, ``increase()`` 0 and
0). A :class:`SeriesDebut` sits between a cumulative reader and one consumer (the ``/metrics``
collector, the OTLP pusher) and rewrites each series the consumer has never been shown into a
zero point (counter value 0; histogram with empty buckets, count 0, sum 0). The consumer's next
collection carries the real value, so the increment is seen as 0 -> n. Nothing is lost, only
delayed by one collection - or, with a ``hold``, until the series has been shown at zero for that
many seconds (the OTLP push holds new series 60 s by default, ``STATEK_OTLP_DEBUT_HOLD_SECONDS``, so
that a Prometheus scraping a Collector every minute still sees the zero).

What remains (documented in ``docs/dashboards.md``): the zero goes to the *first* reader of each
consumer, so a second Prometheus scraping the same ``/metrics`` (an HA pair) may still see a new
series first at its real value; and a series born after the last collection before shutdown is
pushed once, at its value.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Hashable
from typing import Any

from opentelemetry.sdk.metrics.export import AggregationTemporality, Histogram, MetricsData, Sum

__all__ = ["SeriesDebut"]


class SeriesDebut:
    """Remembers which series one consumer has been shown; :meth:`apply` zeroes the new ones.

    Only cumulative monotonic sums and cumulative histograms are touched (a gauge or up-down counter
    has no "first increment"; a delta point already is the increment). Memory: one key per series
    ever shown, which statek's low-cardinality labels keep small.
    """

    def __init__(self, hold: float = 0.0) -> None:
        """``hold``: seconds a new series stays at zero (at least one collection, whatever ``hold``):
        a consumer whose zero may be overwritten before anyone reads it (an OTLP push into a
        Collector that Prometheus scrapes less often) needs ``hold`` >= that scrape interval."""
        self.hold = hold
        self._shown: set[Hashable] = set()
        self._zeroed: dict[Hashable, float] = {}  # series shown at zero, since when (monotonic)
        self._lock = threading.Lock()
        self._hold_back = True
        self._now = 0.0

    def apply(self, data: MetricsData, *, hold_back: bool = True) -> MetricsData:
        """``data`` with every series this consumer has not been shown yet turned into a zero point.

        ``hold_back=False`` (a last export before shutdown: there is no next collection) marks the
        new series shown but keeps their real values."""
        with self._lock:
            self._hold_back = hold_back
            self._now = time.monotonic()
            return dataclasses.replace(
                data,
                resource_metrics=[
                    dataclasses.replace(
                        rm,
                        scope_metrics=[
                            dataclasses.replace(
                                sm, metrics=[self._metric(sm.scope.name, m) for m in sm.metrics]
                            )
                            for sm in rm.scope_metrics
                        ],
                    )
                    for rm in data.resource_metrics
                ],
            )

    def _metric(self, scope: str, metric: Any) -> Any:
        data = metric.data
        if isinstance(data, Sum) and data.is_monotonic:
            zero = _zero_number
        elif isinstance(data, Histogram):
            zero = _zero_histogram
        else:
            return metric
        if data.aggregation_temporality != AggregationTemporality.CUMULATIVE:
            return metric
        points = []
        changed = False
        for point in data.data_points:
            key = (scope, metric.name, frozenset(point.attributes.items()) if point.attributes else None)
            if key in self._shown:
                points.append(point)
                continue
            since = self._zeroed.get(key)
            if not self._hold_back or (since is not None and self._now - since >= self.hold):
                self._shown.add(key)
                self._zeroed.pop(key, None)
                points.append(point)
                continue
            if since is None:
                self._zeroed[key] = self._now
            points.append(zero(point))
            changed = True
        if not changed:
            return metric
        return dataclasses.replace(metric, data=dataclasses.replace(data, data_points=points))


def _zero_number(point: Any) -> Any:
    return dataclasses.replace(point, value=0, exemplars=[])


def _zero_histogram(point: Any) -> Any:
    return dataclasses.replace(
        point,
        count=0,
        sum=0,
        bucket_counts=[0] * len(point.bucket_counts),
        min=0,
        max=0,
        exemplars=[],
    )
