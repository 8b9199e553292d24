"""The demo shows a job class running into its budget: agent jobs stopped before the call that would
pass it, counted in /metrics by model, named in the printed report."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from statek.cli.demo import _print_report
from statek.demo import DemoResult, DemoRun
from statek.demo.exporters import DemoExporters
from statek.demo.traffic import AGENT_BUDGET

JOBS = 60


@pytest.fixture(scope="module")
def demo_run() -> Iterator[tuple[DemoResult, str, str]]:
    exporters = DemoExporters.start("127.0.0.1", 0)
    try:
        result = DemoRun(jobs=JOBS, concurrency=16, seed=0).run()
        console = Console(record=True, width=400, file=io.StringIO())
        _print_report(console, result, exporters)
        httpx.get(exporters.metrics_url, timeout=10)  # the first scrape shows each new series at zero
        metrics = httpx.get(exporters.metrics_url, timeout=10).text
    finally:
        exporters.shutdown()
    yield result, console.export_text(), metrics


def test_agent_jobs_run_into_their_budget_and_are_stopped_before_the_call(
    demo_run: tuple[DemoResult, str, str],
) -> None:
    result, _, _ = demo_run
    stopped = result.budget_stops()
    agents = [o for o in result.outcomes if o.plan.job_class == "agent"]
    assert stopped and len(stopped) < len(agents)  # some agent jobs fit their budget, some do not
    assert AGENT_BUDGET.usd is not None
    for outcome in stopped:
        refused, ledger = outcome.stopped, outcome.usage.budget
        assert refused is not None and ledger is not None
        assert outcome.plan.job_class == "agent" and outcome.failure is None
        assert refused.job_id == outcome.plan.job_id and refused.reason == "usd"
        status = ledger.status()
        assert status.reserved_usd == 0 and status.refusals == 1
        assert status.spent_usd == outcome.usage.total_cost  # the ledger's spend is the job's recorded cost
        assert refused.spent + refused.estimate > AGENT_BUDGET.usd  # type: ignore[operator]
    for outcome in agents:  # every call of every agent job fit its estimate: none went over
        assert (outcome.usage.total_cost or 0) <= AGENT_BUDGET.usd


def test_refusals_are_counted_by_model_and_named_in_the_report(demo_run: tuple[DemoResult, str, str]) -> None:
    result, printed, metrics = demo_run
    stopped = result.budget_stops()
    samples = [
        s
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
        if s.name == "statek_budget_refusals_total"
    ]
    assert sum(s.value for s in samples) == len(stopped)
    assert {s.labels["gen_ai_request_model"] for s in samples if s.value} == {
        o.stopped.model for o in stopped if o.stopped
    }
    assert all(not any("job" in key for key in s.labels) for s in samples)
    agents = sum(o.plan.job_class == "agent" for o in result.outcomes)
    line = next(line for line in printed.splitlines() if line.startswith("Budgets:"))
    assert f"{len(stopped)} of {agents} agent jobs ran into their budget ($0.015)" in line
    assert "spent $" in line and "of $0.015" in line
