"""The job path's queued usage: calls recorded into an ``LLM_Usage`` (or a ``Job``) are queued and
added up when a figure is read. Whatever the order of records, failures and reads, and whichever way
a call comes in, every figure and the per-model breakdown equal those of a usage read after every
call; the queue stays short; a reader never misses a call recorded before its read."""

from __future__ import annotations

import sys
import threading
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from statek.call_record import CallRecord, CallSite
from statek.executors.budget import Budget
from statek.executors.budget_limits import default_limits
from statek.executors.job import Job
from statek.executors.llm_usage import _FIELDS, FOLD_AT, LLM_Usage
from statek.metering.types import CallCost
from statek.telemetry.jobs import JobUsageConsumer
from statek.types import CallDetail, CostStatus

MODELS = [("OPENAI", "gpt-4o"), ("ANTHROPIC", "claude"), ("LOCAL", "llama")]
money = st.none() | st.decimals(min_value=0, max_value=10, places=6, allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=10_000)


@st.composite
def details(draw: st.DrawFn) -> CallDetail:
    status: CostStatus = draw(st.sampled_from(["calculated", "reported", "unpriced", "no_usage", "reserved"]))
    return CallDetail(
        draw(counts),
        draw(counts),
        draw(money),
        input_tokens=draw(counts),
        output_tokens=draw(counts),
        cached_tokens=draw(counts),
        cache_write_tokens=draw(counts),
        reasoning_tokens=draw(counts),
        priced_cost=draw(money),
        cost_status=status,
    )


answered = st.tuples(st.just("call"), st.sampled_from(MODELS), details(), money)
failed = st.tuples(st.just("failure"), st.sampled_from(MODELS), counts, counts)
reads = st.tuples(st.just("read"))
operations = st.lists(st.one_of(answered, answered, failed, reads), max_size=3 * FOLD_AT)


def snapshot(usage: LLM_Usage) -> tuple[Any, ...]:
    """Every figure of ``usage``, its cost and its per-model breakdown (in first-use order)."""
    figures = tuple(getattr(usage, name) for name in _FIELDS if name not in ("pricing", "budget"))
    return figures, usage.total_cost, list(usage.by_model().items())


def apply(usage: LLM_Usage, ops: list[tuple[Any, ...]], read_each: bool) -> None:
    for op in ops:
        if op[0] == "call":
            (provider, model), stats, table = op[1], op[2], op[3]
            usage.record(provider, model, stats, table_cost=table)
        elif op[0] == "failure":
            (provider, model), sent, received = op[1], op[2], op[3]
            usage.record_failure(provider, model, sent, received)
        else:
            snapshot(usage)
        if read_each:
            snapshot(usage)


@settings(max_examples=150, deadline=None)
@given(ops=operations, hand=st.tuples(counts, counts, money))
def test_a_queued_usage_reads_as_one_added_up_after_every_call(
    ops: list[tuple[Any, ...]], hand: tuple[int, int, Decimal | None]
) -> None:
    queued, eager = (
        LLM_Usage(total_input_tokens=hand[0], calls=hand[1], total_reported_cost=hand[2]) for _ in range(2)
    )
    apply(queued, ops, read_each=False)
    apply(eager, ops, read_each=True)
    assert snapshot(queued) == snapshot(eager)

    calls = [op for op in ops if op[0] == "call"]
    assert queued.calls == hand[1] + len(calls)
    assert queued.total_input_tokens == hand[0] + sum(op[2].input_tokens for op in calls)
    assert queued.failed_calls == sum(op[0] == "failure" for op in ops)
    assert queued.context_bytes == queued.total_bytes_sent + queued.total_bytes_received


def finished(job: Job, op: tuple[Any, ...]) -> CallRecord:
    """The record of one call of ``job`` as the metering path hands it to the consumers at its end."""
    provider, model = op[1]
    record = CallRecord(CallSite(provider, provider.lower(), provider, model, "chat"), job)
    if op[0] == "call":
        stats = op[2]
        record.outcome, record.detail = "ok", stats
        record.cost = CallCost(stats.priced_cost, stats.cost_status, table_amount=op[3])
    else:
        record.outcome, record.bytes_sent, record.bytes_received = "error", op[2], op[3]
    return record


@settings(max_examples=100, deadline=None)
@given(ops=operations, read_first=st.booleans())
def test_a_job_and_its_parent_read_as_usages_recorded_by_hand(
    ops: list[tuple[Any, ...]], read_first: bool
) -> None:
    consumer = JobUsageConsumer()
    by_hand = LLM_Usage()
    with Job("parent", budget=Budget()) as parent, Job("child", budget=Budget()) as child:
        held = child.usage if read_first else None  # a usage held from the start sees every later call
        for op in ops:
            if op[0] == "read":
                snapshot(child.usage)
                continue
            consumer.finish(finished(child, op))
        apply(by_hand, [op for op in ops if op[0] != "read"], read_each=False)
    assert snapshot(child.usage) == snapshot(parent.usage) == snapshot(by_hand)
    if held is not None:
        assert held is child.usage
    assert child.usage.calls + child.usage.failed_calls == sum(op[0] != "read" for op in ops)


def test_a_usage_nobody_reads_keeps_at_most_fold_at_calls_queued() -> None:
    stats = CallDetail(1, 1, None, 10, 1, priced_cost=Decimal("0.001"), cost_status="calculated")
    usage = LLM_Usage()
    consumer = JobUsageConsumer()
    with Job("long", budget=Budget()) as job:
        for n in range(10 * FOLD_AT):
            usage.record("P", "m", stats)
            consumer.finish(finished(job, ("call", ("P", "m"), stats, None)))
            assert len(usage._queue) <= FOLD_AT and len(job._queue) <= FOLD_AT, n
    assert usage.calls == job.usage.calls == 10 * FOLD_AT
    assert usage.total_cost == job.usage.total_cost == Decimal("0.001") * 10 * FOLD_AT


def test_a_thread_reads_every_call_it_recorded_while_others_record_and_read() -> None:
    usage = LLM_Usage()
    stats = CallDetail(1, 1, None, 10, 1, priced_cost=Decimal("0.001"), cost_status="calculated")
    missed: list[tuple[int, int]] = []

    def work() -> None:
        for n in range(1500):
            usage.record("P", f"m{n % 3}", stats)
            mine = n + 1
            if n % 7 == 0:
                seen = sum(model.calls for model in usage.by_model().values())
            else:
                seen = usage.calls
            if seen < mine:
                missed.append((mine, seen))

    threads = [threading.Thread(target=work) for _ in range(6)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: any window shows
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not missed
    assert usage.calls == 9000 and usage.total_input_tokens == 90_000
    assert usage.total_cost == Decimal("9.000")


def test_a_job_with_one_call_earns_no_span_and_makes_no_usage_until_read() -> None:
    stats = CallDetail(1, 1, None, 10, 1, priced_cost=Decimal("0.001"), cost_status="calculated")
    consumer = JobUsageConsumer()
    with Job("one", budget=Budget()) as job:
        consumer.finish(finished(job, ("call", ("P", "m"), stats, None)))
        assert not job.earned_span(None)
        consumer.finish(finished(job, ("call", ("P", "m"), stats, None)))
        assert job.earned_span(None)  # two calls, both still queued
        assert job._usage is None
    assert job.usage.calls == 2  # the job's span read it at the end


env_values = st.sampled_from(["", " ", "2.50", "0", "7", "1_000", "allow", "REFUSE", "-1", "lots"])


@settings(max_examples=100, deadline=None)
@given(
    values=st.fixed_dictionaries(
        {},
        optional={
            "STATEK_BUDGET_USD": env_values,
            "STATEK_BUDGET_TOKENS": env_values,
            "STATEK_BUDGET_CALLS": env_values,
            "STATEK_MAX_TOKEN_USAGE": env_values,
            "STATEK_BUDGET_UNPRICED": env_values,
        },
    )
)
def test_default_limits_is_from_env_when_it_limits_anything(values: dict[str, str]) -> None:
    import os

    saved = {name: os.environ.pop(name) for name in values if name in os.environ}
    os.environ.update(values)
    try:
        try:
            expected: Budget | None | type[Exception] = Budget.from_env()
        except ValueError as bad:
            expected = type(bad)
        try:
            got: Budget | None | type[Exception] = default_limits()
        except ValueError as bad:
            got = type(bad)
        if isinstance(expected, Budget) and not expected.is_limited:
            expected = None
        assert got == expected
    finally:
        for name in values:
            os.environ.pop(name, None)
        os.environ.update(saved)
