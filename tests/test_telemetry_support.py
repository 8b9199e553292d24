"""Fakes shared by the telemetry, job and exporter tests (no tests here).

:class:`ScriptedAPI` is a minimal provider (its own tiny wire format) behind ``httpx.MockTransport``.
The user message is a script: ``"in=100 out=20 cached=10 write=5 reason=3 cost=0.0012 fail=429,503"``
makes the fake server answer 429, then 503, then 200 with that usage (``fail=400`` is final, ``fail=drop``
a connection error). Every field is optional. The :func:`prices` fixture installs a price table in
which model ``priced`` costs $2 / $1 (cached) / $10 per million input / cached / output tokens; any
other model is priced from the provider-reported ``cost=``, else unpriced.

Fixtures (``prices``, ``captured``) are imported by the test modules that use them, as
``prices_fixture`` / ``captured_fixture``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from statek import LLM_API, ChatHistoryItem
from statek._http import RetryPolicy
from statek.llm_api import LLM_Response, PreparedRequest
from statek.metering import PriceRegistry, set_default_registry
from statek.model_pricing import set_model_pricing
from statek.telemetry import configure_telemetry
from statek.telemetry_buckets import declare_plain
from statek.types import CallDetail

URL = "http://127.0.0.1:9/v1/scripted"


def parse_script(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split() if "=" in part)


class ScriptedServer:
    """The fake provider's server side: answers each request as its script says."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        script = parse_script(body["prompt"])
        key = body["prompt"] + body.get("nonce", "")
        attempt = self.attempts.get(key, 0)
        self.attempts[key] = attempt + 1
        failures = [f for f in script.get("fail", "").split(",") if f]
        if attempt < len(failures):
            failure = failures[attempt]
            if failure == "drop":
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(
                int(failure), json={"error": f"injected {failure}"}, headers={"retry-after": "0"}
            )
        usage = {k: script[k] for k in ("in", "out", "cached", "write", "reason", "cost") if k in script}
        return httpx.Response(200, json={"model": body["model"] + "-2024", "text": "ok", "usage": usage})


class ScriptedAPI(LLM_API):
    """A provider with its own tiny wire format, registered nowhere: metered like any other."""

    provider_key = "SCRIPTED"
    genai_provider_name = "scripted"
    default_api_url = URL
    requires_api_key = False

    def _build_payload(self, params: PreparedRequest) -> dict[str, Any]:
        payload = {"model": params.model, "prompt": params.chat_history[-1].content}
        if "nonce" in params.metadata:
            payload["nonce"] = str(params.metadata["nonce"])
        return payload

    async def _send(self, params: PreparedRequest, payload: dict[str, Any]) -> LLM_Response:
        data, raw = await self._post_json(payload)
        usage = data["usage"]
        stats = CallDetail(
            raw.bytes_sent,
            raw.bytes_received,
            Decimal(usage["cost"]) if "cost" in usage else None,
            int(usage.get("in", 0)),
            int(usage.get("out", 0)),
            int(usage.get("cached", 0)),
            cache_write_tokens=int(usage.get("write", 0)),
            reasoning_tokens=int(usage.get("reason", 0)),
            response_model=data["model"],
            finish_reason="stop",
        )
        return LLM_Response(data["text"], None, None, detail=stats)


def scripted_api(server: ScriptedServer | None = None, cls: type[ScriptedAPI] = ScriptedAPI) -> ScriptedAPI:
    from statek.settings import ProviderSettings

    client = httpx.AsyncClient(transport=httpx.MockTransport(server or ScriptedServer()))
    retry = RetryPolicy(max_attempts=4, initial_backoff=0, max_backoff=0, jitter=False)
    return cls(ProviderSettings(api_url=URL), http_client=client, retry=retry)


async def call(api: LLM_API, script: str, model: str = "priced", **metadata: Any) -> LLM_Response:
    return await api.process_request(
        model=model, chat_history=[ChatHistoryItem.user(script)], metadata=metadata or None
    )


class Captured:
    """SDK providers with in-memory exporters, installed as statek's telemetry target."""

    def __init__(self, **options: Any) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        declare_plain(self.meter_provider)  # no views: statek's cells, replayed at collection
        configure_telemetry(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **options
        )

    def metrics(self) -> MetricsData:
        data = self.reader.get_metrics_data()
        assert data is not None
        return data

    def points(self, name: str) -> dict[frozenset[tuple[str, Any]], Any]:
        """Data points of instrument ``name`` keyed by their attribute set."""
        out: dict[frozenset[tuple[str, Any]], Any] = {}
        for rm in self.metrics().resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            out[frozenset(point.attributes.items())] = point
        return out

    def values(self, name: str) -> dict[frozenset[tuple[str, Any]], Any]:
        """Counter values (or histogram ``(count, sum)``) keyed by attribute set; zero series left out."""
        out = {}
        for key, point in self.points(name).items():
            value = (point.count, point.sum) if hasattr(point, "bucket_counts") else point.value
            if value not in (0, (0, 0)):
                out[key] = value
        return out

    def finished(self, name: str | None = None) -> list[Any]:
        return [s for s in self.spans.get_finished_spans() if name is None or s.name == name]


def attrs(**kwargs: str) -> frozenset[tuple[str, str]]:
    """An attribute set from keyword arguments; ``__`` in a name stands for ``.``."""
    return frozenset((k.replace("__", "."), v) for k, v in kwargs.items())


PRICE_IN, PRICE_CACHED, PRICE_OUT = Decimal(2), Decimal(1), Decimal(10)


def expected_cost(inp: int, out: int, cached: int = 0) -> Decimal:
    """What model ``priced`` costs, computed here independently of the pricing engine."""
    return ((inp - cached) * PRICE_IN + cached * PRICE_CACHED + out * PRICE_OUT) / Decimal(1_000_000)


@pytest.fixture(name="prices")
def prices_fixture() -> Iterator[PriceRegistry]:
    registry = PriceRegistry(shipped=False, model_info_dir=None)
    previous = set_default_registry(registry)
    set_model_pricing("SCRIPTED", "priced", PRICE_IN, PRICE_OUT, PRICE_CACHED)
    yield registry
    set_default_registry(previous)


@pytest.fixture(name="captured")
def captured_fixture(prices: PriceRegistry) -> Iterator[Captured]:
    captured = Captured()
    yield captured
    configure_telemetry()
