"""Multiprocess mode: several real processes, each instrumented on its own, summed exactly by one
``/metrics`` with the same series as one process; what a killed process wrote stays counted."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from statek.exceptions import ConfigurationError
from statek.exporters import multiprocess
from statek.instruments import PROMETHEUS_SERIES
from statek.testing import ModelBehavior, ProviderSimulator

MODELS = {
    # provider-reported cost
    "meta-llama/llama-3.3-70b-instruct": ModelBehavior(
        text="Hi.", input_tokens=500, output_tokens=40, cost="0.000123"
    ),
    # priced from statek's table, with cache reads
    "gpt-4o-mini": ModelBehavior(text="Paris.", input_tokens=1200, cached_tokens=1024, output_tokens=30),
}
Series = frozenset[tuple[str, tuple[tuple[str, str], ...]]]


def _samples(exposition: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _worker(url: str, calls: int, results: Any, end: str) -> None:
    """One instrumented process: ``calls`` calls per model; reports its own single-process exposition
    and the priced cost it saw, then ends: ``"shutdown"`` (``statek.shutdown()``), ``"exit"`` (just
    returns: the interpreter exits) or ``"kill"`` (writes, reports, and waits to be SIGKILLed)."""
    import statek
    from statek import LLM_API, ChatHistoryItem

    own = CollectorRegistry()
    active = statek.instrument(service_name="mp-test", registry=own)
    assert active.multiprocess is not None

    async def run() -> Decimal:
        api = LLM_API.get("OPENROUTER", api_url=url, api_key="test-key")
        cost = Decimal(0)
        for _ in range(calls):
            for model in MODELS:
                response = await api.process_request(
                    "Be brief.", model, chat_history=[ChatHistoryItem.user("Capital of France?")]
                )
                cost += response.stats.priced_cost or Decimal(0)
        await api.aclose()
        return cost

    cost = asyncio.run(run())
    exposition = generate_latest(own)  # what this process alone serves
    if end == "kill":
        active.multiprocess.flush()
        results.put((os.getpid(), str(cost), exposition))
        signal.pause()  # SIGKILLed here: no shutdown, no final write
    if end == "shutdown":
        statek.shutdown()
    results.put((os.getpid(), str(cost), exposition))


@pytest.fixture
def directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = multiprocess.prepare_directory(tmp_path / "prom")
    monkeypatch.setenv(multiprocess.ENV, str(path))
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    yield path


def test_processes_sum_exactly_with_single_process_series(directory: Path) -> None:
    # spawn: clean processes that import prometheus_client with the variable already set
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    calls = {"shutdown": 7, "exit": 5, "kill": 4}
    with ProviderSimulator(MODELS) as sim:
        processes = {
            name: context.Process(target=_worker, args=(sim.openai_url, n, results, name))
            for name, n in calls.items()
        }
        for process in processes.values():
            process.start()
        reports = [results.get(timeout=60) for _ in processes]
        killed = processes["kill"]
        os.kill(killed.pid, signal.SIGKILL)
        for process in processes.values():
            process.join(timeout=30)
        assert killed.exitcode == -signal.SIGKILL
        recorded = [r for r in sim.requests if r.usage is not None]

    served = generate_latest(multiprocess.registry(directory))
    total = _samples(served)

    def summed(name: str, **labels: str) -> float:
        return sum(
            value
            for (sample, sample_labels), value in total.items()
            if sample == name and labels.items() <= dict(sample_labels).items()
        )

    # the simulator's count: every call of every process, the killed one's included
    assert len(recorded) == 2 * sum(calls.values())
    assert summed("statek_requests_total") == len(recorded)
    assert summed("statek_tokens_total", gen_ai_token_type="input") == sum(
        r.usage.input_tokens for r in recorded
    )
    assert summed("statek_tokens_total", gen_ai_token_type="output") == sum(
        r.usage.output_tokens for r in recorded
    )
    assert summed("statek_tokens_total", gen_ai_token_type="cache_read") == sum(
        r.usage.cached_tokens for r in recorded
    )
    reported = sum((r.usage.cost for r in recorded if r.usage.cost is not None), Decimal(0))
    assert reported == Decimal("0.000123") * sum(calls.values())
    priced = sum((Decimal(cost) for _, cost, _ in reports), Decimal(0))
    assert summed("statek_cost_usd_total", statek_cost_status="reported") == pytest.approx(
        float(reported), rel=1e-12
    )
    assert summed("statek_cost_usd_total") == pytest.approx(float(priced), rel=1e-12)
    # histograms: every call's input and output observed once, buckets cumulative up to _count
    assert summed("gen_ai_client_token_usage_count") == 2 * len(recorded)
    assert summed("gen_ai_client_token_usage_sum") == sum(
        r.usage.input_tokens + r.usage.output_tokens for r in recorded
    )
    assert summed("gen_ai_client_token_usage_bucket", le="+Inf") == 2 * len(recorded)
    assert summed("gen_ai_client_operation_duration_seconds_count") == len(recorded)

    # the same series (names and labels) as one process serves, every value the sum of the processes'
    per_process = [_samples(exposition) for _, _, exposition in reports]
    single = {key for samples in per_process for key in samples if not key[0].startswith("target_info")}
    assert set(total) == single
    assert {name for name, _ in total} <= PROMETHEUS_SERIES
    for key, value in total.items():
        assert value == pytest.approx(sum(samples.get(key, 0.0) for samples in per_process), rel=1e-12), key

    # OpenMetrics keeps each catalogue family's unit
    openmetrics = generate_openmetrics(multiprocess.registry(directory)).decode()
    assert "# UNIT statek_cost_usd usd" in openmetrics
    assert "# UNIT gen_ai_client_operation_duration_seconds seconds" in openmetrics


def test_a_dead_process_file_stays_and_child_exit_keeps_its_totals(directory: Path) -> None:
    """``child_exit`` (``mark_process_dead``) only drops live gauges: a dead worker's totals stay."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    with ProviderSimulator(MODELS) as sim:
        process = context.Process(target=_worker, args=(sim.openai_url, 3, results, "shutdown"))
        process.start()
        pid, _, _ = results.get(timeout=60)
        process.join(timeout=30)
    before = _samples(generate_latest(multiprocess.registry(directory)))

    class Worker:
        def __init__(self, pid: int) -> None:
            self.pid = pid

    multiprocess.child_exit(None, Worker(pid))
    after = _samples(generate_latest(multiprocess.registry(directory)))
    assert after == before
    assert sum(v for (name, _), v in after.items() if name == "statek_requests_total") == 6


def test_a_process_reusing_a_pid_adds_to_the_old_file(directory: Path) -> None:
    """A new writer whose file already holds totals (a recycled pid) adds its own on top."""
    from opentelemetry.sdk.metrics import MeterProvider

    from statek.exporters import PrometheusExporter
    from statek.instruments import TOKENS, Instruments

    def run(tokens: int) -> None:
        exporter = PrometheusExporter(registry=CollectorRegistry(), target_info=False)
        provider = MeterProvider(metric_readers=[exporter.reader])
        instruments = Instruments(provider.get_meter("t"))
        cell = instruments.cell(TOKENS, {"gen_ai.provider.name": "openai", "gen_ai.token.type": "input"})
        cell.value = tokens
        mirror = multiprocess.MultiprocessMirror(exporter.reader)
        mirror.flush()
        mirror.flush()  # writing twice sets the same total again: nothing counted twice
        provider.shutdown()

    run(10)
    run(32)
    total = _samples(generate_latest(multiprocess.registry(directory)))
    assert (
        total[("statek_tokens_total", (("gen_ai_provider_name", "openai"), ("gen_ai_token_type", "input")))]
        == 42
    )


def test_configuration_errors_are_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import statek

    monkeypatch.setenv(multiprocess.ENV, str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match="is not a directory"):
        multiprocess.multiprocess_directory()
    monkeypatch.setenv(multiprocess.ENV, str(tmp_path))
    statek.shutdown()
    with pytest.raises(ConfigurationError, match="prometheus_port cannot be used"):
        statek.instrument(prometheus_port=0, registry=CollectorRegistry())
    monkeypatch.delenv(multiprocess.ENV)
    with pytest.raises(ConfigurationError, match="set PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.prepare_directory()
