"""Property: however the same calls are split over processes (writers) and files (flushes), and
whether the directory is compacted or not, the report is the same, and it is the exact sum."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_support import call_record

from statek.executors.job import Job
from statek.ledger import scan
from statek.ledger.parquet import ParquetSink
from statek.ledger.query import compact, report
from statek.ledger.rows import ServiceIdentity
from statek.ledger.writer import LedgerWriter

TENANTS = ("acme", "zed", "umbrella")
MODELS = ("gpt-4o-mini", "claude-haiku")

calls = st.lists(
    st.tuples(
        st.sampled_from(TENANTS),
        st.sampled_from(MODELS),
        st.sampled_from(["ok", "ok", "ok", "error", "refused"]),
        st.integers(0, 10**6),
        st.integers(0, 10**5),
        st.one_of(st.none(), st.decimals(min_value=0, max_value=100, places=12, allow_nan=False)),
        st.integers(0, 3),  # which process writes it
        st.booleans(),  # flush after it (a file boundary)
    ),
    min_size=1,
    max_size=40,
)


def _write(directory: Path, items: list[tuple], split: bool) -> None:
    jobs = {t: Job(f"job-{t}", attributes={"tenant": t}) for t in TENANTS}
    writers = {}
    for tenant, model, outcome, tokens_in, tokens_out, cost, process, flush in items:
        key = process if split else 0
        writer = writers.get(key)
        if writer is None:
            instance = f"host:{key}"
            writer = writers[key] = LedgerWriter(
                [ParquetSink(directory, instance)], ServiceIdentity("svc", instance), interval=3600
            )
        status = "calculated" if cost is not None else "unpriced"
        writer.add_call(
            call_record(
                jobs[tenant],
                model=model,
                outcome=outcome,
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                cost=cost,
                status=status,
            )
        )
        if split and flush:
            writer.flush()
    for writer in writers.values():
        writer.close()


def _expected(items: list[tuple]) -> dict[str, dict[str, object]]:
    totals: dict[str, dict[str, object]] = defaultdict(
        lambda: {"calls": 0, "failed_calls": 0, "input_tokens": 0, "cost_usd": None}
    )
    for tenant, _model, outcome, tokens_in, _out, cost, _p, _f in items:
        entry = totals[tenant]
        if outcome == "ok":
            entry["calls"] += 1  # type: ignore[operator]
            entry["input_tokens"] += tokens_in  # type: ignore[operator]
            if cost is not None:
                before = entry["cost_usd"]
                entry["cost_usd"] = cost if before is None else before + cost  # type: ignore[operator]
        elif outcome == "error":
            entry["failed_calls"] += 1  # type: ignore[operator]
    return dict(totals)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=calls)
def test_any_split_over_processes_and_files_gives_the_same_report(items: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as many:
        _write(Path(one), items, split=False)
        _write(Path(many), items, split=True)
        by = ["tenant", "model", "day"]
        whole = report(scan(one), by)
        assert report(scan(many), by).equals(whole)
        compact(many)
        assert report(scan(many), by).equals(whole)
        per_tenant = {row.pop("tenant"): row for row in report(scan(many), ["tenant"]).to_dicts()}
        for tenant, expected in _expected(items).items():
            got = per_tenant[tenant]
            assert {k: got[k] for k in expected} == expected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_since_and_until_parse_or_refuse_cleanly(text: str) -> None:
    import typer

    from statek.cli.usage import parse_moment

    try:
        moment = parse_moment(text)
    except typer.BadParameter:
        return
    assert moment is None or moment.tzinfo is not None


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from("smhdw"))
def test_durations_count_back_from_now(amount: int, unit: str) -> None:
    from datetime import datetime, timedelta, timezone

    from statek.cli.usage import parse_moment

    now = datetime(2026, 12, 6, tzinfo=timezone.utc)
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    assert parse_moment(f"{amount}{unit}", now) == now - timedelta(seconds=amount * seconds)


@settings(max_examples=200, deadline=None)
@given(st.decimals(min_value=0, max_value=10**20 - 1, places=18, allow_nan=False))
def test_money_survives_parquet_and_the_report_text_exactly(amount: Decimal) -> None:
    import polars as pl

    from statek.cli.usage import _as_text
    from statek.ledger.schema import money

    frame = pl.DataFrame({"cost_usd": [money(amount)]}, schema={"cost_usd": pl.Decimal(38, 18)})
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.parquet"
        frame.write_parquet(path)
        text = _as_text(pl.read_parquet(path))["cost_usd"][0]
    assert Decimal(text) == amount and (text == "0" or not text.endswith(("0", ".")) or "." not in text)
