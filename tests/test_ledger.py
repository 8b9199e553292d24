"""The usage ledger: rows, the Parquet directory, the writer thread, reports, compaction, the CLI."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from ledger_support import call_record
from test_telemetry_support import Captured, captured_fixture, prices_fixture  # noqa: F401
from typer.testing import CliRunner

from statek.cli import app
from statek.executors.job import Job
from statek.ledger import call_row, job_row, scan
from statek.ledger.parquet import ParquetSink, table_files
from statek.ledger.query import compact, report
from statek.ledger.rows import ServiceIdentity
from statek.ledger.writer import LedgerWriter

SERVICE = ServiceIdentity("svc", "host:1")


def writer_into(directory: Path, instance: str = "host:1", interval: float = 3600.0) -> LedgerWriter:
    return LedgerWriter(
        [ParquetSink(directory, instance)], ServiceIdentity("svc", instance), interval=interval
    )


# ----------------------------------------------------------------------------- rows
def test_a_call_row_carries_the_job_lineage_and_every_attribute() -> None:
    root = Job("root", attributes={"tenant": "acme", "feature": "search"})
    with root, Job("child", attributes={"user": "u-7"}) as child:
        record = call_record(child, cost=Decimal("0.000000123456789"), cached_tokens=3)
    row = call_row(record, SERVICE)
    assert (row["job_id"], row["root_job_id"], row["parent_job_ids"]) == ("child", "root", ["root"])
    assert row["attributes"] == {"tenant": "acme", "feature": "search", "user": "u-7"}
    assert row["cost_usd"] == Decimal("0.000000123456789") and row["cost_status"] == "calculated"
    assert row["price_source"] == "table:openai" and row["response_model"] == "gpt-4o-mini-2024"
    assert (row["input_tokens"], row["output_tokens"], row["cached_tokens"]) == (10, 5, 3)
    assert (row["service_name"], row["service_instance"]) == ("svc", "host:1")
    assert row["end"] - row["start"] == timedelta(seconds=0.25)
    assert row["trace_id"] == f"{0x1234:032x}" and row["span_id"] == f"{0x56:016x}"
    assert root.job_id == "root"


@pytest.mark.parametrize("outcome", ["error", "refused"])
def test_a_failed_or_refused_call_has_no_tokens_and_no_cost(outcome: str) -> None:
    row = call_row(call_record(None, outcome=outcome), SERVICE)
    assert row["outcome"] == outcome and row["error_type"]
    assert row["cost_usd"] is None and row["cost_status"] is None and row["input_tokens"] == 0
    assert row["job_id"] is None and row["attributes"] == {}


def test_an_unpriced_call_has_no_cost_even_when_a_figure_was_attached() -> None:
    record = call_record(None, status="unpriced")
    record.detail = record.detail._replace(priced_cost=Decimal(1))  # type: ignore[union-attr]
    row = call_row(record, SERVICE)
    assert row["cost_usd"] is None and row["cost_status"] == "unpriced"


class _Held:
    pass


def test_the_writer_queues_the_calls_facts_not_its_record(tmp_path: Path) -> None:
    """A queued call keeps nothing of its record alive (span, response, job: the garbage collector's
    load), and its row carries the id a consumer already read from the record, else a fresh one."""
    import weakref

    writer = writer_into(tmp_path)
    try:
        with Job("j", attributes={"tenant": "t"}) as job:
            named = call_record(job)
            named_id = named.record_id
            unnamed = call_record(job)
        held = _Held()  # stands for what a record holds: span, response, job
        unnamed.extras = {"held": held}
        gone = weakref.ref(held)
        writer.add_call(named)
        writer.add_call(unnamed)
        del unnamed, held
        assert gone() is None  # freed at once, though the call's facts wait in the queue
        writer.flush()
        rows = scan(tmp_path, "calls").collect().to_dicts()
        ids = {row["record_id"] for row in rows}
        assert named_id in ids and len(ids) == 2
        assert [row["job_id"] for row in rows] == ["j", "j"]
    finally:
        writer.close()


def test_a_job_row_carries_the_totals_and_the_budget() -> None:
    from statek.call_record import JobRecord
    from statek.executors.budget import Budget

    with Job("j", attributes={"tenant": "t"}, budget=Budget(usd="2.50")) as job:
        job.usage.record("OPENAI", "m", call_record(job).detail)
    record = JobRecord(job, 1.0, 2.0, ValueError("boom"))
    row = job_row(record, SERVICE)
    assert row["record_id"] == record.record_id and row["error_type"] == "ValueError"
    assert row["calls"] == 1 and row["cost_usd"] == Decimal("0.0000123")
    assert row["budget_usd"] == Decimal("2.50") and row["attributes"] == {"tenant": "t"}


# ----------------------------------------------------------------------------- the directory
def test_the_writer_flushes_every_interval_without_being_asked(tmp_path: Path) -> None:
    writer = writer_into(tmp_path, interval=0.1)
    try:
        writer.add_call(call_record(None))
        deadline = time.monotonic() + 5
        while not table_files(tmp_path, "calls") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert scan(tmp_path).collect().height == 1
    finally:
        writer.close()


def test_close_writes_what_is_left_and_no_temporary_file_stays(tmp_path: Path) -> None:
    writer = writer_into(tmp_path)
    for _ in range(5):
        writer.add_call(call_record(None))
    writer.close()
    assert scan(tmp_path).collect().height == 5
    assert [p.name for p in (tmp_path / "calls").iterdir() if not p.name.endswith(".parquet")] == []


def test_an_unwritable_directory_logs_once_counts_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, captured: Captured
) -> None:
    blocker = tmp_path / "ledger"
    blocker.write_text("a file where the ledger folder should be")
    writer = writer_into(blocker)
    with caplog.at_level(logging.ERROR, logger="statek.ledger"):
        for _ in range(3):
            writer.add_call(call_record(None))
            writer.flush()
    writer.close()
    assert writer.dropped["parquet"] == 3 and writer.dropped_total() == 3
    lines = [r for r in caplog.records if r.name == "statek.ledger"]
    assert len(lines) == 1 and "lost by the parquet sink" in lines[0].getMessage()
    assert captured.values("statek.consumer.errors") == {frozenset({("statek.consumer", "ledger")}): 3}


def test_import_statek_does_not_import_polars() -> None:
    code = "import sys, statek, statek.ledger; print('polars' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- reports
def _ledger(tmp_path: Path) -> Path:
    writer = writer_into(tmp_path)
    with Job("a", attributes={"tenant": "acme"}) as a:
        writer.add_call(call_record(a, cost=Decimal("0.1")))
        writer.add_call(call_record(a, outcome="error"))
        writer.add_call(call_record(a, outcome="refused"))
        with Job("a1", attributes={"user": "u"}) as a1:
            writer.add_call(call_record(a1, model="claude", provider="ANTHROPIC", cost=Decimal("0.2")))
    writer.flush()
    with Job("b", attributes={"tenant": "zed"}) as b:
        writer.add_call(call_record(b, status="unpriced", cost=None, input_tokens=7))
        old = datetime(2020, 1, 1, tzinfo=timezone.utc).timestamp()
        writer.add_call(call_record(b, cost=Decimal(1), started_wall=old))
    writer.close()
    return tmp_path


def test_report_counts_as_llm_usage_does(tmp_path: Path) -> None:
    rows = report(scan(_ledger(tmp_path)), ["tenant"]).to_dicts()
    acme, zed = rows
    assert acme["tenant"] == "acme" and (acme["calls"], acme["failed_calls"], acme["refused_calls"]) == (
        2,
        1,
        1,
    )
    assert acme["cost_usd"] == Decimal("0.3") and acme["input_tokens"] == 20
    assert zed["calls"] == 2 and zed["unpriced_calls"] == 1 and zed["cost_usd"] == Decimal(1)


def test_report_filters_by_time_and_job_tree(tmp_path: Path) -> None:
    calls = scan(_ledger(tmp_path))
    recent = report(calls, ["tenant"], since=datetime.now(timezone.utc) - timedelta(days=30)).to_dicts()
    assert [r["cost_usd"] for r in recent] == [Decimal("0.3"), None]  # zed: one unpriced call
    tree = report(calls, ["job", "model"], job="a").to_dicts()
    assert [(r["job"], r["model"], r["calls"]) for r in tree] == [
        ("a", "gpt-4o-mini", 1),
        ("a1", "claude", 1),
    ]
    unknown = report(calls, ["team"]).to_dicts()
    assert len(unknown) == 1 and unknown[0]["team"] is None and unknown[0]["calls"] == 4


def test_compact_merges_files_and_keeps_every_record_once(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    before = report(scan(ledger), ["tenant", "model", "day"])
    (ledger / "calls" / "copy.parquet").write_bytes(table_files(ledger, "calls")[0].read_bytes())
    assert compact(ledger)["calls"] == 3
    assert len(table_files(ledger, "calls")) == 1
    assert report(scan(ledger), ["tenant", "model", "day"]).equals(before)


def test_cli_report_json_csv_and_export(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path / "l")
    runner = CliRunner()
    out = runner.invoke(app, ["usage", "report", "--ledger", str(ledger), "--by", "tenant,model", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert rows[0] == {
        "tenant": "acme",
        "model": "claude",
        "calls": 1,
        "failed_calls": 0,
        "refused_calls": 0,
        "input_tokens": 10,
        "cached_tokens": 0,
        "output_tokens": 5,
        "reasoning_tokens": 0,
        "cost_usd": "0.2",
        "unpriced_calls": 0,
    }
    out = runner.invoke(app, ["usage", "report", "--ledger", str(ledger), "--by", "provider", "--csv"])
    assert out.output.splitlines()[1].startswith("ANTHROPIC,1,0,0,")
    target = tmp_path / "calls.jsonl"
    out = runner.invoke(
        app, ["usage", "export", "--ledger", str(ledger), "--since", "30d", "-o", str(target)]
    )
    assert out.exit_code == 0 and len(target.read_text().splitlines()) == 5


def test_cli_reprice_prices_each_call_again(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path / "l")
    prices = tmp_path / "prices.csv"
    prices.write_text("PROVIDER,MODEL,INPUT_PRICE_PER_M,OUTPUT_PRICE_PER_M\nopenai,gpt-4o-mini,1,2\n")
    out = CliRunner().invoke(
        app, ["usage", "reprice", "--prices", str(prices), "--ledger", str(ledger), "--by", "model", "--json"]
    )
    assert out.exit_code == 0, out.output
    claude, mini = json.loads(out.output)
    assert claude["repriced_usd"] is None and claude["unpriced_calls"] == 1
    # 3 answered gpt-4o-mini calls (10 in, 5 out; one with 7 in) at $1/$2 per million
    assert Decimal(mini["repriced_usd"]) == Decimal(20 + 17 + 20) / 10**6
    # the difference counts the calls priced both times (not the one recorded unpriced)
    assert mini["cost_usd"] == "1.1"
    assert Decimal(mini["difference_usd"]) == Decimal(40) / 10**6 - Decimal("1.1")


# ----------------------------------------------------------------------------- OTLP log records
def test_rows_become_otlp_log_events_with_every_field() -> None:
    from opentelemetry.sdk._logs import export

    from statek.ledger.otlp import OtlpLogSink

    # InMemoryLogExporter in older opentelemetry-sdk releases (the lowest version statek allows is tested too)
    exporter = getattr(export, "InMemoryLogRecordExporter", None) or export.InMemoryLogExporter  # type: ignore[attr-defined]
    exporter = exporter()
    sink = OtlpLogSink(exporter)
    with Job("j", attributes={"tenant": "acme"}) as job:
        row = call_row(call_record(job, cost=Decimal("0.000000123456789")), SERVICE)
    sink.write("calls", [row])
    sink.close()
    (exported,) = exporter.get_finished_logs()
    record = exported.log_record
    assert (
        getattr(record, "event_name", "statek.usage.call") == "statek.usage.call" and record.span_id == 0x56
    )
    assert dict(record.attributes or {})["event.name"] == "statek.usage.call"
    attributes = dict(record.attributes or {})
    assert attributes["statek.usage.cost_usd"] == "0.000000123456789"
    assert attributes["statek.job.tenant"] == "acme" and attributes["statek.usage.job_id"] == "j"
    assert attributes["statek.usage.record_id"] == row["record_id"]
    assert record.timestamp == int(row["start"].timestamp() * 1e6) * 1000


@pytest.mark.parametrize(
    ("env", "endpoint", "expected"),
    [
        ({}, None, (False, False)),
        ({}, "http://127.0.0.1:4318", (True, False)),
        ({"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://x:4318/v1/logs"}, None, (True, False)),
        ({"OTEL_LOGS_EXPORTER": "none"}, "http://127.0.0.1:4318", (False, False)),
        ({"OTEL_LOGS_EXPORTER": "console"}, None, (False, True)),
        ({"OTEL_LOGS_EXPORTER": "otlp"}, None, (True, False)),
        ({"OTEL_SDK_DISABLED": "true"}, "http://127.0.0.1:4318", (False, False)),
    ],
)
def test_logs_follow_the_otel_exporter_settings(
    env: dict[str, str], endpoint: str | None, expected: tuple[bool, bool]
) -> None:
    from statek.exporters.ledger import logs_plan

    assert logs_plan(endpoint, env) == expected
    # without a directory or Postgres ledger, only an explicit OTEL_LOGS_EXPORTER sends usage records
    explicit = "OTEL_LOGS_EXPORTER" in env and "OTEL_SDK_DISABLED" not in env
    assert logs_plan(endpoint, env, ledger_on=False) == (expected if explicit else (False, False))


def test_an_unknown_logs_exporter_is_a_configuration_error() -> None:
    from statek.exceptions import ConfigurationError
    from statek.exporters.ledger import logs_plan

    with pytest.raises(ConfigurationError, match="OTEL_LOGS_EXPORTER"):
        logs_plan(None, {"OTEL_LOGS_EXPORTER": "kafka"})


# ----------------------------------------------------------------------------- Postgres spool
def test_an_unreachable_postgres_keeps_rows_in_a_bounded_spool(caplog: pytest.LogCaptureFixture) -> None:
    import socket

    from statek.ledger.postgres import PostgresSink

    with socket.socket() as probe:  # a port nothing listens on: connections are refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = PostgresSink(f"postgresql://statek@127.0.0.1:{port}/postgres", spool=5)
    rows = [call_row(call_record(None), SERVICE) for _ in range(7)]
    with caplog.at_level(logging.WARNING, logger="statek.ledger"):
        sink.write("calls", rows[:3])
        assert (sink.waiting, sink.dropped) == (3, 0)
        sink.write("calls", rows[3:])
        sink.tick()
    assert (sink.waiting, sink.dropped) == (5, 2)  # the two oldest went
    assert [r for _, r in sink._spool] == rows[2:]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Postgres unreachable" in m for m in messages) == 1  # said once, not per retry
    assert sum("spool full" in m for m in messages) == 1
    sink.close()
    assert sink.dropped == 7 and sink.waiting == 0


FORKING = """
import os, sys
sys.path.insert(0, sys.argv[2])
from ledger_support import call_record
from statek.ledger.parquet import ParquetSink
from statek.ledger.rows import ServiceIdentity
from statek.ledger.writer import LedgerWriter

writer = LedgerWriter([ParquetSink(sys.argv[1], "parent")], ServiceIdentity("svc", "parent"), interval=3600)
writer.add_call(call_record(None, input_tokens=1))  # queued in the parent before the fork
pid = os.fork()
if pid == 0:  # the child: a pre-forked worker
    try:
        writer.add_call(call_record(None, input_tokens=100))
        writer.close()
    finally:
        os._exit(0)
_, status = os.waitpid(pid, 0)
writer.close()
sys.exit(status)
"""


def test_a_forked_child_writes_its_own_files_and_the_parents_records_stay_the_parents(tmp_path: Path) -> None:
    # In a fresh process: polars, once its thread pool ran, cannot be used in a forked child (its
    # documented limitation), and this test session has used it. A pre-forking server's master has not.
    tests = str(Path(__file__).resolve().parent)
    done = subprocess.run(
        [sys.executable, "-c", FORKING, str(tmp_path), tests],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    calls = scan(tmp_path).collect()
    assert sorted(calls["input_tokens"].to_list()) == [1, 100]  # each once, by its own process
    assert calls["service_instance"].n_unique() == 2
