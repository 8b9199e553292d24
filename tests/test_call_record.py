"""One record per call, many consumers: what a consumer sees, and that a broken one harms nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from test_telemetry_support import (  # noqa: F401 - fixtures
    Captured,
    ScriptedServer,
    call,
    captured_fixture,
    expected_cost,
    prices_fixture,
    scripted_api,
)

from statek import Budget, BudgetExceededError, Job
from statek.call_record import (
    CallRecord,
    JobRecord,
    add_call_consumer,
    add_job_consumer,
    call_consumers,
    remove_call_consumer,
    remove_job_consumer,
)
from statek.exceptions import ProviderHTTPError
from statek.telemetry import current_retry_hook


class Recorder:
    """A consumer that keeps what it was handed."""

    name = "recorder"

    def __init__(self) -> None:
        self.started: list[CallRecord] = []
        self.finished: list[CallRecord] = []
        self.jobs: list[JobRecord] = []
        self.outcome_at_start: list[str] = []

    def start(self, record: CallRecord) -> None:
        self.started.append(record)
        self.outcome_at_start.append(record.outcome)

    def finish(self, record: CallRecord) -> None:
        self.finished.append(record)

    def job_started(self, job: Any) -> None:
        pass

    def job_finished(self, record: JobRecord) -> None:
        self.jobs.append(record)


class Broken:
    """A consumer that fails at every step."""

    name = "broken"

    def start(self, record: CallRecord) -> None:
        raise RuntimeError("broken start")

    def finish(self, record: CallRecord) -> None:
        raise RuntimeError("broken finish")


@pytest.fixture(name="recorder")
def recorder_fixture() -> Iterator[Recorder]:
    recorder = Recorder()
    add_call_consumer(recorder)
    add_job_consumer(recorder)
    yield recorder
    remove_call_consumer(recorder)
    remove_job_consumer(recorder)


async def test_an_answered_call_is_one_record_seen_by_every_consumer(
    captured: Captured, recorder: Recorder
) -> None:
    with Job("j1", attributes={"tenant": "acme"}) as job:
        response = await call(scripted_api(), "in=100 out=20 cached=10")
    (record,) = recorder.finished
    assert recorder.started == [record] and recorder.outcome_at_start == ["pending"]
    assert record.outcome == "ok" and record.job is job and record.request_model == "priced"
    assert record.detail == response.detail
    assert record.detail.priced_cost == expected_cost(100, 20, 10) == job.usage.total_cost
    assert record.bytes_sent == response.stats.total_bytes_sent > 0
    (span,) = captured.finished("chat priced")
    assert (record.trace_id, record.span_id) == (span.context.trace_id, span.context.span_id)
    assert record.duration > 0 and len(record.record_id) == 32
    (job_record,) = recorder.jobs
    assert job_record.job is job and job_record.error_type is None
    assert job_record.started_wall <= record.started_wall <= job_record.ended_wall


async def test_record_ids_are_unique(captured: Captured, recorder: Recorder) -> None:
    api = scripted_api()
    await asyncio.gather(*(call(api, "in=1 out=1") for _ in range(50)))
    assert len({record.record_id for record in recorder.finished}) == 50


async def test_a_failed_call_is_finished_as_an_error_with_its_bytes(
    captured: Captured, recorder: Recorder
) -> None:
    with pytest.raises(ProviderHTTPError) as failed:
        await call(scripted_api(), "fail=400")
    (record,) = recorder.finished
    assert record.outcome == "error" and record.error_type == "400"
    assert record.exception is failed.value and record.detail is None
    assert record.bytes_sent > 0 and record.bytes_received > 0


async def test_a_refused_call_is_finished_as_refused_and_never_started_after_the_budget(
    captured: Captured, recorder: Recorder
) -> None:
    with Job("capped", budget=Budget(calls=1)):
        await call(scripted_api(), "in=1 out=1")
        with pytest.raises(BudgetExceededError):
            await call(scripted_api(), "in=1 out=1")
    refused = recorder.finished[-1]
    assert refused.outcome == "refused" and refused.error_type == "budget_exceeded"
    assert refused not in recorder.started  # the budget refused before this consumer started
    assert refused.span is None and len(captured.finished("chat priced")) == 1


async def test_a_broken_consumer_is_logged_once_counted_and_harms_nothing(
    captured: Captured, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    broken = Broken()
    add_call_consumer(broken, first=True)
    try:
        caplog.set_level(logging.ERROR, "statek.telemetry")
        with Job("j") as job:
            first = await call(scripted_api(), "in=10 out=1")
            await call(scripted_api(), "in=10 out=1")
    finally:
        remove_call_consumer(broken)
    assert first.detail.priced_cost == expected_cost(10, 1)
    assert job.usage.calls == 2 and len(recorder.finished) == 2 and len(captured.finished("chat priced")) == 2
    assert caplog.text.count("the broken consumer failed to start") == 1
    assert caplog.text.count("the broken consumer failed to finish") == 1
    errors = captured.values("statek.consumer.errors")
    assert errors == {frozenset({("statek.consumer", "broken")}): 4}
    assert broken not in call_consumers()


async def test_the_context_is_restored_on_every_path(captured: Captured, recorder: Recorder) -> None:
    outer = trace.get_current_span()
    api = scripted_api()
    await call(api, "in=1 out=1")
    with pytest.raises(ProviderHTTPError):
        await call(api, "fail=400")
    task = asyncio.ensure_future(call(scripted_api(ScriptedServer()), "in=1 out=1"))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert trace.get_current_span() is outer and current_retry_hook() is None


async def test_a_call_read_off_the_wire_is_the_same_record(captured: Captured, recorder: Recorder) -> None:
    import statek

    def answer(request: httpx.Request) -> httpx.Response:
        usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        body = {
            "id": "x",
            "model": "gpt-4o-mini",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
            ],
            "usage": usage,
        }
        return httpx.Response(200, json=body)

    client = statek.async_http_client(
        transport=httpx.MockTransport(answer), provider="OPENAI", backend="httpx"
    )
    with Job("sdk") as job:
        await client.post(
            "https://api.openai.com/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        )
    (record,) = recorder.finished
    assert record.outcome == "ok" and record.api is None and record.body is not None
    assert (record.detail.input_tokens, record.detail.output_tokens) == (7, 3)
    assert record.job is job and job.usage.calls == 1


def test_job_record_ids_are_unique_and_stable() -> None:
    from statek.call_record import JobRecord

    records = [JobRecord(object(), 0.0, 1.0, None) for _ in range(20)]
    ids = [record.record_id for record in records]
    assert len(set(ids)) == 20 and all(len(each) == 32 for each in ids)
    assert [record.record_id for record in records] == ids  # made once, then the same
