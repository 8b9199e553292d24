"""The usage ledger: what it costs the calling thread, how fast a report reads it, how big it is.

- ``handoff``: the calling thread's share of one call's ledger record (the consumer's ``finish``:
  an append to the writer's queue), p50 over blocks of calls, wall and thread-CPU clocks, with the
  writer thread running and writing the Parquet files meanwhile (goal, issue 27: <= 5 us).
- ``call``: a whole ``LLM_API`` call in a ``Job`` per call (loopback server, full telemetry stack,
  priced model) with the ledger consumer attached and without, interleaved in blocks: p50 thread-CPU
  and wall time per call, and the difference.
- ``instructions``: the same two clients' calls counted by valgrind (callgrind, main thread only,
  runs of N and 4N calls differenced, as ``benchmarks/instructions.py`` does): what the ledger adds
  to one call on the calling thread, in instructions.
- ``report``: ``statek usage report --by tenant,model,day`` over ``--rows`` generated call rows
  (default 10 million: 200 tenants, 12 models, 30 days) in a ledger directory of compacted files;
  timed in-process (scan + group + collect) and as the CLI in a fresh process (goal: <= 2 s).
- ``size``: bytes on disk per million calls, as the writer leaves them (a file per second at 1000
  calls/s) and after ``statek usage compact``.

    python -m benchmarks ledger [--quick] [--rows N] [--part handoff|call|instructions|report|size]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
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


def _ledger_on(folder: str) -> Any:
    from statek.ledger.consumer import attach
    from statek.ledger.parquet import ParquetSink
    from statek.ledger.rows import service_identity
    from statek.ledger.writer import LedgerWriter

    service = service_identity()
    writer = LedgerWriter([ParquetSink(folder, service.instance)], service)
    attach(writer)
    return writer


def _ledger_off(writer: Any) -> None:
    from statek.ledger.consumer import detach

    detach(writer)
    writer.close()


async def _timed_calls(url: str, calls: int, block: int) -> dict[bool, tuple[list[float], list[float]]]:
    from benchmarks.overhead import Clients

    clients = Clients(url)
    results: dict[bool, tuple[list[float], list[float]]] = {False: ([], []), True: ([], [])}
    with tempfile.TemporaryDirectory(prefix="statek-ledger-bench-") as folder:
        for _ in range(100):  # warm-up
            await clients.statek_job_call()
        for n in range(max(1, calls // block)):
            on = n % 2 == 1
            writer = _ledger_on(folder) if on else None
            wall, cpu = results[on]
            for _ in range(block):
                w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
                await clients.statek_job_call()
                cpu.append((time.thread_time_ns() - c0) / 1000)
                wall.append((time.perf_counter_ns() - w0) / 1000)
            if writer is not None:
                _ledger_off(writer)
    await clients.aclose()
    return results


def call_cost(calls: int) -> None:
    import asyncio

    from benchmarks._loopback import LoopbackServer, telemetry_on

    telemetry_on()
    with LoopbackServer() as server:
        results = asyncio.run(_timed_calls(server.url, calls, 500))
    (off_wall, off_cpu), (on_wall, on_cpu) = results[False], results[True]
    p50 = statistics.median
    print(
        f"LLM_API call in a Job, p50 over {len(on_cpu)} calls each: ledger off {p50(off_cpu):.1f} us CPU "
        f"({p50(off_wall):.1f} us wall), ledger on {p50(on_cpu):.1f} us CPU ({p50(on_wall):.1f} us wall): "
        f"+{p50(on_cpu) - p50(off_cpu):.1f} us CPU on the calling thread"
    )


def _child(on: bool, calls: int) -> None:
    import asyncio

    from benchmarks._loopback import LoopbackServer, telemetry_on
    from benchmarks.overhead import Clients

    telemetry_on()

    async def run(url: str) -> None:
        clients = Clients(url)
        for _ in range(100 + calls):
            await clients.statek_job_call()
        await clients.aclose()

    with tempfile.TemporaryDirectory(prefix="statek-ledger-bench-") as folder, LoopbackServer() as server:
        writer = _ledger_on(folder) if on else None
        asyncio.run(run(server.url))
        if writer is not None:  # the last rows are written off the counted (main) thread, as in an app
            closing = threading.Thread(target=_ledger_off, args=(writer,))
            closing.start()
            closing.join()


def _instructions(on: bool, calls: int) -> int:
    import re
    import shutil

    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind (Debian)")
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    with tempfile.TemporaryDirectory(prefix="statek-callgrind-") as folder:
        out = Path(folder) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}"]
        child = [sys.executable, "-m", "benchmarks.ledger", "--child", "on" if on else "off", str(calls)]
        done = subprocess.run([*command, *child], env=env, capture_output=True, check=False)
        main_thread = out.with_name(out.name + "-01")
        found = (
            re.search(rb"^summary: (\d+)", main_thread.read_bytes(), re.MULTILINE)
            if main_thread.exists()
            else None
        )
    if done.returncode != 0 or found is None:
        raise SystemExit(f"valgrind run failed (exit {done.returncode}): {done.stderr.decode()[-600:]}")
    return int(found.group(1))


def instructions(calls: int) -> None:
    per_call = {}
    for on in (False, True):
        low, high = _instructions(on, calls), _instructions(on, 4 * calls)
        per_call[on] = (high - low) / (3 * calls)
    print(
        f"instructions per LLM_API call (calling thread, callgrind): ledger off {per_call[False]:,.0f}, "
        f"ledger on {per_call[True]:,.0f}: +{per_call[True] - per_call[False]:,.0f}"
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
        flushing = 0
        for n in range(calls):
            if n % per_flush == 0:
                job = Job(f"request-{n}", attributes={"tenant": f"tenant-{n % 200}", "feature": "chat"})
            writer.add_call(_record(job) if n % per_flush == 0 else _copy(_record(job)))
            if n % per_flush == per_flush - 1:
                started = time.thread_time_ns()
                writer.flush()
                flushing += time.thread_time_ns() - started
        writer.close()
        before = _bytes(Path(folder))
        compact(folder)
        after = _bytes(Path(folder))
    scale = 1_000_000 / calls
    print(
        f"ledger size per million calls: {before * scale / 1e6:.0f} MB as written (a file per "
        f"{per_flush} calls), {after * scale / 1e6:.0f} MB compacted; the writer's work (rows, Parquet): "
        f"{flushing / calls / 1000:.1f} us CPU per record, off the calling thread"
    )


def _copy(record: Any) -> Any:
    import uuid

    from opentelemetry.trace import SpanContext

    record.record_id = uuid.uuid4().hex
    record.span_context = SpanContext(uuid.uuid4().int >> 1, uuid.uuid4().int >> 65, False)
    return record


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.parquet"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks ledger", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 million report rows, 20k calls sized")
    parser.add_argument("--rows", type=int, default=10_000_000, help="call rows the report reads")
    parser.add_argument(
        "--part", choices=["handoff", "call", "instructions", "report", "size"], action="append"
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0] == "on", int(args.child[1]))
        return
    parts = args.part or ["handoff", "call", "instructions", "report", "size"]
    if "handoff" in parts:
        handoff(200_000 if not args.quick else 50_000)
    if "call" in parts:
        call_cost(4_000 if args.quick else 20_000)
    if "instructions" in parts:
        instructions(40 if args.quick else 100)
    if "report" in parts:
        report_speed(1_000_000 if args.quick else args.rows)
    if "size" in parts:
        size(20_000 if args.quick else 100_000)


if __name__ == "__main__":
    main()
