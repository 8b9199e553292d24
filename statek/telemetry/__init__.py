"""statek's metering path and its consumers: one record per call, read by the span, the metric
instruments, the job's usage and the budget (and the ledger, when configured).

* :mod:`.config`: where telemetry goes (:func:`configure_telemetry`);
* :mod:`.pipeline`: :func:`observe_call` (``LLM_API`` calls) and :class:`WireCall` (calls a
  client-library hook reads off the wire) build the :class:`~statek.call_record.CallRecord` and hand
  it to the consumers;
* the consumers, one module each: :mod:`.budget`, :mod:`.span`, :mod:`.metrics`, :mod:`.jobs`, and
  :mod:`.job_span` for jobs.

Importing this package registers statek's own consumers, in the order they run: the budget first (a
refused call opens no span and sends nothing), then the span, the instruments and the job's usage.
"""

from __future__ import annotations

from ..call_record import add_call_consumer, add_job_consumer
from .budget import BudgetConsumer
from .config import SCHEMA_URL, SCOPE, TelemetryConfig, configure_telemetry, telemetry_config
from .job_span import JobSpanConsumer
from .jobs import JobUsageConsumer
from .metrics import MetricsConsumer
from .pipeline import (
    OPERATION,
    WireCall,
    WireEndpoint,
    count_budget_refusal,
    current_first_chunk_hook,
    current_retry_hook,
    observe_call,
    operation_name,
    report_retry,
    reserve_wire_call,
)
from .span import SpanConsumer

__all__ = [
    "OPERATION",
    "SCHEMA_URL",
    "SCOPE",
    "TelemetryConfig",
    "WireCall",
    "WireEndpoint",
    "configure_telemetry",
    "count_budget_refusal",
    "current_first_chunk_hook",
    "current_retry_hook",
    "observe_call",
    "operation_name",
    "report_retry",
    "reserve_wire_call",
    "telemetry_config",
]

for _consumer in (BudgetConsumer(), SpanConsumer(), MetricsConsumer(), JobUsageConsumer()):
    add_call_consumer(_consumer)
add_job_consumer(JobSpanConsumer())
