"""The usage ledger: what it costs the calling thread, how fast a report reads it, how big it is.

- ``handoff``: the calling thread's share of one call's ledger record (the consumer's ``finish``:
  an append to the writer's queue), p50 over blocks of calls, wall and thread-CPU clocks, with the
  writer thread running and writing the Parquet files meanwhile (goal, issue 27: <= 5 us).
- ``report``: ``statek usage report --by tenant,model,day`` over ``--rows`` generated call rows
  (default 10 million: 200 tenants, 12 models, 30 days) in a ledger directory of compacted files;
  timed in-process (scan + group + collect) and as the CLI in a fresh process (goal: <= 2 s).
- ``size``: bytes on disk per million calls, as the writer leaves them (a file per second at 1000
  calls/s) and after ``statek usage compact``.

    python -m benchmarks ledger [--quick] [--rows N] [--part handoff|report|size]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _record(job: Any) -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from ledger_support import call_record

    return call_record(job)


def handoff(calls: int) -> None:
    from statek.executors.job import Job
    from statek.ledger.parquet import ParquetSink
    from statek.ledger.rows import service_identity
    from statek.ledger.writer import LedgerWriter

    with tempfile.TemporaryDirectory(prefix="statek-ledger-bench-") as folder:
        service = service_identity()
        writer = LedgerWriter([ParquetSink(folder, service.instance)], service)
        with Job("bench", attributes={"tenant": "acme"}) as job:
            record = _record(job)
        add = writer.add_call
        block = 1000
        wall: list[float] = []
        cpu: list[float] = []
        for _ in range(max(1, calls // block)):
            w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            for _ in range(block):
                add(record)
            c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
            wall.append((w1 - w0) / block)
            cpu.append((c1 - c0) / block)
        writer.close()
        print(
            f"handoff per call (p50 of {len(wall)} blocks of {block}): "
            f"wall {statistics.median(wall):.0f} ns, thread CPU {statistics.median(cpu):.0f} ns; "
            f"written {sum(writer.written.values())} rows, dropped {writer.dropped_total()}"
        )


def _generate(folder: Path, rows: int, files: int) -> None:
    """``rows`` call rows in ``files`` files, as ``statek usage compact`` leaves a ledger."""
    import polars as pl

    from statek.ledger.parquet import write_frame
    from statek.ledger.schema import polars_schema

    schema = polars_schema("calls")
    per_file = rows // files
    start = 1_767_225_600_000_000  # 2026-01-01 UTC, microseconds
    for index in range(files):
        n = per_file if index < files - 1 else rows - per_file * (files - 1)
        i = pl.int_range(0, n, eager=True) + index * per_file
        base = pl.DataFrame({"i": i})
        frame = base.select(
            pl.col("i").hash(1).cast(pl.String).alias("record_id"),
            (pl.lit(start) + (pl.col("i") * (30 * 86_400_000_000 // rows))).alias("start"),
            pl.lit("svc").alias("service_name"),
            pl.lit("host:1").alias("service_instance"),
            (pl.lit("job-") + (pl.col("i") // 3).cast(pl.String)).alias("job_id"),
            (pl.lit("job-") + (pl.col("i") // 3).cast(pl.String)).alias("root_job_id"),
            pl.lit("OPENAI").alias("provider"),
            pl.lit("openai").alias("genai_provider"),
            pl.lit("openai").alias("pricing_provider"),
            (pl.lit("model-") + (pl.col("i").hash(2) % 12).cast(pl.String)).alias("request_model"),
            pl.lit("chat").alias("operation"),
            pl.lit(False).alias("stream"),
            pl.when(pl.col("i") % 50 == 0).then(pl.lit("error")).otherwise(pl.lit("ok")).alias("outcome"),
            (pl.col("i").hash(3) % 4000).cast(pl.Int64).alias("input_tokens"),
            (pl.col("i").hash(4) % 800).cast(pl.Int64).alias("output_tokens"),
            (pl.col("i").hash(5) % 100 * 7).cast(pl.Int64).alias("cost_units"),
            (pl.lit("tenant-") + (pl.col("i").hash(6) % 200).cast(pl.String)).alias("attr.tenant"),
        )
        frame = frame.with_columns(
            pl.col("start").cast(pl.Datetime("us", "UTC")),
            (pl.col("start").cast(pl.Datetime("us", "UTC")) + pl.duration(milliseconds=400)).alias("end"),
            (pl.col("cost_units").cast(pl.Decimal(38, 18)) / 1_000_000)
            .cast(pl.Decimal(38, 18))
            .alias("cost_usd"),
            pl.lit("calculated").alias("cost_status"),
        ).drop("cost_units")
        missing = [c for c in schema if c not in frame.columns]
        frame = frame.with_columns(pl.lit(None, dtype=schema[c]).alias(c) for c in missing)
        frame = frame.with_columns(pl.col(c).cast(schema[c]) for c in schema).select([*schema, "attr.tenant"])
        write_frame(frame, folder / "calls", f"gen-{index:04d}.parquet")


def report_speed(rows: int) -> None:
    from statek.ledger.query import report, scan

    with tempfile.TemporaryDirectory(prefix="statek-ledger-bench-") as folder:
        started = time.perf_counter()
        _generate(Path(folder), rows, files=max(1, rows // 1_000_000))
        print(f"generated {rows:,} call rows in {time.perf_counter() - started:.1f} s")
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            result = report(scan(folder), ["tenant", "model", "day"])
            timings.append(time.perf_counter() - started)
        print(
            f"report --by tenant,model,day in-process: best {min(timings):.2f} s ({result.height:,} groups)"
        )
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        command = [sys.executable, "-c", "from statek.cli import main; main()"]
        args = ["usage", "report", "--ledger", folder, "--by", "tenant,model,day", "--csv"]
        started = time.perf_counter()
        done = subprocess.run([*command, *args], env=env, capture_output=True, check=True)
        print(
            f"statek usage report --by tenant,model,day --csv (fresh process, start-up included): "
            f"{time.perf_counter() - started:.2f} s, {len(done.stdout.splitlines()) - 1:,} rows"
        )


def size(calls: int) -> None:
    from statek.executors.job import Job
    from statek.ledger.parquet import ParquetSink
    from statek.ledger.query import compact
    from statek.ledger.rows import service_identity
    from statek.ledger.writer import LedgerWriter

    per_flush = 1000
    with tempfile.TemporaryDirectory(prefix="statek-ledger-bench-") as folder:
        service = service_identity()
        writer = LedgerWriter([ParquetSink(folder, service.instance)], service, interval=3600)
        for n in range(calls):
            if n % per_flush == 0:
                job = Job(f"request-{n}", attributes={"tenant": f"tenant-{n % 200}", "feature": "chat"})
            writer.add_call(_record(job) if n % per_flush == 0 else _copy(_record(job)))
            if n % per_flush == per_flush - 1:
                writer.flush()
        writer.close()
        before = _bytes(Path(folder))
        compact(folder)
        after = _bytes(Path(folder))
    scale = 1_000_000 / calls
    print(
        f"ledger size per million calls: {before * scale / 1e6:.0f} MB as written (a file per "
        f"{per_flush} calls), {after * scale / 1e6:.0f} MB compacted"
    )


def _copy(record: Any) -> Any:
    import uuid

    record.record_id = uuid.uuid4().hex
    record.trace_id = uuid.uuid4().int >> 1
    record.span_id = uuid.uuid4().int >> 65
    return record


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.parquet"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks ledger", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 million report rows, 20k calls sized")
    parser.add_argument("--rows", type=int, default=10_000_000, help="call rows the report reads")
    parser.add_argument("--part", choices=["handoff", "report", "size"], action="append")
    args = parser.parse_args(argv)
    parts = args.part or ["handoff", "report", "size"]
    if "handoff" in parts:
        handoff(200_000 if not args.quick else 50_000)
    if "report" in parts:
        report_speed(1_000_000 if args.quick else args.rows)
    if "size" in parts:
        size(20_000 if args.quick else 100_000)


if __name__ == "__main__":
    main()
