"""Multiprocess mode: several real processes, each instrumented on its own, summed exactly by one
``/metrics`` with the same series as one process; what a killed process wrote stays counted."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from statek.exceptions import ConfigurationError
from statek.exporters import PrometheusExporter, multiprocess
from statek.exporters.prometheus import OTelCollector, PullMetricReader
from statek.instruments import PROMETHEUS_SERIES, REQUESTS, TOKENS, Instruments
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
                cost += response.detail.priced_cost or Decimal(0)
        await api.aclose()
        return cost

    cost = asyncio.run(run())
    generate_latest(own)  # the first scrape shows each new series at zero
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


@pytest.fixture(scope="module")
def in_process_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One directory for every writer inside the test process itself: prometheus_client opens a
    process's files once, in the directory set at its first write, and keeps writing there (as a
    worker does: its directory never changes). The tests tell their series apart by model."""
    path = multiprocess.prepare_directory(tmp_path_factory.mktemp("in-process") / "prom")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(multiprocess.ENV, str(path))
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

    first = _samples(generate_latest(multiprocess.registry(directory)))
    assert first and all(value == 0 for name, value in first.items() if name[0].startswith("statek_tokens"))
    served = generate_latest(multiprocess.registry(directory))  # new series: zero first, then totals
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
    assert summed("statek_tokens_total", statek_token_type="input") == sum(
        r.usage.input_tokens for r in recorded
    )
    assert summed("statek_tokens_total", statek_token_type="output") == sum(
        r.usage.output_tokens for r in recorded
    )
    assert summed("statek_tokens_total", statek_token_type="cache_read") == sum(
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
    own = {key for key in total if key[0].startswith("statek_multiprocess_")}  # the files' own health
    assert own == {("statek_multiprocess_refused_series_total", ())} and total[next(iter(own))] == 0
    assert set(total) - own == single
    assert {name for name, _ in total} - {name for name, _ in own} <= PROMETHEUS_SERIES
    for key, value in total.items():
        assert value == pytest.approx(sum(samples.get(key, 0.0) for samples in per_process), rel=1e-12), key

    # gunicorn's child_exit hook (mark_process_dead) only drops live gauges: the dead keep their totals
    class Worker:
        def __init__(self, pid: int) -> None:
            self.pid = pid

    for pid, _, _ in reports:
        multiprocess.child_exit(None, Worker(pid))
    assert _samples(generate_latest(multiprocess.registry(directory))) == total
    # ... and their files are compacted into one per kind
    assert sorted(p.name for p in directory.glob("*.db")) == ["counter_0.db", "histogram_0.db"]

    # OpenMetrics keeps each catalogue family's unit
    openmetrics = generate_openmetrics(multiprocess.registry(directory)).decode()
    assert "# UNIT statek_cost_usd usd" in openmetrics
    assert "# UNIT gen_ai_client_operation_duration_seconds seconds" in openmetrics


def _one_process(observations: list[int], model: str, *, mirror: bool = True) -> PullMetricReader:
    """A stand-in for one process's meter: ``observations`` token counts on the token counter, the
    request counter and the token histogram; with ``mirror`` its totals are written to the files.
    Returns its reader (already shut down when mirrored)."""
    exporter = PrometheusExporter(registry=CollectorRegistry(), target_info=False)
    provider = MeterProvider(metric_readers=[exporter.reader])
    instruments = Instruments(provider.get_meter("statek-test"))
    model_labels = {"gen_ai.provider.name": "openai", "gen_ai.request.model": model}
    tokens = instruments.cell(TOKENS, {**model_labels, "statek.token.type": "input"})
    requests = instruments.cell(REQUESTS, model_labels)
    for value in observations:
        tokens.value += value
        requests.value += 1
        instruments.token_usage.record(value, {**model_labels, "gen_ai.token.type": "input"})
    if mirror:
        writer = multiprocess.MultiprocessMirror(exporter.reader)
        writer.flush()
        writer.flush()  # writing the same totals again counts nothing twice
        writer.shutdown()
        provider.shutdown()
    return exporter.reader


def _of_model(samples: dict[Any, float], model: str) -> dict[Any, float]:
    return {key: v for key, v in samples.items() if ("gen_ai_request_model", model) in key[1]}


def test_a_process_reusing_a_pid_adds_to_the_old_file(in_process_directory: Path) -> None:
    """A new writer whose file already holds totals (a recycled pid: here, this same process) adds
    its own on top."""
    _one_process([10], "reused")
    _one_process([32], "reused")
    generate_latest(multiprocess.registry(in_process_directory))  # new series are served at zero first
    total = _of_model(_samples(generate_latest(multiprocess.registry(in_process_directory))), "reused")
    assert sum(v for (name, _), v in total.items() if name == "statek_tokens_total") == 42
    assert sum(v for (name, _), v in total.items() if name == "statek_requests_total") == 2


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.integers(0, 70_000_000), max_size=12), min_size=1, max_size=4))
def test_any_split_over_processes_serves_what_one_process_would(
    in_process_directory: Path, per_process: list[list[int]]
) -> None:
    """However observations are split over processes, the summed files serve exactly the samples
    (counters, every histogram bucket, _sum, _count) one process that saw them all would serve."""
    model = f"model-{uuid.uuid4().hex}"  # this example's own series in the shared directory
    for observations in per_process:
        _one_process(observations, model)
    generate_latest(multiprocess.registry(in_process_directory))  # new series are served at zero first
    served = _of_model(_samples(generate_latest(multiprocess.registry(in_process_directory))), model)
    alone = _one_process([v for part in per_process for v in part], model, mirror=False)
    registry = CollectorRegistry()
    registry.register(OTelCollector(alone, target_info=False, debut=False))
    assert served == _of_model(_samples(generate_latest(registry)), model)


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


def test_prepare_directory_removes_only_the_files_of_an_earlier_run(tmp_path: Path) -> None:
    kept = tmp_path / "notes.txt"
    kept.write_text("not a metrics file")
    (tmp_path / "counter_123.db").write_bytes(b"\0" * 8)
    (tmp_path / "histogram_123.db").write_bytes(b"\0" * 8)
    assert multiprocess.prepare_directory(tmp_path) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert multiprocess.prepare_directory(tmp_path / "new" / "dir").is_dir()
