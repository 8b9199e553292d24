"""The cardinality guard: bounded label values, known models always labelled, overflow visible and counted."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_telemetry_support import (  # noqa: F401 - fixtures
    Captured,
    call,
    captured_fixture,
    prices_fixture,
    scripted_api,
)

from statek import instruments as inst
from statek.cardinality import MAX_LABEL_VALUES_ENV, MAX_MODELS_ENV, OVERFLOW, LabelGuard
from statek.executors.job import Job

KNOWN = frozenset({"gpt-4o", "priced"})


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.sampled_from([*KNOWN, *(f"m{i}" for i in range(12)), OVERFLOW]), max_size=60),
    limit=st.integers(min_value=0, max_value=6),
)
def test_a_guard_admits_known_values_and_the_first_limit_others(values: list[str], limit: int) -> None:
    guard = LabelGuard("gen_ai.request.model", limit, known=KNOWN.__contains__)
    first_unknown: list[str] = []
    refused = 0
    for value in values:
        got = guard.admit(value)
        if value in KNOWN or value == OVERFLOW:
            assert got == value
            continue
        if value not in first_unknown and len(first_unknown) < limit:
            first_unknown.append(value)
        if value in first_unknown:
            assert got == value
        else:
            assert got == OVERFLOW
            refused += 1
    assert len(guard) == len(first_unknown) <= limit
    assert guard.overflowed == refused


def test_a_guard_logs_its_first_overflow_once_with_the_fix(caplog: pytest.LogCaptureFixture) -> None:
    guard = LabelGuard("statek.job.tenant", 1, fix="Allow-list only low-cardinality job attributes.")
    with caplog.at_level(logging.WARNING, logger="statek.telemetry"):
        for value in ("a", "b", "c", "d"):
            guard.admit(value)
    (record,) = [r for r in caplog.records if "statek.job.tenant" in r.getMessage()]
    assert "_other_" in record.getMessage() and "low-cardinality" in record.getMessage()
    assert guard.overflowed == 3


def _counter(captured: Captured, spec: inst.InstrumentSpec) -> dict[frozenset[tuple[str, Any]], Any]:
    return {key: point.value for key, point in captured.points(spec.name).items()}


def _models(captured: Captured, spec: inst.InstrumentSpec) -> set[str]:
    return {dict(key)[inst.GEN_AI_REQUEST_MODEL] for key in captured.points(spec.name)}


def test_a_flood_of_model_names_shares_one_series_and_a_priced_model_keeps_its_own(
    monkeypatch: pytest.MonkeyPatch, prices: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """20 unpriced names against a limit of 5: 5 labelled, 15 as _other_ (counted), then the
    priced model still gets a series of its own; spans keep every real name."""
    monkeypatch.setenv(MAX_MODELS_ENV, "5")
    captured = Captured()
    try:
        api = scripted_api()

        async def run() -> None:
            for i in range(20):
                await call(api, "in=3 out=1", model=f"request-{i}")
            await call(api, "in=3 out=1", model="priced")

        with caplog.at_level(logging.WARNING, logger="statek.telemetry"):
            asyncio.run(run())
        expected = {f"request-{i}" for i in range(5)} | {OVERFLOW, "priced"}
        for spec in (inst.REQUESTS, inst.TOKENS, inst.TOKEN_USAGE, inst.OPERATION_DURATION):
            assert _models(captured, spec) == expected, spec.name
        assert _models(captured, inst.COST) == {"priced"}  # the unpriced have no cost series at all
        by_model: dict[str, int] = {}
        for key, value in _counter(captured, inst.REQUESTS).items():
            model = dict(key)[inst.GEN_AI_REQUEST_MODEL]
            by_model[model] = by_model.get(model, 0) + value
        assert by_model[OVERFLOW] == 15 and by_model["priced"] == 1
        response_models = {
            dict(key).get(inst.GEN_AI_RESPONSE_MODEL) for key in captured.points(inst.OPERATION_DURATION.name)
        }
        # response models: a guard of their own, same limit ("priced-2024" is not in the price table)
        assert response_models == {f"request-{i}-2024" for i in range(5)} | {OVERFLOW}
        overflow = _counter(captured, inst.LABEL_OVERFLOW)
        assert overflow[frozenset({(inst.STATEK_LABEL, inst.GEN_AI_REQUEST_MODEL)})] >= 15
        assert sorted(s.attributes[inst.GEN_AI_REQUEST_MODEL] for s in captured.finished()) == sorted(
            [f"request-{i}" for i in range(20)] + ["priced"]
        )
        warnings = [r for r in caplog.records if "distinct values of metric label" in r.getMessage()]
        assert len(warnings) == 2  # once per label: the request model's guard, the response model's
        assert all(MAX_MODELS_ENV in w.getMessage() for w in warnings)
    finally:
        captured_close()


def captured_close() -> None:
    from statek.telemetry import configure_telemetry

    configure_telemetry()


def test_allow_listed_job_attributes_are_guarded_too(monkeypatch: pytest.MonkeyPatch, prices: Any) -> None:
    monkeypatch.setenv(MAX_LABEL_VALUES_ENV, "2")
    captured = Captured(job_label_keys=("tenant",))
    try:
        api = scripted_api()

        async def run() -> None:
            for tenant in ("acme", "globex", "initech", "umbrella", "acme"):
                async with Job(f"job-{tenant}", attributes={"tenant": tenant}):
                    await call(api, "in=3 out=1")

        asyncio.run(run())
        tenants: dict[str, int] = {}
        for key, value in _counter(captured, inst.REQUESTS).items():
            tenant = dict(key)["statek.job.tenant"]
            tenants[tenant] = tenants.get(tenant, 0) + value
        assert tenants == {"acme": 2, "globex": 1, OVERFLOW: 2}
        overflow = _counter(captured, inst.LABEL_OVERFLOW)
        assert overflow[frozenset({(inst.STATEK_LABEL, "statek.job.tenant")})] == 2
    finally:
        captured_close()
