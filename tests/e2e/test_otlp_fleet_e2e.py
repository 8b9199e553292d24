"""The scale-out path: many processes push OTLP to one collector (issue 16).

Four separate Python processes, each configured only by the standard ``OTEL_*`` variables (as a fleet
on many machines would be), call the loopback provider simulator through statek and push traces and
metrics to one real collector (``rotel``), which forwards them to an ``oteltap`` receiver (the
backend). The backend's totals, summed over the processes' streams, must equal the simulator's
record exactly: calls, tokens by type, provider-reported cost, and the cost the processes' own jobs
added up. One job spans all four processes: its trace context is handed to each (``traceparent``),
so every process's job span and call spans carry the same trace id and ``statek.job.id``, while
each process keeps its own ``job.usage`` (usage is per process; the trace ties them together).

Fails, never skips, when a component is missing (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import GunzipRelay, Tap, attributes, close_to, launch_rotel
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from statek.exporters import multiprocess
from statek.testing import ModelBehavior, ProviderSimulator

pytestmark = pytest.mark.e2e

PROCESSES = 4
CALLS_PER_MODEL = 20
JOB_ID = "fleet-job-1"
TRACE_ID = 0x5EED0F1EE7000000000000000000A11
PARENT_SPAN_ID = 0x00000000F1EE7001

BEHAVIORS = {
    "meta-llama/llama-3.3-70b-instruct": ModelBehavior(
        text="Hi.", input_tokens=500, output_tokens=40, cost="0.000123"
    ),
    "gpt-4o-mini": ModelBehavior(text="Paris.", input_tokens=1200, cached_tokens=1024, output_tokens=30),
}

WORKER = '''\
"""One process of the fleet: OTLP set up from OTEL_* only; one part of a job started elsewhere."""

import asyncio
import json
import os
import sys

from opentelemetry import context, propagate

import statek
from statek import LLM_API, ChatHistoryItem, Job


async def work(models, calls):
    api = LLM_API.get("OPENROUTER", api_url=os.environ["LLM_URL"], api_key=os.environ["LLM_KEY"])
    async with Job(os.environ["JOB_ID"], span=True) as job:  # this process's share of the job
        for _ in range(calls):
            for model in models:
                await api.process_request("Be brief.", model, chat_history=[ChatHistoryItem.user("Hi?")])
    await api.aclose()
    return job.usage


statek.instrument()  # endpoint, interval and service name from OTEL_* variables
# The job's trace context, handed over by whoever started the job (a queue message, an HTTP header).
token = context.attach(propagate.extract({"traceparent": os.environ["TRACEPARENT"]}))
usage = asyncio.run(work(sys.argv[1].split(","), int(sys.argv[2])))
context.detach(token)
statek.shutdown()  # pushes the final totals
print(json.dumps({"calls": usage.calls, "cost": str(usage.total_cost), "input": usage.total_input_tokens}))
'''


def fleet_points(tap: Tap, name: str) -> dict[tuple[frozenset[tuple[str, Any]], int], Any]:
    """The newest point of metric ``name`` per stream. With several processes one attribute set has
    one cumulative stream per process, told apart by its start time (the backend's resource is not
    kept by the tap), so the key is (attributes, start time)."""
    latest: dict[tuple[frozenset[tuple[str, Any]], int], Any] = {}
    for metric in tap.metrics:
        if metric.name != name:
            continue
        data = getattr(metric, metric.WhichOneof("data"))
        for point in data.data_points:
            key = (frozenset(attributes(point.attributes).items()), point.start_time_unix_nano)
            if key not in latest or point.time_unix_nano >= latest[key].time_unix_nano:
                latest[key] = point
    return latest


def fleet_sum(tap: Tap, name: str, label: str) -> dict[str, float]:
    """Counter ``name`` summed over every process's stream, by attribute ``label``."""
    out: Counter[str] = Counter()
    for (attrs, _), point in fleet_points(tap, name).items():
        value = point.as_int if point.WhichOneof("value") == "as_int" else point.as_double
        out[str(dict(attrs).get(label, ""))] += value
    return dict(out)


def streams_per_series(tap: Tap, name: str) -> set[int]:
    """How many processes' streams each attribute set of ``name`` has."""
    return set(Counter(attrs for (attrs, _) in fleet_points(tap, name)).values())


async def test_many_processes_one_collector_exact_totals_and_one_traced_job(
    tap: Tap, tmp_path: Path, clean_statek: None
) -> None:
    script = tmp_path / "fleet_worker.py"
    script.write_text(WORKER)
    carrier: dict[str, str] = {}
    parent = SpanContext(
        TRACE_ID, PARENT_SPAN_ID, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    TraceContextTextMapPropagator().inject(carrier, set_span_in_context(NonRecordingSpan(parent)))
    root = str(Path(multiprocess.__file__).resolve().parents[2])  # this checkout's statek
    with (
        GunzipRelay(tap.url) as relay,
        launch_rotel(relay.url, tmp_path / "rotel") as rotel,
        ProviderSimulator(BEHAVIORS) as sim,
    ):
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
            "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
            "OTEL_EXPORTER_OTLP_ENDPOINT": rotel.url,
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_SERVICE_NAME": "fleet-worker",
            "LLM_URL": sim.openai_url,
            "LLM_KEY": "e2e-key",
            "JOB_ID": JOB_ID,
            "TRACEPARENT": carrier["traceparent"],
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        workers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(script),
                ",".join(BEHAVIORS),
                str(CALLS_PER_MODEL),
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(PROCESSES)
        ]
        outputs = [await worker.communicate() for worker in workers]
        for worker, (_, err) in zip(workers, outputs):
            assert worker.returncode == 0, err.decode()[-3000:]
        shares = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
        recorded = [r for r in sim.requests if r.status == 200 and r.usage is not None]

        # the truth: the simulator's record, and the jobs' own usage (per process) adding up to it
        calls = PROCESSES * CALLS_PER_MODEL * len(BEHAVIORS)
        assert len(recorded) == len(sim.requests) == calls
        assert [s["calls"] for s in shares] == [CALLS_PER_MODEL * len(BEHAVIORS)] * PROCESSES
        assert sum(s["input"] for s in shares) == sum(r.usage.input_tokens for r in recorded)
        job_cost = sum((Decimal(s["cost"]) for s in shares), Decimal(0))
        reported = sum((r.usage.cost for r in recorded if r.usage.cost is not None), Decimal(0))
        tokens = {
            "input": sum(r.usage.input_tokens for r in recorded),
            "output": sum(r.usage.output_tokens for r in recorded),
            "cache_read": sum(r.usage.cached_tokens for r in recorded),
        }

        def arrived() -> bool:
            chat = [s for s in tap.spans if s.name.startswith("chat ")]
            return (
                sum(fleet_sum(tap, "statek.requests", "").values()) == calls
                and len(chat) == calls
                and len([s for s in tap.spans if s.name == f"job {JOB_ID}"]) == PROCESSES
            )

        await tap.wait_until(arrived, 30, "every process's final totals and spans at the backend")

    # metrics: one stream per process, summed exactly at the backend
    assert streams_per_series(tap, "statek.requests") == {PROCESSES}
    assert fleet_sum(tap, "statek.requests", "statek.outcome") == {"success": calls}
    by_type = fleet_sum(tap, "statek.tokens", "statek.token.type")
    assert {k: by_type[k] for k in tokens} == tokens
    cost = fleet_sum(tap, "statek.cost.usd", "statek.cost.status")
    assert close_to(cost["reported"], reported)
    assert close_to(sum(cost.values()), job_cost)
    histogram = fleet_points(tap, "gen_ai.client.token.usage")
    assert sum(p.count for p in histogram.values()) == 2 * calls
    assert sum(p.sum for p in histogram.values()) == tokens["input"] + tokens["output"]

    # traces: one job followed across the processes by its trace id
    job_spans = [s for s in tap.spans if s.name == f"job {JOB_ID}"]
    chat = [s for s in tap.spans if s.name.startswith("chat ")]
    trace_id = TRACE_ID.to_bytes(16, "big")
    assert {s.trace_id for s in job_spans + chat} == {trace_id}
    assert {s.parent_span_id for s in job_spans} == {PARENT_SPAN_ID.to_bytes(8, "big")}
    assert {s.parent_span_id for s in chat} == {s.span_id for s in job_spans}
    assert {attributes(s.attributes)["statek.job.id"] for s in job_spans + chat} == {JOB_ID}
    # each job span carries its own process's share; together they are the whole job
    assert (
        sorted(attributes(s.attributes)["statek.job.calls"] for s in job_spans)
        == [CALLS_PER_MODEL * len(BEHAVIORS)] * PROCESSES
    )
    assert close_to(sum(attributes(s.attributes)["statek.job.cost.usd"] for s in job_spans), job_cost)
