"""The ledger end to end in real processes: ``STATEK_LEDGER_DIR`` + ``statek.instrument()``, jobs for
several tenants through ``LLM_API`` against the loopback simulator, then ``statek usage report
--ledger DIR --by tenant --json`` gives each tenant's calls, failed calls, tokens and cost exactly as
the jobs' ``usage`` had them; two processes into one directory are summed. One process ends with
``statek.shutdown()``, the other only by leaving the interpreter (the exit hook writes the rest)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from test_telemetry_support import (  # noqa: F401 - fixtures
    Captured,
    call,
    captured_fixture,
    prices_fixture,
    scripted_api,
)
from typer.testing import CliRunner

import statek
from statek.call_record import call_consumers, job_consumers
from statek.cli import app
from statek.executors.job import Job
from statek.ledger import scan
from statek.ledger.query import report
from statek.testing import Failure, ModelBehavior, ProviderSimulator

WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    import statek
    from statek import LLM_API, ChatHistoryItem, Job
    from statek._http import RetryPolicy
    from statek.exceptions import ProviderError

    url, tenants, ending = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
    statek.instrument(service_name="ledger-worker")

    async def main():
        api = LLM_API.get("OPENAI", api_url=url, api_key="test-key", retry=RetryPolicy(attempts=1))
        usage = {}
        for n, tenant in enumerate(tenants):
            async with Job(f"{tenant}-{n}-{ending}", attributes={"tenant": tenant, "user": f"u{n}"}) as job:
                for model in ("gpt-4o-mini", "gpt-4.1-nano", "flaky"):
                    async with Job(f"{tenant}-{n}-{model}"):  # a child job: counted once, in the parent
                        try:
                            await api.process_request("Be brief.", model,
                                chat_history=[ChatHistoryItem.user(f"question {n}")])
                        except ProviderError:
                            pass
            u = job.usage
            usage[job.job_id] = {"tenant": tenant, "calls": u.calls, "failed_calls": u.failed_calls,
                "input_tokens": u.total_input_tokens, "output_tokens": u.total_output_tokens,
                "cost_usd": str(u.total_cost)}
        await api.aclose()
        print(json.dumps(usage))

    asyncio.run(main())
    if ending == "shutdown":
        statek.shutdown()
    """
)

BEHAVIORS = {
    "gpt-4o-mini": ModelBehavior(input_tokens=1200, cached_tokens=1024, output_tokens=30),
    "gpt-4.1-nano": ModelBehavior(input_tokens=77, output_tokens=5),
    "flaky": ModelBehavior(input_tokens=10, output_tokens=1, failures=[Failure.hard(400, every=2)]),
}


def _run(url: str, tenants: list[str], ending: str, ledger: Path) -> dict[str, dict[str, object]]:
    env = {
        **os.environ,
        "STATEK_LEDGER_DIR": str(ledger),
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]
        ),
    }
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_LOGS_EXPORTER", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", WORKER, url, ",".join(tenants), ending],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_two_processes_one_directory_report_equals_the_jobs_usage(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    with ProviderSimulator(BEHAVIORS, seed=3) as sim:
        first = _run(sim.openai_url, ["acme", "zed", "acme"], "shutdown", ledger)
        second = _run(sim.openai_url, ["acme", "umbrella"], "exit", ledger)
    expected: dict[str, dict[str, object]] = {}
    for job in [*first.values(), *second.values()]:
        tenant = str(job["tenant"])
        totals = expected.setdefault(
            tenant,
            {"calls": 0, "failed_calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": Decimal(0)},
        )
        for key in ("calls", "failed_calls", "input_tokens", "output_tokens"):
            totals[key] += job[key]  # type: ignore[operator]
        totals["cost_usd"] += Decimal(str(job["cost_usd"]))  # type: ignore[operator]
    assert any(job["failed_calls"] for job in first.values())  # failures are in the picture

    out = CliRunner().invoke(app, ["usage", "report", "--ledger", str(ledger), "--by", "tenant", "--json"])
    assert out.exit_code == 0, out.output
    report = {row.pop("tenant"): row for row in json.loads(out.output)}
    assert set(report) == set(expected) == {"acme", "zed", "umbrella"}
    for tenant, totals in expected.items():
        got = report[tenant]
        assert {k: got[k] for k in ("calls", "failed_calls", "input_tokens", "output_tokens")} == {
            k: totals[k] for k in ("calls", "failed_calls", "input_tokens", "output_tokens")
        }
        assert Decimal(got["cost_usd"]) == totals["cost_usd"]

    calls = scan(ledger).collect()
    assert calls["service_name"].unique().to_list() == ["ledger-worker"]
    assert calls["service_instance"].n_unique() == 2 and calls["record_id"].n_unique() == calls.height
    jobs = scan(ledger, "jobs").collect()
    assert jobs.height == 5 + 5 * 3  # each outer job and its three child jobs
    outer = jobs.filter(jobs["parent_job_ids"].list.len() == 0)
    assert sorted(outer["job_id"].to_list()) == sorted([*first, *second])


def test_instrument_with_a_ledger_registers_the_consumer_and_shutdown_removes_it(tmp_path: Path) -> None:
    before = (call_consumers(), job_consumers())
    instrumentation = statek.instrument(ledger=tmp_path, registry=None, prometheus_port=0)
    try:
        assert instrumentation.ledger is not None
        assert any(getattr(c, "name", "") == "ledger" for c in call_consumers())
        assert any(getattr(c, "name", "") == "ledger" for c in job_consumers())
    finally:
        statek.shutdown()
    assert (call_consumers(), job_consumers()) == before


async def test_the_metering_path_records_answered_failed_and_refused_calls_and_the_job(
    tmp_path: Path, captured: Captured
) -> None:
    from statek.exceptions import BudgetExceededError, ProviderHTTPError
    from statek.executors.budget import Budget
    from statek.ledger.consumer import attach, detach
    from statek.ledger.parquet import ParquetSink
    from statek.ledger.rows import ServiceIdentity
    from statek.ledger.writer import LedgerWriter

    writer = LedgerWriter([ParquetSink(tmp_path, "here")], ServiceIdentity("svc", "here"), interval=3600)
    attach(writer)
    api = scripted_api()
    try:
        async with Job("req-1", attributes={"tenant": "acme"}, budget=Budget(calls=2)) as job:
            await call(api, "in=100 out=10")
            with pytest.raises(ProviderHTTPError):
                await call(api, "fail=400")
            with pytest.raises(BudgetExceededError):
                await call(api, "in=1 out=1")
    finally:
        detach(writer)
        writer.close()
    calls = {row["outcome"]: row for row in scan(tmp_path).collect().to_dicts()}
    assert set(calls) == {"ok", "error", "refused"}
    ok = calls["ok"]
    assert (ok["input_tokens"], ok["output_tokens"], ok["cost_usd"]) == (100, 10, job.usage.total_cost)
    assert ok["attr.tenant"] == "acme" and ok["trace_id"] and ok["span_id"]
    assert calls["error"]["error_type"] == "400" and calls["refused"]["cost_usd"] is None
    (row,) = scan(tmp_path, "jobs").collect().to_dicts()
    assert (row["job_id"], row["calls"], row["failed_calls"], row["budget_calls"]) == ("req-1", 1, 1, 2)
    assert row["cost_usd"] == job.usage.total_cost and row["budget_refusals"] == 1
    assert report(scan(tmp_path), ["tenant"]).row(0, named=True)["refused_calls"] == 1
