"""1,000 concurrent calls from many tasks, with injected retries and failures: nothing lost or double counted."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal

from test_telemetry_support import (  # noqa: F401 - fixtures
    Captured,
    attrs,
    call,
    captured_fixture,
    expected_cost,
    parse_script,
    prices_fixture,
    scripted_api,
)

from statek.exceptions import ProviderError
from statek.executors.job import Job

TASKS, CALLS_PER_TASK = 50, 20


def script(n: int) -> tuple[str, str]:
    """(model, script) of call number ``n``: a deterministic mix of outcomes."""
    model = "priced" if n % 3 else "reported"
    # the provider's own cost wins over a table price, so only the unpriced model reports one
    cost = " cost=0.001" if model == "reported" else ""
    tokens = f"in={100 + n} out={1 + n % 17} cached={n % 50}{cost}"
    if n % 10 == 0:
        return model, "fail=400"  # a final error
    if n % 5 == 1:
        return model, f"{tokens} fail=429,503"  # two retries, then success
    if n % 7 == 2:
        return model, f"{tokens} fail=drop"  # one transport retry, then success
    return model, tokens


async def test_a_thousand_concurrent_calls_add_up_exactly(captured: Captured) -> None:
    api = scripted_api()
    outcomes: list[tuple[str, str, object]] = []

    async def worker(task: int) -> Job:
        async with Job(f"task-{task}") as job:
            for i in range(CALLS_PER_TASK):
                n = task * CALLS_PER_TASK + i
                model, text = script(n)
                try:
                    outcomes.append((model, text, await call(api, text, model=model, nonce=n)))
                except ProviderError as error:
                    outcomes.append((model, text, error))
                await asyncio.sleep(0)
        return job

    async with Job("all") as total:
        children = await asyncio.gather(*(worker(t) for t in range(TASKS)))

    ok = [(m, parse_script(t), r) for m, t, r in outcomes if not isinstance(r, ProviderError)]
    failed = [r for _, _, r in outcomes if isinstance(r, ProviderError)]
    assert len(outcomes) == 1000 and len(failed) == 100

    # per-job usage: the parent is the exact sum of its children and of the successful calls
    expected_in = sum(int(s["in"]) for _, s, _ in ok)
    expected_cost_total = sum(
        (
            expected_cost(int(s["in"]), int(s["out"]), int(s["cached"]))
            if m == "priced"
            else Decimal("0.001")
            for m, s, _ in ok
        ),
        Decimal(0),
    )
    assert total.usage.calls == 900 == sum(c.usage.calls for c in children)
    assert total.usage.total_input_tokens == expected_in == sum(c.usage.total_input_tokens for c in children)
    assert total.usage.total_cost == expected_cost_total
    assert sum((c.usage.total_cost for c in children), Decimal(0)) == expected_cost_total

    # counters
    tokens = captured.values("statek.tokens")
    for model in ("priced", "reported"):
        for kind, field in (("input", "in"), ("output", "out"), ("cache_read", "cached")):
            key = attrs(
                gen_ai__provider__name="scripted", gen_ai__request__model=model, statek__token__type=kind
            )
            assert tokens.get(key, 0) == sum(int(s[field]) for m, s, _ in ok if m == model)
    requests = Counter()
    for key, value in captured.values("statek.requests").items():
        requests[dict(key).get("error.type", dict(key)["statek.outcome"])] += value
    assert requests == {"success": 900, "400": 100}
    retries = Counter()
    for key, value in captured.values("statek.retries").items():
        retries[dict(key)["error.type"]] += value
    expected_retries = Counter()
    for _, s, _ in ok:
        for failure in s.get("fail", "").split(","):
            if failure:
                expected_retries["ConnectError" if failure == "drop" else failure] += 1
    assert retries == expected_retries and expected_retries["429"] > 100
    cost = captured.values("statek.cost.usd")
    assert abs(sum(cost.values()) - float(expected_cost_total)) < 1e-9
    wire = sum(r.detail.total_bytes_sent + r.detail.total_bytes_received for _, _, r in ok)  # type: ignore[union-attr]
    wire += sum(e.bytes_sent + e.bytes_received for e in failed)
    assert sum(captured.values("statek.bytes").values()) == wire

    # histograms and spans: one per call
    assert sum(count for count, _ in captured.values("gen_ai.client.operation.duration").values()) == 1000
    assert sum(c for c, _ in captured.values("gen_ai.client.token.usage").values()) == 2 * 900
    spans = Counter(s.name.split()[0] for s in captured.finished())
    assert spans == {"chat": 1000, "job": TASKS + 1}
