"""The HTTP exchange: retries, Retry-After, deadlines, wire bytes, error translation."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statek._http import ClientPool, RetryEvent, RetryPolicy, parse_retry_after, post, wire_tally
from statek.exceptions import (
    AuthenticationError,
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderServerError,
    RateLimitError,
)

FAST = RetryPolicy(max_attempts=4, initial_backoff=0.0, max_backoff=0.05, jitter=False)


def scripted(*answers: httpx.Response | Exception) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    """A client whose transport gives ``answers`` in order and records the requests it got."""
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.AsyncClient(transport=httpx.MockTransport(handler)), seen


async def test_retries_429_then_succeeds_and_counts_every_attempt_bytes() -> None:
    client, seen = scripted(
        httpx.Response(429, headers={"retry-after": "0.01"}, text="slow down"),
        httpx.Response(503, text="busy"),
        httpx.Response(200, json={"ok": True}),
    )
    events: list[RetryEvent] = []
    raw = await post(
        client,
        "http://127.0.0.1/x",
        body=b"12345",
        headers={},
        provider="P",
        retry=FAST,
        on_retry=events.append,
    )
    assert raw.attempts == 3 and len(seen) == 3
    assert raw.bytes_sent == 15
    assert raw.bytes_received == len(b"slow down") + len(b"busy") + len(b'{"ok":true}')
    assert [(e.attempt, e.status_code, e.error_type) for e in events] == [(1, 429, "429"), (2, 503, "503")]
    assert events[0].delay == pytest.approx(0.01)


async def test_non_retryable_status_fails_at_once_with_typed_error() -> None:
    client, seen = scripted(
        httpx.Response(401, json={"error": "bad key"}, headers={"x-api-key": "sk-secret"})
    )
    with pytest.raises(AuthenticationError) as info:
        await post(client, "http://127.0.0.1/x", body=b"{}", headers={}, provider="P", retry=FAST)
    assert len(seen) == 1
    err = info.value
    assert err.status_code == 401 and "bad key" in err.body and err.attempts == 1
    assert err.headers["x-api-key"] == "<redacted>"
    assert "sk-secret" not in repr(err.__dict__)


async def test_exhausted_retries_raise_the_last_http_error() -> None:
    client, seen = scripted(*[httpx.Response(500, text="boom")] * 4)
    with pytest.raises(ProviderServerError) as info:
        await post(client, "http://127.0.0.1/x", body=b"ab", headers={}, provider="P", retry=FAST)
    assert len(seen) == 4
    assert info.value.attempts == 4 and info.value.bytes_sent == 8 and info.value.status_code == 500


async def test_rate_limit_error_carries_retry_after() -> None:
    policy = RetryPolicy(max_attempts=1)
    client, _ = scripted(httpx.Response(429, headers={"retry-after": "7"}))
    with pytest.raises(RateLimitError) as info:
        await post(client, "http://127.0.0.1/x", body=b"", headers={}, provider="P", retry=policy)
    assert info.value.retry_after == 7.0


async def test_transport_errors_are_retried_then_translated() -> None:
    boom = httpx.ConnectError("refused")
    client, seen = scripted(boom, boom, boom, boom)
    with pytest.raises(ProviderConnectionError) as info:
        await post(client, "http://127.0.0.1/x", body=b"abc", headers={}, provider="P", retry=FAST)
    assert len(seen) == 4 and info.value.attempts == 4
    assert isinstance(info.value.__cause__, httpx.ConnectError)


async def test_total_timeout_stops_retrying_before_a_long_retry_after() -> None:
    policy = RetryPolicy(max_attempts=10, max_backoff=60, total_timeout=1.0)
    client, seen = scripted(httpx.Response(503, headers={"retry-after": "30"}), httpx.Response(200))
    with pytest.raises(ProviderHTTPError):
        await post(client, "http://127.0.0.1/x", body=b"", headers={}, provider="P", retry=policy)
    assert len(seen) == 1


def test_backoff_is_exponential_capped_and_jittered_below_the_ceiling() -> None:
    policy = RetryPolicy(initial_backoff=0.5, max_backoff=3.0, jitter=False)
    assert [policy.delay(n, None) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    jittered = RetryPolicy(initial_backoff=0.5, max_backoff=3.0)
    assert all(0 <= jittered.delay(3, None) <= 2.0 for _ in range(200))
    assert policy.delay(1, 99.0) == 3.0


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0


async def test_client_pool_spreads_requests_over_its_shards_and_closes_them() -> None:
    pool = ClientPool(shards=3, connections_per_shard=2)
    clients = [pool.get() for _ in range(6)]
    assert len({id(c) for c in clients}) == 3
    assert clients[:3] == clients[3:]
    await pool.aclose()
    assert all(c.is_closed for c in clients)
    assert pool.get() not in clients
    await pool.aclose()


def test_client_pool_keeps_separate_clients_per_event_loop() -> None:
    import asyncio

    pool = ClientPool(shards=1)

    async def client_of_this_loop() -> httpx.AsyncClient:
        return pool.get()

    first = asyncio.run(client_of_this_loop())
    second = asyncio.run(client_of_this_loop())
    assert first is not second


async def test_a_given_client_is_always_used_and_never_closed() -> None:
    given = httpx.AsyncClient()
    pool = ClientPool(given)
    assert pool.get() is given and pool.get() is given
    await pool.aclose()
    assert not given.is_closed
    await given.aclose()


def _pending_cancellations(task: asyncio.Task[Any]) -> int:
    """``task.cancelling()`` (Python 3.11+; 3.10 does not count them: 0)."""
    counted = getattr(task, "cancelling", None)
    return counted() if counted is not None else 0


def _slow(seconds: float) -> httpx.AsyncClient:
    """A client whose server answers 200 after ``seconds``."""

    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(seconds)
        return httpx.Response(200, content=b"{}")

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def _policy(total_timeout: float) -> RetryPolicy:
    return RetryPolicy(max_attempts=1, total_timeout=total_timeout)


async def _post_slow(delay: float, total_timeout: float) -> object:
    """Post two bytes to a server answering after ``delay``, with one attempt and ``total_timeout``."""
    return await post(
        _slow(delay), "http://127.0.0.1/x", body=b"ab", headers={}, provider="P", retry=_policy(total_timeout)
    )


async def test_a_deadline_passed_by_an_ended_call_does_not_cut_a_later_one() -> None:
    """One timer serves every exchange on a loop: the timer left for a call that already ended fires
    during a later call with a later deadline, and that call completes."""
    quick = await post(_slow(0), "http://127.0.0.1/x", body=b"", headers={}, provider="P", retry=_policy(0.2))
    assert quick.status_code == 200
    slow = await post(_slow(0.4), "http://127.0.0.1/x", body=b"", headers={}, provider="P", retry=_policy(5))
    assert slow.status_code == 200


async def test_concurrent_calls_each_get_their_own_deadline() -> None:
    async def call(delay: float, timeout: float) -> object:
        try:
            return await _post_slow(delay, timeout)
        except ProviderConnectionError as exc:
            return exc

    results = await asyncio.gather(call(0.5, 0.1), call(0.05, 2), call(0.5, 0.2), call(0.3, 2))
    assert [type(r).__name__ for r in results] == [
        "ProviderConnectionError",
        "RawResponse",
        "ProviderConnectionError",
        "RawResponse",
    ]
    timed_out = results[0]
    assert isinstance(timed_out, ProviderConnectionError)
    assert "total_timeout=0.1" in str(timed_out) and timed_out.bytes_sent == 2
    assert isinstance(timed_out.__cause__, asyncio.TimeoutError)


async def test_a_timed_out_call_leaves_its_task_uncancelled() -> None:
    with pytest.raises(ProviderConnectionError):
        await post(_slow(1), "http://127.0.0.1/x", body=b"", headers={}, provider="P", retry=_policy(0.05))
    task = asyncio.current_task()
    assert task is not None and _pending_cancellations(task) == 0
    await asyncio.sleep(0.01)  # the task goes on: nothing is pending against it


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    call = asyncio.ensure_future(
        post(_slow(1), "http://127.0.0.1/x", body=b"abc", headers={}, provider="P", retry=_policy(5))
    )
    await asyncio.sleep(0.05)
    call.cancel()
    with pytest.raises(asyncio.CancelledError) as info:
        await call
    assert wire_tally(info.value).bytes_sent == 3


@settings(max_examples=25, deadline=None)
@given(
    calls=st.lists(
        st.tuples(st.sampled_from([0.0, 0.25]), st.sampled_from([0.08, 2.0]), st.sampled_from([0.0, 0.03])),
        min_size=1,
        max_size=6,
    ),
    cancel=st.integers(min_value=-1, max_value=5),
)
def test_interleaved_calls_time_out_exactly_when_their_own_deadline_passes(
    calls: list[tuple[float, float, float]], cancel: int
) -> None:
    """Calls sharing one loop (so one deadline timer), started at staggered moments: each times out
    exactly when its answer comes after its own total_timeout; one cancelled from outside while it
    waits stays a cancellation; no task is left with a cancellation pending against it."""

    async def one(delay: float, timeout: float, start: float) -> object:
        await asyncio.sleep(start)
        try:
            return await _post_slow(delay, timeout)
        except ProviderConnectionError as exc:
            assert isinstance(exc.__cause__, asyncio.TimeoutError)
            return "timeout"
        finally:
            task = asyncio.current_task()
            assert task is not None and _pending_cancellations(task) <= (
                1 if cancelled_from_outside(task) else 0
            )

    cancelled_tasks: set[asyncio.Task[object]] = set()

    def cancelled_from_outside(task: asyncio.Task[Any]) -> bool:
        return task in cancelled_tasks

    async def run() -> list[object]:
        tasks = [asyncio.ensure_future(one(*call)) for call in calls]
        if 0 <= cancel < len(tasks) and calls[cancel][0] > 0:  # still waiting for its answer at 10 ms
            await asyncio.sleep(0.01)
            cancelled_tasks.add(tasks[cancel])
            tasks[cancel].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(run())
    for index, ((delay, timeout, _), result) in enumerate(zip(calls, results)):
        if index == cancel and delay > 0:
            assert isinstance(result, asyncio.CancelledError)
        elif delay > timeout:
            assert result == "timeout"
        else:
            assert type(result).__name__ == "RawResponse"
