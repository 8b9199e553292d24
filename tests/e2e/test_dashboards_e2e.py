"""Every panel of the Grafana dashboard returns data on a real Prometheus, on both naming paths.

One Prometheus (Debian ``prometheus``, started here on loopback with a 1 s scrape interval) scrapes
two processes running the same simulated traffic (``statek demo``'s fleet, same seed):

- ``statek``: ``statek demo --keep-serving``, i.e. statek's own ``/metrics``;
- ``otel``: an application whose global OpenTelemetry ``MeterProvider`` has OpenTelemetry's own
  Prometheus exporter (``opentelemetry-exporter-prometheus``, the standard OpenTelemetry-to-Prometheus
  translation the Collector and Prometheus' OTLP receiver share); ``statek.instrument()`` records
  into that provider.

Once Prometheus has seen each process's final counts, every panel query and template-variable query
of ``dashboards/statek.json`` is evaluated through ``/api/v1/query`` with the variables filled in as
Grafana would for "All", and ``$instance`` set to one process: the test fails if any query errors or
returns no data on either path (nothing but zeros or NaN counts as none). Fails, never skips, without
Prometheus.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import free_port, launch_prometheus, query, stop_process, wait_for

from statek.instruments import FAULT_SERIES, PROMETHEUS_SERIES

pytestmark = pytest.mark.e2e

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "statek.json"
# What Grafana substitutes with "All" selected (allValue ".*") and a 5-minute time range.
VARIABLES = {
    "job": "statek",
    "instance": ".*",
    "provider": ".*",
    "model": ".*",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
    "__range_s": "300",
    "datasource": "prometheus",
}
JOBS, CONCURRENCY, SEED = 120, 8, 11
DEMO_ARGS = ["--jobs", str(JOBS), "--concurrency", str(CONCURRENCY), "--seed", str(SEED)]
PATHS = ("statek", "otel")

OTEL_APP = textwrap.dedent(
    f"""
    import sys, time
    from opentelemetry import metrics
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from prometheus_client import start_http_server
    import statek
    from statek.demo.session import DemoRun

    # The application's own telemetry: OpenTelemetry's Prometheus exporter on the global registry.
    reader = PrometheusMetricReader()
    metrics.set_meter_provider(
        MeterProvider(metric_readers=[reader], resource=Resource.create({{"service.name": "otel-app"}}))
    )
    start_http_server(int(sys.argv[1]), addr="127.0.0.1")
    active = statek.instrument()
    assert active.reused or active.meter_provider is metrics.get_meter_provider(), active
    result = DemoRun(jobs={JOBS}, concurrency={CONCURRENCY}, seed={SEED}).run()
    total = result.total()
    print(f"TOTAL {{total.calls + total.failed_calls}}", flush=True)
    while True:
        time.sleep(1)
    """
)


@dataclass
class Stack:
    prometheus_url: str
    instances: dict[str, str]  # path -> "127.0.0.1:port"
    outputs: dict[str, Path]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Prometheus scraping ``statek demo --keep-serving`` and the OpenTelemetry-exporter app; yields
    once both have finished their jobs."""
    workdir = tmp_path_factory.mktemp("dashboards-e2e")
    ports = {path: free_port() for path in PATHS}
    instances = {path: f"127.0.0.1:{port}" for path, port in ports.items()}
    outputs = {path: workdir / f"{path}.out" for path in PATHS}
    processes: list[subprocess.Popen[bytes]] = []
    commands = {
        "statek": [
            sys.executable,
            "-c",
            "from statek.cli import main; main()",
            "demo",
            *DEMO_ARGS,
            "--metrics-port",
            str(ports["statek"]),
            "--keep-serving",
        ],
        "otel": [sys.executable, "-c", OTEL_APP, str(ports["otel"])],
    }
    with launch_prometheus(list(instances.values()), workdir / "prometheus") as prometheus:
        try:
            for path in PATHS:
                with outputs[path].open("w") as out:
                    processes.append(
                        subprocess.Popen(
                            commands[path],
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            env={**os.environ, "COLUMNS": "160"},
                        )
                    )
            for path, process in zip(PATHS, processes):
                marker = "Still serving" if path == "statek" else "TOTAL "
                wait_for(
                    lambda marker=marker, path=path, process=process: (
                        marker in outputs[path].read_text() or process.poll() is not None
                    ),
                    180,
                    f"{path} traffic done",
                )
                assert process.poll() is None, f"{path} exited early:\n{outputs[path].read_text()}"
            yield Stack(prometheus.url, instances, outputs)
        finally:
            for process in processes:
                stop_process(process)


def _substitute(expr: str, **overrides: str) -> str:
    variables = {**VARIABLES, **overrides}

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in variables, f"unknown dashboard variable ${name} in {expr!r}"
        return variables[name]

    out = re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", value, expr)
    assert "$" not in out, out
    return out


def _targets() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                out.append((f"{inner['title']} / {target['refId']}", target["expr"]))
    return out


def _expected_calls(path: str, output: str) -> int:
    if path == "otel":
        match = re.search(r"TOTAL (\d+)", output)
        assert match, output
        return int(match[1])
    match = re.search(
        r"Grand total: .*? ([\d,]+) calls, .*? ([\d,]+) failed calls\.", output.replace("\n", " ")
    )
    assert match, output
    return int(match[1].replace(",", "")) + int(match[2].replace(",", ""))


@pytest.fixture(scope="module")
def scraped(stack: Stack) -> float:
    """The time at which Prometheus holds both processes' final counts (and two scrapes more)."""
    for path in PATHS:
        expected = _expected_calls(path, stack.outputs[path].read_text())
        selector = f'statek_requests_total{{instance="{stack.instances[path]}"}}'

        def complete(selector: str = selector, expected: int = expected) -> bool:
            result = query(stack.prometheus_url, f"sum({selector})", time.time())
            return bool(result) and float(result[0]["value"][1]) == expected

        wait_for(complete, 30, f"Prometheus to scrape all {expected} calls of {path}")
    time.sleep(2.5)  # every series, even one born in the last scrape, now has several samples
    return time.time()


def test_dashboard_has_the_queries_this_test_evaluates() -> None:
    assert len(_targets()) >= 20


def test_both_paths_have_the_same_traffic(stack: Stack, scraped: float) -> None:
    expected = {path: _expected_calls(path, stack.outputs[path].read_text()) for path in PATHS}
    assert expected["statek"] == expected["otel"] > 0


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("where", "expr"), _targets(), ids=[w for w, _ in _targets()])
def test_every_panel_query_returns_data(
    stack: Stack, scraped: float, path: str, where: str, expr: str
) -> None:
    promql = _substitute(expr, instance=stack.instances[path])
    result = query(stack.prometheus_url, promql, scraped)
    assert result, f"{path}: {where}: no data for\n{promql}"
    values = [float(series["value"][1]) for series in result]
    # All zeros would be an empty-looking panel: the demo's traffic has something for every panel.
    assert any(math.isfinite(v) and v > 0 for v in values), f"{path}: {where}: no positive value: {values}"


def test_both_paths_give_the_same_series_names(stack: Stack, scraped: float) -> None:
    # The naming contract itself: statek's /metrics and OpenTelemetry's translation of the same
    # instruments produce exactly the same Prometheus series names (and the catalogue's).
    names: dict[str, set[str]] = {}
    for path, instance in stack.instances.items():
        result = query(
            stack.prometheus_url,
            f'count by (__name__) ({{instance="{instance}", __name__=~"statek_.+|gen_ai_.+"}})',
            scraped,
        )
        names[path] = {series["metric"]["__name__"] for series in result}
    assert names["statek"] == names["otel"] == set(PROMETHEUS_SERIES - FAULT_SERIES), names


def test_variable_queries_list_the_demo_jobs_providers_and_models(stack: Stack, scraped: float) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    found: dict[str, set[str]] = {}
    for name in ("job", "instance", "provider", "model"):
        query = variables[name]["query"]["query"]
        match = re.fullmatch(r"label_values\((?P<selector>.+),\s*(?P<label>\w+)\)", query)
        assert match, query
        response = httpx.get(
            f"{stack.prometheus_url}/api/v1/label/{match['label']}/values",
            params={"match[]": _substitute(match["selector"])},
            timeout=10,
        ).json()
        assert response["status"] == "success", response
        found[name] = set(response["data"])
    assert found["job"] == {"statek"} and found["instance"] == set(stack.instances.values())
    assert {"openai", "anthropic", "gcp.gemini", "deepseek", "openrouter", "vllm"} <= found["provider"]
    assert {"gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-pro", "acme/support-llama-8b-ft"} <= found[
        "model"
    ]


@pytest.mark.parametrize("variable", ["provider", "instance"])
def test_panels_narrow_to_one_provider_or_instance(stack: Stack, scraped: float, variable: str) -> None:
    # A value picked in a drop-down must narrow the series, not empty or ignore them.
    expr = next(e for w, e in _targets() if w.startswith("Requests per second by outcome"))
    pick = "anthropic" if variable == "provider" else stack.instances["otel"]
    narrowed = _substitute(expr, **{variable: pick})
    everything = query(stack.prometheus_url, _substitute(expr), scraped)
    only = query(stack.prometheus_url, narrowed, scraped)
    assert only and sum(float(s["value"][1]) for s in only) < sum(float(s["value"][1]) for s in everything)
