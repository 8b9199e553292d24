"""Job: per-job usage through contextvars (awaits, tasks, threads), nesting, and the job span."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from decimal import Decimal

import pytest
from opentelemetry.trace import StatusCode
from test_telemetry_support import (  # noqa: F401
    Captured,
    call,
    captured_fixture,
    expected_cost,
    prices_fixture,
    scripted_api,
)

from statek.exceptions import ConfigurationError
from statek.executors.job import Job, current_job
from statek.executors.llm_usage import LLM_Usage


def test_a_job_is_current_inside_its_block_only() -> None:
    assert current_job() is None
    with Job("j-1") as job:
        assert current_job() is job
        assert isinstance(job.usage, LLM_Usage)
    assert current_job() is None


async def test_calls_across_awaits_and_tasks_started_inside_accumulate(captured: Captured) -> None:
    api = scripted_api()
    before = asyncio.create_task(asyncio.sleep(0, result=None))  # created outside: not part of the job
    async with Job("j-async") as job:
        await call(api, "in=100 out=10")
        await asyncio.gather(*(asyncio.create_task(call(api, f"in={n} out=1")) for n in (1, 2, 3)))
    await before
    await call(api, "in=999 out=9")  # after the job: not counted

    assert job.usage.calls == 4
    assert (job.usage.total_input_tokens, job.usage.total_output_tokens) == (106, 13)
    assert job.usage.total_cost == expected_cost(100, 10) + sum(expected_cost(n, 1) for n in (1, 2, 3))


async def test_nested_jobs_roll_up_into_every_ancestor(captured: Captured) -> None:
    api = scripted_api()
    with Job("parent", attributes={"tenant": "acme"}) as parent:
        await call(api, "in=1 out=1")
        with Job("child") as child:
            await call(api, "in=10 out=1")
            with Job("grandchild", attributes={"tenant": "other"}) as grandchild:
                await call(api, "in=100 out=1")
        await call(api, "in=1000 out=1")

    assert parent.usage.total_input_tokens == 1111 and parent.usage.calls == 4
    assert child.usage.total_input_tokens == 110 and child.usage.calls == 2
    assert grandchild.usage.total_input_tokens == 100 and grandchild.usage.calls == 1
    assert child.parent is parent and grandchild.lineage == (grandchild, child, parent)
    assert dict(child.attributes) == {"tenant": "acme"} and dict(grandchild.attributes) == {"tenant": "other"}
    assert parent.usage.total_cost == sum((expected_cost(n, 1) for n in (1, 10, 100, 1000)), Decimal(0))


async def test_threads_see_the_job_only_when_they_copy_the_context(captured: Captured) -> None:
    seen: dict[str, object] = {}

    def in_thread(name: str) -> None:
        seen[name] = current_job()
        asyncio.run(call(scripted_api(), "in=5 out=1"))

    with Job("threads") as job:
        await asyncio.to_thread(in_thread, "to_thread")  # copies the context
        plain = threading.Thread(target=in_thread, args=("plain",))  # starts with an empty context
        plain.start()
        plain.join()
        copied = threading.Thread(target=contextvars.copy_context().run, args=(in_thread, "copied"))
        copied.start()
        copied.join()

    assert seen == {"to_thread": job, "plain": None, "copied": job}
    assert job.usage.calls == 2 and job.usage.total_input_tokens == 10


def test_jobs_in_concurrent_threads_stay_apart(captured: Captured) -> None:
    jobs: dict[int, Job] = {}

    def worker(n: int) -> None:
        async def run() -> None:
            api = scripted_api()
            with Job(f"t{n}") as job:
                jobs[n] = job
                for i in range(20):
                    await call(api, f"in={n} out=1", nonce=i)

        asyncio.run(run())

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(1, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {n: (j.usage.calls, j.usage.total_input_tokens) for n, j in jobs.items()} == {
        n: (20, 20 * n) for n in range(1, 7)
    }


async def test_the_job_span_parents_its_calls_and_ends_with_the_totals(captured: Captured) -> None:
    api = scripted_api()
    async with Job("job-7", attributes={"feature": "summaries"}):
        first = await call(api, "in=100 out=10 cached=40")
        second = await call(api, "in=5 out=1 cost=0.5", model="reported")

    (job_span,) = captured.finished("job job-7")
    calls = [s for s in captured.finished() if s.name.startswith("chat ")]
    assert {s.parent.span_id for s in calls if s.parent} == {job_span.context.span_id}
    assert all(s.attributes["statek.job.id"] == "job-7" for s in calls)
    stats = (first.detail, second.detail)
    assert dict(job_span.attributes) == {
        "statek.job.id": "job-7",
        "statek.job.feature": "summaries",
        "statek.job.calls": 2,
        "statek.job.unpriced_calls": 0,
        "statek.job.no_usage_calls": 0,
        "statek.job.failed_calls": 0,
        "statek.job.input_tokens": 105,
        "statek.job.cached_tokens": 40,
        "statek.job.cache_write_tokens": 0,
        "statek.job.output_tokens": 11,
        "statek.job.reasoning_tokens": 0,
        "statek.job.bytes_sent": sum(s.total_bytes_sent for s in stats),
        "statek.job.bytes_received": sum(s.total_bytes_received for s in stats),
        "statek.job.cost.usd": pytest.approx(float(expected_cost(100, 10, 40) + Decimal("0.5"))),
    }


def test_an_error_in_the_job_body_marks_the_job_span_and_propagates(captured: Captured) -> None:
    with pytest.raises(KeyError), Job("failing"):
        raise KeyError("missing")
    (span,) = captured.finished("job failing")
    assert span.status.status_code is StatusCode.ERROR and span.attributes["error.type"] == "KeyError"
    assert current_job() is None


def test_a_job_is_entered_once_and_needs_an_id() -> None:
    job = Job("once")
    with job:
        pass
    with pytest.raises(ConfigurationError), job:
        pass
    for bad in ("", "   ", None):
        with pytest.raises(ConfigurationError):
            Job(bad)  # type: ignore[arg-type]


async def test_a_call_that_fails_for_good_counts_in_the_job_with_its_bytes(captured: Captured) -> None:
    from statek.exceptions import ProviderHTTPError

    api = scripted_api()
    with Job("parent") as parent, Job("child") as child:
        ok = await call(api, "in=10 out=1")
        with pytest.raises(ProviderHTTPError) as failure:
            await call(api, "in=10 out=1 fail=400")
    error = failure.value
    assert error.bytes_sent > 0 and error.bytes_received > 0
    for usage in (child.usage, parent.usage):
        assert (usage.calls, usage.failed_calls) == (1, 1)
        assert usage.total_bytes_sent == ok.detail.total_bytes_sent + error.bytes_sent
        assert usage.total_bytes_received == ok.detail.total_bytes_received + error.bytes_received
        assert usage.total_input_tokens == 10  # a failed call has no tokens and no cost
        (model,) = usage.by_model().values()
        assert (model.calls, model.failed_calls) == (1, 1)
