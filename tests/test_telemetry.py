"""The telemetry wrapper: spans, metrics and cost of every call, read back from in-memory OTel exporters."""

from __future__ import annotations

import bisect
import logging
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import metrics, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, StatusCode
from test_telemetry_support import (  # noqa: F401 - fixtures
    Captured,
    ScriptedAPI,
    attrs,
    call,
    captured_fixture,
    expected_cost,
    prices_fixture,
    scripted_api,
)

from statek import ChatHistoryItem
from statek import instruments as inst
from statek.exceptions import ConfigurationError, ProviderConnectionError, ProviderHTTPError
from statek.executors.job import Job
from statek.llm_api import LLM_Response, PreparedRequest
from statek.telemetry import configure_telemetry, current_retry_hook

MODEL = {"gen_ai.provider.name": "scripted", "gen_ai.request.model": "priced"}
SERVER = {"server.address": "127.0.0.1", "server.port": 9}
"""Where :func:`scripted_api` sends: on spans and on the GenAI histograms."""


def model(**extra: str) -> frozenset[tuple[str, str]]:
    return frozenset({**MODEL, **{k.replace("__", "."): v for k, v in extra.items()}}.items())


# ----------------------------------------------------------------------------- catalogue
def test_catalogue_pins_the_prometheus_series_and_semconv_buckets() -> None:
    assert inst.PROMETHEUS_SERIES == {
        "gen_ai_client_token_usage_bucket",
        "gen_ai_client_token_usage_sum",
        "gen_ai_client_token_usage_count",
        "gen_ai_client_operation_duration_seconds_bucket",
        "gen_ai_client_operation_duration_seconds_sum",
        "gen_ai_client_operation_duration_seconds_count",
        "gen_ai_client_operation_time_to_first_chunk_seconds_bucket",
        "gen_ai_client_operation_time_to_first_chunk_seconds_sum",
        "gen_ai_client_operation_time_to_first_chunk_seconds_count",
        "statek_tokens_total",
        "statek_cost_usd_total",
        "statek_cost_drift_requests_total",
        "statek_requests_total",
        "statek_bytes_total",
        "statek_retries_total",
        "statek_budget_refusals_total",
        "statek_unmetered_requests_total",
        "statek_consumer_errors_total",
        "statek_budget_store_errors_total",
        "statek_budget_lease_expiries_total",
        "statek_metric_label_overflow_total",
    }
    assert inst.TOKEN_BUCKETS == tuple(4**i for i in range(14))
    assert inst.DURATION_BUCKETS == tuple(round(0.01 * 2**i, 2) for i in range(14))
    assert [(s.name, s.kind, s.unit) for s in inst.CATALOGUE] == [
        ("gen_ai.client.token.usage", "histogram", "{token}"),
        ("gen_ai.client.operation.duration", "histogram", "s"),
        ("gen_ai.client.operation.time_to_first_chunk", "histogram", "s"),
        ("statek.tokens", "counter", "{token}"),
        ("statek.cost.usd", "counter", "{USD}"),
        ("statek.cost.drift_requests", "counter", "{request}"),
        ("statek.requests", "counter", "{request}"),
        ("statek.bytes", "counter", "By"),
        ("statek.retries", "counter", "{retry}"),
        ("statek.budget.refusals", "counter", "{call}"),
        ("statek.consumer.errors", "counter", "{error}"),
        ("statek.budget.store.errors", "counter", "{error}"),
        ("statek.budget.lease_expiries", "counter", "{reservation}"),
        ("statek.unmetered_requests", "counter", "{request}"),
        ("statek.metric_label.overflow", "counter", "{use}"),
    ]
    assert all("job" not in key for spec in inst.CATALOGUE for key in spec.attributes)


# ----------------------------------------------------------------------------- spans
async def test_a_call_is_one_client_span_with_genai_and_statek_attributes(captured: Captured) -> None:
    api = scripted_api()
    response = await api.process_request(
        model="priced",
        chat_history=[ChatHistoryItem.user("in=1000 out=50 cached=200 write=100 reason=20")],
        temperature=0.25,
        metadata={"MAX_TOKENS": 64},
    )

    (span,) = captured.finished()
    assert span.name == "chat priced"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert response.detail.priced_cost == expected_cost(1000, 50, 200) == Decimal("0.0023")
    assert dict(span.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "scripted",
        "gen_ai.request.model": "priced",
        "gen_ai.request.temperature": 0.25,
        "gen_ai.request.max_tokens": 64,
        "server.address": "127.0.0.1",
        "server.port": 9,
        "gen_ai.output.type": "text",
        "gen_ai.response.model": "priced-2024",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 50,
        "gen_ai.usage.cache_read.input_tokens": 200,
        "gen_ai.usage.cache_creation.input_tokens": 100,
        "gen_ai.usage.reasoning.output_tokens": 20,
        "statek.cost.usd": pytest.approx(0.0023),
        "statek.cost.status": "calculated",
        "statek.cost.price_model": "scripted/priced",  # the price row: provider/model
        "statek.bytes.sent": response.detail.total_bytes_sent,
        "statek.bytes.received": response.detail.total_bytes_received,
    }
    assert response.detail.total_bytes_sent > 0 and response.detail.total_bytes_received > 0


async def test_each_retry_is_a_span_event_and_counted_by_error_type(captured: Captured) -> None:
    await call(scripted_api(), "in=10 out=2 fail=429,503,drop")

    (span,) = captured.finished()
    assert span.attributes["statek.retry.count"] == 3
    assert [(e.name, dict(e.attributes)) for e in span.events] == [
        (
            "statek.retry",
            {
                "statek.retry.attempt": 1,
                "error.type": "429",
                "statek.retry.delay_s": 0.0,
                "http.response.status_code": 429,
            },
        ),
        (
            "statek.retry",
            {
                "statek.retry.attempt": 2,
                "error.type": "503",
                "statek.retry.delay_s": 0.0,
                "http.response.status_code": 503,
            },
        ),
        (
            "statek.retry",
            {"statek.retry.attempt": 3, "error.type": "ConnectError", "statek.retry.delay_s": 0.0},
        ),
    ]
    assert captured.values("statek.retries") == {
        model(error__type="429"): 1,
        model(error__type="503"): 1,
        model(error__type="ConnectError"): 1,
    }
    assert captured.values("statek.requests") == {
        model(statek__outcome="success", statek__cost__status="calculated"): 1
    }


async def test_the_retry_hook_exists_only_inside_an_observed_call(captured: Captured) -> None:
    seen: list[Any] = []

    class Peek(ScriptedAPI):
        async def _send(self, params: PreparedRequest, payload: dict[str, Any]) -> LLM_Response:
            seen.append(current_retry_hook())
            return await super()._send(params, payload)

    api = scripted_api(cls=Peek)
    assert current_retry_hook() is None
    await call(api, "in=1 out=1")
    assert callable(seen[0])
    assert current_retry_hook() is None


async def test_no_prompt_or_completion_on_spans_unless_switched_on(captured: Captured) -> None:
    await call(scripted_api(), "secret prompt in=1 out=1")
    assert not [k for k in captured.finished()[0].attributes if "messages" in k or "instructions" in k]

    configure_telemetry(
        tracer_provider=captured.tracer_provider, meter_provider=captured.meter_provider, capture_content=True
    )
    api = scripted_api()
    await api.process_request(
        model="priced",
        system_prompt="Be brief.",
        chat_history=[ChatHistoryItem.user("secret prompt in=1 out=1")],
    )
    span = captured.finished()[-1]
    assert span.attributes["gen_ai.input.messages"] == (
        '[{"role": "user", "parts": [{"type": "text", "content": "secret prompt in=1 out=1"}]}]'
    )
    assert span.attributes["gen_ai.system_instructions"] == '[{"type": "text", "content": "Be brief."}]'
    assert span.attributes["gen_ai.output.messages"] == (
        '[{"role": "assistant", "parts": [{"type": "text", "content": "ok"}], "finish_reason": "stop"}]'
    )


# ----------------------------------------------------------------------------- metrics
async def test_metrics_are_exact_per_attribute_set(captured: Captured) -> None:
    api = scripted_api()
    first = await call(api, "in=1000 out=50 cached=200 write=100 reason=20")
    second = await call(api, "in=10 out=5")
    reported = await call(api, "in=7 out=3 cost=0.125", model="reported")
    unpriced = await call(api, "in=4 out=1", model="unpriced")
    responses = [first, second, reported, unpriced]

    assert captured.values("statek.tokens") == {
        model(statek__token__type="input"): 1010,
        model(statek__token__type="output"): 55,
        model(statek__token__type="cache_read"): 200,
        model(statek__token__type="cache_write"): 100,
        model(statek__token__type="reasoning"): 20,
        attrs(
            gen_ai__provider__name="scripted", gen_ai__request__model="reported", statek__token__type="input"
        ): 7,
        attrs(
            gen_ai__provider__name="scripted", gen_ai__request__model="reported", statek__token__type="output"
        ): 3,
        attrs(
            gen_ai__provider__name="scripted", gen_ai__request__model="unpriced", statek__token__type="input"
        ): 4,
        attrs(
            gen_ai__provider__name="scripted", gen_ai__request__model="unpriced", statek__token__type="output"
        ): 1,
    }
    assert captured.values("statek.cost.usd") == {
        model(statek__cost__status="calculated"): pytest.approx(float(expected_cost(1010, 55, 200))),
        attrs(
            gen_ai__provider__name="scripted",
            gen_ai__request__model="reported",
            statek__cost__status="reported",
        ): 0.125,
    }
    assert unpriced.detail.cost_status == "unpriced" and unpriced.detail.priced_cost is None
    assert captured.values("statek.requests") == {
        model(statek__outcome="success", statek__cost__status="calculated"): 2,
        attrs(
            gen_ai__provider__name="scripted",
            gen_ai__request__model="reported",
            statek__outcome="success",
            statek__cost__status="reported",
        ): 1,
        attrs(
            gen_ai__provider__name="scripted",
            gen_ai__request__model="unpriced",
            statek__outcome="success",
            statek__cost__status="unpriced",
        ): 1,
    }
    sent = {
        m: sum(r.detail.total_bytes_sent for r in responses if r.detail.response_model == f"{m}-2024")
        for m in ("priced", "reported", "unpriced")
    }
    assert captured.values("statek.bytes")[model(network__io__direction="transmit")] == sent["priced"]
    assert sum(captured.values("statek.bytes").values()) == sum(
        r.detail.total_bytes_sent + r.detail.total_bytes_received for r in responses
    )

    usage = captured.points("gen_ai.client.token.usage")
    point = usage[
        frozenset(
            {
                **MODEL,
                **SERVER,
                "gen_ai.operation.name": "chat",
                "gen_ai.response.model": "priced-2024",
                "gen_ai.token.type": "input",
            }.items()
        )
    ]
    assert (point.count, point.sum, point.min, point.max) == (2, 1010, 10, 1000)
    assert tuple(point.explicit_bounds) == inst.TOKEN_BUCKETS
    assert list(point.bucket_counts)[:7] == [0, 0, 1, 0, 0, 1, 0]  # 10 in (4, 16], 1000 in (256, 1024]
    duration = captured.points("gen_ai.client.operation.duration")
    assert sum(p.count for p in duration.values()) == 4
    assert all(tuple(p.explicit_bounds) == inst.DURATION_BUCKETS for p in duration.values())


async def test_token_and_cost_counters_carry_the_trace_id_as_exemplar(captured: Captured) -> None:
    await call(scripted_api(), "in=10 out=2")
    (span,) = captured.finished()
    for name, key in (
        ("statek.tokens", model(statek__token__type="input")),
        ("statek.cost.usd", model(statek__cost__status="calculated")),
    ):
        (exemplar,) = captured.points(name)[key].exemplars
        assert exemplar.trace_id == span.context.trace_id
        assert exemplar.span_id == span.context.span_id
    requests = captured.points("statek.requests")[
        model(statek__outcome="success", statek__cost__status="calculated")
    ]
    assert not requests.exemplars


async def test_a_call_whose_span_is_not_sampled_leaves_no_exemplar(prices: Any) -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    captured = Captured()
    try:
        configure_telemetry(
            tracer_provider=TracerProvider(sampler=ALWAYS_OFF), meter_provider=captured.meter_provider
        )
        await call(scripted_api(), "in=10 out=2")
        point = captured.points("statek.tokens")[model(statek__token__type="input")]
        assert point.value == 10 and not point.exemplars
    finally:
        configure_telemetry()


async def test_job_ids_never_become_metric_attributes_only_allow_listed_job_labels(
    captured: Captured,
) -> None:
    api = scripted_api()
    async with Job("job-123", attributes={"tenant": "acme", "user": "u-9"}):
        await call(api, "in=3 out=1")
    keys = {
        k
        for name in (
            "statek.tokens",
            "statek.requests",
            "statek.bytes",
            "gen_ai.client.token.usage",
            "gen_ai.client.operation.duration",
        )
        for point in captured.points(name)
        for k, _ in point
    }
    assert not [k for k in keys if "job" in k]
    assert not [
        v
        for name in ("statek.tokens",)
        for point in captured.points(name)
        for _, v in point
        if v == "job-123"
    ]

    configure_telemetry(
        tracer_provider=captured.tracer_provider,
        meter_provider=captured.meter_provider,
        job_label_keys=("tenant",),
    )
    async with Job("job-124", attributes={"tenant": "acme", "user": "u-9"}):
        await call(api, "in=3 out=1")
    labelled = captured.values("statek.tokens")
    assert labelled[model(statek__token__type="input", statek__job__tenant="acme")] == 3
    assert not [k for point in labelled for k, _ in point if k in ("statek.job.id", "statek.job.user")]

    with pytest.raises(ConfigurationError):
        configure_telemetry(job_label_keys=("id",))


# ----------------------------------------------------------------------------- failures
async def test_a_failed_call_records_its_error_and_bytes_and_raises_the_same_error(
    captured: Captured,
) -> None:
    with pytest.raises(ProviderHTTPError) as raised:
        await call(scripted_api(), "fail=400")

    error = raised.value
    assert error.status_code == 400 and error.bytes_sent > 0 and error.bytes_received > 0
    (span,) = captured.finished()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "400"
    assert span.attributes["statek.bytes.sent"] == error.bytes_sent
    assert "gen_ai.usage.input_tokens" not in span.attributes
    assert captured.values("statek.requests") == {
        model(statek__outcome="error", error__type="400", statek__cost__status="unpriced"): 1
    }
    assert captured.values("statek.bytes") == {
        model(network__io__direction="transmit"): error.bytes_sent,
        model(network__io__direction="receive"): error.bytes_received,
    }
    assert captured.values("gen_ai.client.operation.duration").keys() == {
        frozenset({**MODEL, **SERVER, "gen_ai.operation.name": "chat", "error.type": "400"}.items())
    }
    assert captured.values("statek.tokens") == {} and captured.values("gen_ai.client.token.usage") == {}


async def test_connection_failures_use_the_exception_class_as_error_type(captured: Captured) -> None:
    with pytest.raises(ProviderConnectionError):
        await call(scripted_api(), "fail=drop,drop,drop,drop")
    assert captured.finished()[0].attributes["error.type"] == "ProviderConnectionError"
    assert captured.values("statek.retries") == {model(error__type="ConnectError"): 3}


async def test_the_callers_exception_comes_back_as_the_very_same_object(captured: Captured) -> None:
    boom = RuntimeError("adapter bug")

    class Broken(ScriptedAPI):
        async def _send(self, params: PreparedRequest, payload: dict[str, Any]) -> LLM_Response:
            raise boom

    with pytest.raises(RuntimeError) as raised:
        await call(scripted_api(cls=Broken), "x")
    assert raised.value is boom and raised.value.__cause__ is None and raised.value.__context__ is None
    assert captured.finished()[0].attributes["error.type"] == "RuntimeError"


class _Explodes:
    def __getattr__(self, name: str) -> Any:
        def explode(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(f"broken telemetry backend: {name}")

        return explode


class BrokenTracerProvider(trace.TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        return _Explodes()


async def test_broken_telemetry_is_logged_and_never_breaks_or_changes_the_call(
    prices: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class ExplodingHistograms(metrics.NoOpMeter):
        def create_histogram(self, *args: Any, **kwargs: Any) -> Any:
            return _Explodes()

    class Provider(metrics.MeterProvider):
        def get_meter(self, *args: Any, **kwargs: Any) -> Any:
            return ExplodingHistograms("broken")

    configure_telemetry(tracer_provider=BrokenTracerProvider(), meter_provider=Provider())
    try:
        caplog.set_level(logging.ERROR, "statek.telemetry")
        with Job("j") as job:
            response = await call(scripted_api(), "in=100 out=10 fail=429")
        assert response.detail.priced_cost == expected_cost(100, 10)
        assert response.detail.cost_status == "calculated"
        assert job.usage.calls == 1 and job.usage.total_cost == expected_cost(100, 10)
        assert "broken telemetry backend" in caplog.text

        with pytest.raises(ProviderHTTPError):
            await call(scripted_api(), "fail=401")
    finally:
        configure_telemetry()


async def test_a_global_meter_that_cannot_create_instruments_leaves_calls_unobserved_but_priced(
    prices: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class NoInstruments(metrics.MeterProvider):
        def get_meter(self, *args: Any, **kwargs: Any) -> Any:
            return _Explodes()

    with pytest.raises(RuntimeError):  # asking for it explicitly fails loudly, at configuration time
        configure_telemetry(meter_provider=NoInstruments())
    monkeypatch.setattr("statek.telemetry.config._config", None)  # as in a fresh process
    monkeypatch.setattr(metrics, "get_meter_provider", NoInstruments)
    response = await call(scripted_api(), "in=10 out=1")
    assert response.detail.priced_cost == expected_cost(10, 1)
    assert "calls go on unobserved" in caplog.text


async def test_reconfiguring_keeps_each_providers_own_counters(prices: Any) -> None:
    first, second = Captured(), Captured()
    api = scripted_api()
    configure_telemetry(tracer_provider=first.tracer_provider, meter_provider=first.meter_provider)
    await call(api, "in=5 out=1")
    configure_telemetry(tracer_provider=second.tracer_provider, meter_provider=second.meter_provider)
    await call(api, "in=7 out=1")
    configure_telemetry(tracer_provider=first.tracer_provider, meter_provider=first.meter_provider)
    await call(api, "in=11 out=1")
    configure_telemetry()

    assert first.values("statek.tokens")[model(statek__token__type="input")] == 16
    assert second.values("statek.tokens")[model(statek__token__type="input")] == 7
    assert (len(first.finished()), len(second.finished())) == (2, 1)


async def test_without_any_sdk_the_global_noop_providers_cost_nothing_and_break_nothing(prices: Any) -> None:
    configure_telemetry(
        tracer_provider=trace.NoOpTracerProvider(), meter_provider=metrics.NoOpMeterProvider()
    )
    try:
        with Job("plain") as job:
            response = await call(scripted_api(), "in=10 out=1 fail=503")
    finally:
        configure_telemetry()
    assert response.detail.priced_cost == expected_cost(10, 1)
    assert job.usage.total_input_tokens == 10


def test_spans_made_by_other_code_nest_the_call_span(captured: Captured) -> None:
    import asyncio

    tracer = TracerProvider().get_tracer("app")
    with tracer.start_as_current_span("handle request") as parent:
        asyncio.run(call(scripted_api(), "in=2 out=1"))
    (span,) = captured.finished()
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id


def _histogram_count(reader: Any, name: str) -> int:
    data = reader.get_metrics_data()
    return sum(
        point.count
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    )


def _histogram_points(reader: Any, name: str) -> dict[frozenset[Any], Any]:
    data = reader.get_metrics_data()
    return {
        frozenset(point.attributes.items()): point
        for resource in (data.resource_metrics if data else ())
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    }


def _bucket_instruments(*readers: Any) -> inst.Instruments:
    from opentelemetry.sdk.metrics import MeterProvider

    return inst.Instruments(MeterProvider(metric_readers=list(readers)).get_meter("test"), aggregate=True)


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(st.lists(st.integers(min_value=0, max_value=10**9), max_size=30), min_size=1, max_size=5)
)
def test_statek_buckets_equal_the_sdks_own_histogram_for_every_reader(batches: list[list[int]]) -> None:
    """Token counts added to statek's cells and collected between batches give, for a cumulative
    and a delta reader alike, exactly the data points the SDK's own per-measurement record gives."""
    from opentelemetry.sdk.metrics import Histogram as SdkHistogram
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader

    def delta_reader() -> InMemoryMetricReader:
        return InMemoryMetricReader(preferred_temporality={SdkHistogram: AggregationTemporality.DELTA})

    cumulative, delta = InMemoryMetricReader(), delta_reader()
    instruments = _bucket_instruments(cumulative, delta)
    assert instruments.aggregating
    ref_cumulative, ref_delta = InMemoryMetricReader(), delta_reader()
    reference = (
        MeterProvider(metric_readers=[ref_cumulative, ref_delta])
        .get_meter("ref")
        .create_histogram(inst.TOKEN_USAGE.name, explicit_bucket_boundaries_advisory=list(inst.TOKEN_BUCKETS))
    )
    attributes = {"gen_ai.request.model": "m", "gen_ai.token.type": "input"}
    cell = instruments.histogram_cell(instruments.token_usage, attributes)
    for batch in batches:
        for value in batch:
            with instruments.lock:
                cell.add(value)
            reference.record(value, attributes)
        for ours, theirs in ((cumulative, ref_cumulative), (delta, ref_delta)):
            got = _histogram_points(ours, inst.TOKEN_USAGE.name)
            want = _histogram_points(theirs, inst.TOKEN_USAGE.name)
            assert got.keys() == want.keys()
            for key, point in want.items():
                mine = got[key]
                assert (mine.count, mine.sum, mine.min, mine.max) == (
                    point.count,
                    point.sum,
                    point.min,
                    point.max,
                )
                assert list(mine.bucket_counts) == list(point.bucket_counts)
                assert list(mine.explicit_bounds) == list(point.explicit_bounds)


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(
        st.lists(
            st.tuples(
                st.one_of(
                    st.sampled_from(inst.DURATION_BUCKETS),  # values on a boundary belong below it
                    st.floats(min_value=0, max_value=200, allow_nan=False, allow_infinity=False),
                ),
                st.booleans(),
            ),
            max_size=30,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_replayed_durations_keep_buckets_min_max_sum_and_the_latest_exemplar(
    batches: list[list[tuple[float, bool]]],
) -> None:
    """Float measurements, some with a sampled span: the replay gives the SDK's own bucket counts,
    min and max exactly, the sum to rounding, and per bucket the exemplar of the latest sampled span."""
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.trace import SpanContext, TraceFlags

    reader, ref_reader = InMemoryMetricReader(), InMemoryMetricReader()
    instruments = _bucket_instruments(reader)
    reference = _bucket_instruments(ref_reader).duration
    attributes = {"gen_ai.request.model": "m"}
    cell = instruments.histogram_cell(instruments.duration, attributes)
    span_id = 0
    for batch in batches:
        latest: dict[int, tuple[float, int]] = {}
        for value, sampled in batch:
            context = None
            if sampled:
                span_id += 1
                context = SpanContext(1, span_id, False, TraceFlags(TraceFlags.SAMPLED))
                latest[bisect.bisect_left(inst.DURATION_BUCKETS, value)] = (value, span_id)
            with instruments.lock:
                cell.add(value, context)
            reference.record(value, attributes)
        got = _histogram_points(reader, inst.OPERATION_DURATION.name)
        want = _histogram_points(ref_reader, inst.OPERATION_DURATION.name)
        assert got.keys() == want.keys()
        for key, point in want.items():
            mine = got[key]
            assert (mine.count, mine.min, mine.max) == (point.count, point.min, point.max)
            assert mine.sum == pytest.approx(point.sum, rel=1e-9, abs=1e-9)
            assert list(mine.bucket_counts) == list(point.bucket_counts)
            found = {
                bisect.bisect_left(inst.DURATION_BUCKETS, e.value): (e.value, e.span_id)
                for e in mine.exemplars
                if e.span_id
            }
            for bucket, expected in latest.items():
                assert found[bucket] == expected


def test_nothing_queues_per_measurement_when_nothing_collects() -> None:
    """The old queue drained 4,096 records inline on some caller; a cell is a fixed set of buckets."""
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    instruments = _bucket_instruments(reader)
    cell = instruments.histogram_cell(instruments.duration, {"gen_ai.request.model": "m"})
    for n in range(50_000):
        with instruments.lock:
            cell.add((n % 100) / 10)
        assert cell.counts is not None and len(cell.counts) == len(inst.DURATION_BUCKETS) + 1
    (point,) = _histogram_points(reader, inst.OPERATION_DURATION.name).values()
    assert point.count == 50_000 and point.min == 0 and point.max == 9.9
    assert point.sum == pytest.approx(sum((n % 100) / 10 for n in range(50_000)), rel=1e-12)
    assert (
        _histogram_points(reader, inst.OPERATION_DURATION.name)[frozenset(point.attributes.items())].count
        == 50_000
    )


def test_a_view_over_statek_histograms_makes_calls_record_synchronously(prices: Any) -> None:
    """A view that changes the aggregation cannot be merged into: every value goes through the SDK."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        views=[
            View(
                instrument_name=inst.OPERATION_DURATION.name,
                aggregation=ExponentialBucketHistogramAggregation(),
            )
        ],
    )
    instruments = inst.Instruments(provider.get_meter("test"))
    assert not instruments.aggregating
    configure_telemetry(tracer_provider=trace.NoOpTracerProvider(), meter_provider=provider)
    try:
        import asyncio

        for n in (1, 2, 3):
            asyncio.run(call(scripted_api(), f"in={n} out=1"))
    finally:
        configure_telemetry()
    durations = _histogram_points(reader, inst.OPERATION_DURATION.name)
    tokens = _histogram_points(reader, inst.TOKEN_USAGE.name)
    assert sum(p.count for p in durations.values()) == 3
    assert sorted((p.attributes["gen_ai.token.type"], p.sum) for p in tokens.values()) == [
        ("input", 6),
        ("output", 3),
    ]


def test_noop_meters_are_not_aggregated() -> None:
    assert not inst.Instruments(metrics.NoOpMeterProvider().get_meter("test")).aggregating


async def test_the_duration_histogram_keeps_the_calls_span_as_its_exemplar(captured: Captured) -> None:
    """Merged buckets keep exemplars as the SDK's record would: the latency panel links to a trace."""
    await call(scripted_api(), "in=10 out=1")
    (span,) = captured.finished()
    (point,) = captured.points(inst.OPERATION_DURATION.name).values()
    (exemplar,) = point.exemplars
    assert (exemplar.trace_id, exemplar.span_id) == (span.context.trace_id, span.context.span_id)
    assert point.count == 1 and exemplar.value == point.sum
    for token_point in captured.points(inst.TOKEN_USAGE.name).values():
        assert not token_point.exemplars  # token histograms never had exemplars


async def test_only_series_that_happened_exist_no_false_zero_cost(captured: Captured) -> None:
    """An unpriced model has no cost series (not $0 "calculated"); a priced one only its own status;
    token types a call did not use, and cost statuses that did not occur, have no series."""
    await call(scripted_api(), "in=10 out=2", model="unpriced-model")
    await call(scripted_api(), "in=10 out=2", model="priced")
    costs = {
        (dict(key)[inst.GEN_AI_REQUEST_MODEL], dict(key)[inst.STATEK_COST_STATUS])
        for key in captured.points(inst.COST.name)
    }
    assert costs == {("priced", "calculated")}
    requests = {
        (dict(key)[inst.GEN_AI_REQUEST_MODEL], dict(key)[inst.STATEK_COST_STATUS]): point.value
        for key, point in captured.points(inst.REQUESTS.name).items()
    }
    assert requests == {("unpriced-model", "unpriced"): 1, ("priced", "calculated"): 1}
    token_types = {dict(key)[inst.STATEK_TOKEN_TYPE] for key in captured.points(inst.TOKENS.name)}
    assert token_types == {"input", "output"}
