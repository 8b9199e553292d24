"""Telemetry export end to end, against real components (issue 4).

- A real Prometheus scrapes statek's ``/metrics`` (``statek.instrument(prometheus_port=...)``) after
  a known mix of calls through the provider simulator; its query API must return exactly the tokens,
  cost, request counts and bytes of those calls, and its exemplar API trace ids of spans statek made.
- OTLP/HTTP to an ``oteltap`` receiver, configured by argument and by ``OTEL_EXPORTER_OTLP_ENDPOINT``:
  ``chat {model}`` spans (``generate_content {model}`` for Gemini) with the GenAI attributes and every catalogue metric with the calls' values.
- The same through the ``rotel`` collector: app -> rotel (OTLP/HTTP) -> OTLP -> oteltap.
- A collector that is down (closed port) or stuck (accepts, never answers): every call succeeds and
  ``statek.shutdown()`` returns within a bound (a "never hangs" correctness bound, not a benchmark).

Fails, never skips, when a component is missing (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import (
    BEHAVIORS,
    JOB_ID,
    GunzipRelay,
    Tap,
    Traffic,
    attributes,
    check_against_job,
    close_to,
    free_port,
    launch_prometheus,
    launch_rotel,
    query,
    query_exemplars,
    run_mixed_traffic,
    values_by,
    wait_for,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import statek
from statek import LLM_API, ChatHistoryItem
from statek.instruments import BUDGET_REFUSALS, CATALOGUE, FAULT_INSTRUMENTS
from statek.telemetry import operation_name
from statek.testing import BlackHole, ModelBehavior, ProviderSimulator

pytestmark = pytest.mark.e2e

OPERATIONS = ("chat ", "generate_content ")
"""Span name prefixes: ``generate_content`` for Gemini, ``chat`` for the others."""

SHUTDOWN_BOUND_S = 10.0
"""``statek.shutdown()`` (default 5 s per signal) must return within this, whatever the collector does."""


# ----------------------------------------------------------------------------- Prometheus
async def test_prometheus_scrape_has_the_exact_totals_and_trace_exemplars(
    tmp_path: Path, clean_statek: None
) -> None:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    port = free_port()
    instrumentation = statek.instrument(
        "statek-e2e-prometheus",
        prometheus_port=port,
        registry=CollectorRegistry(),
        tracer_provider=tracer_provider,
    )
    assert instrumentation.prometheus_port == port and instrumentation.metric_pusher is None
    started = time.time()
    with (
        launch_prometheus([f"127.0.0.1:{port}"], tmp_path / "prometheus") as prometheus,
        ProviderSimulator(BEHAVIORS, seed=5) as sim,
    ):
        traffic = await run_mixed_traffic(sim)
        check_against_job(traffic)
        assert len(traffic.calls) == 12 and len(traffic.errors) == 1  # 11 planned, 1 streamed
        url = prometheus.url
        tokens = traffic.tokens()

        def scraped_everything() -> bool:
            return (
                values_by(url, "sum(statek_requests_total)") == {"": traffic.total}
                and values_by(url, "sum(gen_ai_client_operation_duration_seconds_count)")
                == {"": traffic.total}
                and values_by(url, "sum(statek_tokens_total)") == {"": sum(tokens.values())}
            )

        wait_for(scraped_everything, 30, f"Prometheus to scrape all {traffic.total} calls")
        at = time.time()

        assert values_by(url, 'up{job="statek"}', at=at) == {"": 1.0}
        assert values_by(url, 'target_info{service_name="statek-e2e-prometheus"}', at=at) == {"": 1.0}

        # tokens: exact, per type and per (model, type)
        by_type = values_by(url, "sum by (statek_token_type) (statek_tokens_total)", "statek_token_type", at)
        assert by_type == {kind: float(n) for kind, n in tokens.items()}
        found: dict[tuple[str, str], float] = {}
        for series in query(
            url, "sum by (gen_ai_request_model, statek_token_type) (statek_tokens_total)", at
        ):
            labels = series["metric"]
            found[(labels["gen_ai_request_model"], labels["statek_token_type"])] = float(series["value"][1])
        expected_tokens = traffic.tokens_by_model()
        for key in found.keys() | expected_tokens.keys():
            assert found.get(key, 0.0) == expected_tokens.get(key, 0), key

        # cost: the Decimal totals, as floats
        (total_cost,) = values_by(url, "sum(statek_cost_usd_total)", at=at).values()
        assert close_to(total_cost, traffic.cost()), (total_cost, traffic.cost())
        by_status = values_by(
            url, "sum by (statek_cost_status) (statek_cost_usd_total)", "statek_cost_status", at
        )
        expected_by_status = traffic.cost_by("status")
        assert set(expected_by_status) == {"calculated", "reported"}
        for status, amount in expected_by_status.items():
            assert close_to(by_status[status], amount), (status, by_status[status], amount)
        assert by_status["unpriced"] == 0.0  # an unpriced call adds no dollars, not even a made-up $0
        by_model = values_by(
            url, "sum by (gen_ai_request_model) (statek_cost_usd_total)", "gen_ai_request_model", at
        )
        for model, amount in traffic.cost_by("model").items():
            assert close_to(by_model[model], amount), (model, by_model[model], amount)
        assert by_model["acme/support-llama-8b-ft"] == 0.0

        # requests by outcome, error type and cost status; retries; bytes
        assert values_by(url, "sum by (statek_outcome) (statek_requests_total)", "statek_outcome", at) == {
            "success": len(traffic.calls),
            "error": len(traffic.errors),
        }
        errors = values_by(
            url, 'sum by (error_type) (statek_requests_total{statek_outcome="error"})', "error_type", at
        )
        assert errors == traffic.error_types() == {"400": 1}
        statuses = values_by(
            url,
            'sum by (statek_cost_status) (statek_requests_total{statek_outcome="success"})',
            "statek_cost_status",
            at,
        )
        assert {k: v for k, v in statuses.items() if v} == traffic.requests_by_status()
        assert traffic.requests_by_status() == {"calculated": 8, "reported": 2, "unpriced": 2}
        assert values_by(url, "sum by (error_type) (statek_retries_total)", "error_type", at) == {"429": 1}
        wire = values_by(
            url, "sum by (network_io_direction) (statek_bytes_total)", "network_io_direction", at
        )
        assert wire == traffic.bytes()

        # histograms: one duration per call, token usage per successful call
        failed = values_by(
            url, 'sum(gen_ai_client_operation_duration_seconds_count{error_type="400"})', at=at
        )
        assert failed == {"": 1.0}
        usage_sum = values_by(
            url, "sum by (gen_ai_token_type) (gen_ai_client_token_usage_sum)", "gen_ai_token_type", at
        )
        assert usage_sum == {"input": tokens["input"], "output": tokens["output"]}
        usage_count = values_by(
            url, "sum by (gen_ai_token_type) (gen_ai_client_token_usage_count)", "gen_ai_token_type", at
        )
        assert usage_count == {"input": len(traffic.calls), "output": len(traffic.calls)}

        # a job id is a span attribute, never a label
        labels = _labels(url)
        assert "gen_ai_request_model" in labels and not any("job_id" in label for label in labels)

        # exemplars: the trace and span of the latest call of the series' model
        chat = [s for s in spans.get_finished_spans() if s.name.startswith(OPERATIONS)]
        assert len(chat) == traffic.total
        ids_by_model: dict[str, list[tuple[str, str]]] = {}
        for span in sorted(chat, key=lambda s: s.end_time or 0):
            model = str(span.attributes["gen_ai.request.model"])  # type: ignore[index]
            ids = (f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}")
            ids_by_model.setdefault(model, []).append(ids)
        priced = set(traffic.cost_by("model"))
        succeeded = {model for _, model, _ in traffic.calls}
        for metric, models in (("statek_cost_usd_total", priced), ("statek_tokens_total", succeeded)):
            series_list = query_exemplars(url, metric, started - 60, time.time() + 60)
            with_exemplars = set()
            for series in series_list:
                model = series["seriesLabels"]["gen_ai_request_model"]
                exemplars = series["exemplars"]
                assert exemplars, series
                found_ids = [(e["labels"]["trace_id"], e["labels"]["span_id"]) for e in exemplars]
                assert set(found_ids) <= set(ids_by_model[model]), (metric, model, found_ids)
                latest = max(exemplars, key=lambda e: float(e["timestamp"]))
                assert (latest["labels"]["trace_id"], latest["labels"]["span_id"]) == ids_by_model[model][-1]
                with_exemplars.add(model)
            assert with_exemplars == models, metric


def _labels(url: str) -> set[str]:
    body = httpx.get(f"{url}/api/v1/labels", timeout=10).json()
    assert body["status"] == "success", body
    return set(body["data"])


# ----------------------------------------------------------------------------- OTLP
def _span_facts(provider: str, model: str, stats: Any) -> tuple[Any, ...]:
    return (
        provider,
        model,
        stats.input_tokens,
        stats.output_tokens,
        stats.cached_tokens,
        stats.cache_write_tokens,
        stats.reasoning_tokens,
        None if stats.priced_cost is None else float(stats.priced_cost),
        stats.cost_status,
        stats.total_bytes_sent,
        stats.total_bytes_received,
    )


def _found_facts(a: dict[str, Any]) -> tuple[Any, ...]:
    return (
        a["gen_ai.provider.name"],
        a["gen_ai.request.model"],
        a["gen_ai.usage.input_tokens"],
        a["gen_ai.usage.output_tokens"],
        a.get("gen_ai.usage.cache_read.input_tokens", 0),
        a.get("gen_ai.usage.cache_creation.input_tokens", 0),
        a.get("gen_ai.usage.reasoning.output_tokens", 0),
        a.get("statek.cost.usd"),
        a["statek.cost.status"],
        a["statek.bytes.sent"],
        a["statek.bytes.received"],
    )


def _histogram_by(tap: Tap, name: str, label: str) -> dict[str, tuple[int, float]]:
    """``{label value: (count, sum)}`` of histogram ``name``."""
    out: dict[str, tuple[int, float]] = {}
    for key, point in tap.latest_points(name).items():
        where = str(dict(key).get(label, ""))
        count, total = out.get(where, (0, 0.0))
        out[where] = (count + point.count, total + point.sum)
    return out


def _received_everything(tap: Tap, traffic: Traffic, job_id: str) -> bool:
    chat = [s for s in tap.spans if s.name.startswith(OPERATIONS)]
    return (
        len(chat) >= traffic.total
        and any(s.name == f"job {job_id}" for s in tap.spans)
        and sum(tap.counter_by("statek.requests", "").values()) == traffic.total
        and tap.counter_by("statek.tokens", "statek.token.type").get("input") == traffic.tokens()["input"]
        and sum(c for c, _ in _histogram_by(tap, "gen_ai.client.operation.duration", "").values())
        == traffic.total
    )


async def assert_otlp_received(tap: Tap, traffic: Traffic, job_id: str = JOB_ID) -> None:
    """Every span and metric of ``traffic`` reached ``tap``, with the calls' exact values."""
    await tap.wait_until(lambda: _received_everything(tap, traffic, job_id), 30, "all spans and metrics")

    # spans: one "chat {model}" per call, GenAI attributes, children of the job span
    chat = [s for s in tap.spans if s.name.startswith(OPERATIONS)]
    names = Counter(s.name for s in chat)
    assert names == Counter(
        f"{operation_name(p)} {m}"
        for p, m, _ in traffic.calls + traffic.errors  # type: ignore[operator]
    )
    (job_span,) = [s for s in tap.spans if s.name == f"job {job_id}"]
    ok_facts: Counter[tuple[Any, ...]] = Counter()
    failed: list[dict[str, Any]] = []
    for span in chat:
        a = attributes(span.attributes)
        assert span.kind == 3, span.name  # SPAN_KIND_CLIENT
        assert a["gen_ai.operation.name"] == operation_name(a["gen_ai.provider.name"])
        assert a["statek.job.id"] == job_id
        assert span.trace_id == job_span.trace_id and span.parent_span_id == job_span.span_id
        if span.status.code == 2:  # STATUS_CODE_ERROR
            failed.append(a)
        else:
            ok_facts[_found_facts(a)] += 1
    assert ok_facts == Counter(_span_facts(p, m, r.detail) for p, m, r in traffic.calls)
    assert [(a["gen_ai.request.model"], a["error.type"]) for a in failed] == [
        (m, str(getattr(e, "status_code", ""))) for _, m, e in traffic.errors
    ]
    job = attributes(job_span.attributes)
    assert job["statek.job.id"] == job_id and job["statek.job.calls"] == len(traffic.calls)
    assert job["statek.job.input_tokens"] == traffic.tokens()["input"]
    assert close_to(job["statek.job.cost.usd"], traffic.cost())

    # metrics: the catalogue's names and units, and the calls' values
    units = {m.name: m.unit for m in tap.metrics}
    # No job of this traffic has a budget, so nothing is refused: tests/test_budget*.py cover that series;
    # nor does it cause faults (their counters appear with the first one).
    for spec in CATALOGUE:
        if spec is not BUDGET_REFUSALS and spec not in FAULT_INSTRUMENTS:
            assert units.get(spec.name) == spec.unit, spec.name
    assert tap.counter_by("statek.tokens", "statek.token.type") == traffic.tokens()
    assert close_to(sum(tap.counter_by("statek.cost.usd", "").values()), traffic.cost())
    cost_by_status = tap.counter_by("statek.cost.usd", "statek.cost.status")
    for status, amount in traffic.cost_by("status").items():
        assert close_to(cost_by_status[status], amount), (status, cost_by_status[status], amount)
    assert cost_by_status["unpriced"] == 0
    assert tap.counter_by("statek.requests", "statek.outcome") == {
        "success": len(traffic.calls),
        "error": len(traffic.errors),
    }
    assert {
        k: v for k, v in tap.counter_by("statek.requests", "error.type").items() if k
    } == traffic.error_types()
    assert tap.counter_by("statek.bytes", "network.io.direction") == traffic.bytes()
    assert tap.counter_by("statek.retries", "error.type") == {"429": 1}
    usage = _histogram_by(tap, "gen_ai.client.token.usage", "gen_ai.token.type")
    tokens = traffic.tokens()
    assert usage == {
        "input": (len(traffic.calls), float(tokens["input"])),
        "output": (len(traffic.calls), float(tokens["output"])),
    }
    durations = _histogram_by(tap, "gen_ai.client.operation.duration", "error.type")
    assert {k: c for k, (c, _) in durations.items()} == {"": len(traffic.calls), "400": 1}
    for spec in CATALOGUE:
        for key in tap.latest_points(spec.name):
            assert not any("job.id" in attribute for attribute, _ in key), (spec.name, key)


async def test_otlp_export_to_oteltap_by_argument(tap: Tap, clean_statek: None) -> None:
    instrumentation = statek.instrument(
        "statek-e2e-otlp", otlp_endpoint=tap.url, registry=CollectorRegistry(), metric_export_interval=1.0
    )
    assert instrumentation.owns_tracer_provider and instrumentation.metric_pusher is not None
    with ProviderSimulator(BEHAVIORS, seed=5) as sim:
        traffic = await run_mixed_traffic(sim)
    check_against_job(traffic)
    await asyncio.to_thread(statek.shutdown)  # flushes; the receiver keeps polling meanwhile
    await assert_otlp_received(tap, traffic)


async def test_otlp_endpoint_from_the_environment(
    tap: Tap, clean_statek: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tap.url)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "500")
    instrumentation = statek.instrument("statek-e2e-env", registry=CollectorRegistry())
    assert instrumentation.owns_tracer_provider and instrumentation.metric_pusher is not None
    assert instrumentation.metric_pusher.interval == 0.5
    with ProviderSimulator(BEHAVIORS, seed=5) as sim:
        traffic = await run_mixed_traffic(sim, job_id="e2e-env-job")
    await asyncio.to_thread(statek.shutdown)
    await assert_otlp_received(tap, traffic, "e2e-env-job")


async def test_otlp_through_the_rotel_collector(tap: Tap, clean_statek: None, tmp_path: Path) -> None:
    with GunzipRelay(tap.url) as relay, launch_rotel(relay.url, tmp_path / "rotel") as rotel:
        statek.instrument(
            "statek-e2e-rotel",
            otlp_endpoint=rotel.url,
            registry=CollectorRegistry(),
            metric_export_interval=1.0,
        )
        with ProviderSimulator(BEHAVIORS, seed=5) as sim:
            traffic = await run_mixed_traffic(sim, job_id="e2e-rotel-job")
        await asyncio.to_thread(statek.shutdown)
        await assert_otlp_received(tap, traffic, "e2e-rotel-job")
    # What reached the receiver came out of rotel (statek's own exporter never sends to the relay).
    paths = {path for path, _ in relay.seen}
    assert {"/v1/traces", "/v1/metrics"} <= paths
    assert relay.seen and all(agent.lower().startswith("rotel") for _, agent in relay.seen), relay.seen


# ----------------------------------------------------------------------------- collector down
def _local_requests(registry: CollectorRegistry) -> float:
    from prometheus_client import generate_latest

    generate_latest(registry)  # this registry's first scrape shows each new series at zero
    text = generate_latest(registry).decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "statek_requests_total" and sample.labels.get("statek_outcome") == "success"
    )


@pytest.mark.parametrize("collector", ["closed port", "black hole"])
async def test_a_down_or_stuck_collector_fails_no_call_and_shutdown_returns(
    collector: str, clean_statek: None
) -> None:
    with contextlib.ExitStack() as stack:
        if collector == "closed port":
            endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
            hole = None
        else:
            hole = stack.enter_context(BlackHole())
            endpoint = hole.url
        registry = CollectorRegistry()
        # Default OTLP timeouts, as a user gets them; pushes every 0.2 s so exports are stuck mid-run.
        statek.instrument(
            "statek-e2e-down", otlp_endpoint=endpoint, registry=registry, metric_export_interval=0.2
        )
        behavior = ModelBehavior(text="Paris.", input_tokens=100, output_tokens=3)
        with ProviderSimulator({"gpt-4o-mini": behavior}) as sim:
            api = LLM_API.get("OPENAI", api_url=sim.openai_url, api_key="e2e-key")
            question = [ChatHistoryItem.user("What is the capital of France?")]
            responses = []
            for _ in range(200):
                responses.append(await api.process_request("Be brief.", "gpt-4o-mini", chat_history=question))
                await asyncio.sleep(0)
            await api.aclose()
        assert len(responses) == 200
        assert all(
            r.text == "Paris." and r.detail.input_tokens == 100 and r.detail.cost_status == "calculated"
            for r in responses
        )
        assert _local_requests(registry) == 200  # metering goes on while the collector is away
        if hole is not None:
            assert hole.accepted, "the exporter never reached the black hole"
        started = time.monotonic()
        await asyncio.to_thread(statek.shutdown)
        elapsed = time.monotonic() - started
        assert elapsed < SHUTDOWN_BOUND_S, f"statek.shutdown() took {elapsed:.1f} s with a {collector}"
