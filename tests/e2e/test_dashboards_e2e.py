"""Every panel of the Grafana dashboard returns data on a real Prometheus scraping a real ``statek demo``.

A Prometheus (Debian ``prometheus``, started here on loopback with a 1 s scrape interval) scrapes the
``/metrics`` of ``statek demo --keep-serving`` running as a subprocess. Once Prometheus has seen the
demo's final counts, every panel query and template-variable query of ``dashboards/statek.json`` is
evaluated through ``/api/v1/query`` with the variables filled in as Grafana would for "All"; the test
fails if any query errors or returns no data (nothing but zeros or NaN counts as none). Fails, never skips, without Prometheus.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import free_port, launch_prometheus, query, stop_process, wait_for

pytestmark = pytest.mark.e2e

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "statek.json"
# What Grafana substitutes with "All" selected (allValue ".*") and a 5-minute time range.
VARIABLES = {
    "provider": ".*",
    "model": ".*",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
    "__range_s": "300",
    "datasource": "prometheus",
}
DEMO_ARGS = ["--jobs", "120", "--concurrency", "8", "--seed", "11"]


@dataclass
class Stack:
    prometheus_url: str
    demo_output: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Prometheus scraping ``statek demo --keep-serving``; yields once the demo has finished its jobs."""
    workdir = tmp_path_factory.mktemp("dashboards-e2e")
    metrics_port = free_port()
    demo_output = workdir / "demo.out"
    demo = None
    with launch_prometheus([f"127.0.0.1:{metrics_port}"], workdir / "prometheus") as prometheus:
        try:
            with demo_output.open("w") as out:
                demo = subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        "from statek.cli import main; main()",
                        "demo",
                        *DEMO_ARGS,
                        "--metrics-port",
                        str(metrics_port),
                        "--keep-serving",
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "COLUMNS": "160"},
                )
            wait_for(
                lambda: "Still serving" in demo_output.read_text() or demo.poll() is not None,
                120,
                "demo done",
            )
            assert demo.poll() is None, f"the demo exited early:\n{demo_output.read_text()}"
            yield Stack(prometheus.url, demo_output)
        finally:
            if demo is not None:
                stop_process(demo)


def _substitute(expr: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in VARIABLES, f"unknown dashboard variable ${name} in {expr!r}"
        return VARIABLES[name]

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


def _printed_calls(output: str) -> int:
    match = re.search(
        r"Grand total: .*? ([\d,]+) calls, .*? ([\d,]+) failed calls\.", output.replace("\n", " ")
    )
    assert match, output
    return int(match[1].replace(",", "")) + int(match[2].replace(",", ""))


@pytest.fixture(scope="module")
def scraped(stack: Stack) -> float:
    """The time at which Prometheus holds the demo's final counts (and two scrapes more)."""
    expected = _printed_calls(stack.demo_output.read_text())

    def complete() -> bool:
        result = query(stack.prometheus_url, "sum(statek_requests_total)", time.time())
        return bool(result) and float(result[0]["value"][1]) == expected

    wait_for(complete, 30, f"Prometheus to scrape all {expected} calls")
    time.sleep(2.5)  # every series, even one born in the last scrape, now has several samples
    return time.time()


def test_dashboard_has_the_queries_this_test_evaluates() -> None:
    assert len(_targets()) >= 20


@pytest.mark.parametrize(("where", "expr"), _targets(), ids=[w for w, _ in _targets()])
def test_every_panel_query_returns_data(stack: Stack, scraped: float, where: str, expr: str) -> None:
    result = query(stack.prometheus_url, _substitute(expr), scraped)
    assert result, f"{where}: no data for\n{_substitute(expr)}"
    values = [float(series["value"][1]) for series in result]
    # All zeros would be an empty-looking panel: the demo's traffic has something for every panel.
    assert any(math.isfinite(v) and v > 0 for v in values), f"{where}: no positive value: {values}"


def test_variable_queries_list_the_demo_providers_and_models(stack: Stack, scraped: float) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    found: dict[str, set[str]] = {}
    for name in ("provider", "model"):
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
    assert {"openai", "anthropic", "gcp.gemini", "deepseek", "openrouter", "vllm"} <= found["provider"]
    assert {"gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-pro", "acme/support-llama-8b-ft"} <= found[
        "model"
    ]


def test_panels_narrow_to_one_provider(stack: Stack, scraped: float) -> None:
    # A provider picked in the drop-down must narrow the series, not empty or ignore them.
    expr = next(e for w, e in _targets() if w.startswith("Requests per second by outcome"))
    narrowed = _substitute(expr.replace("$provider", "anthropic"))
    everything = query(stack.prometheus_url, _substitute(expr), scraped)
    only = query(stack.prometheus_url, narrowed, scraped)
    assert only and sum(float(s["value"][1]) for s in only) < sum(float(s["value"][1]) for s in everything)
