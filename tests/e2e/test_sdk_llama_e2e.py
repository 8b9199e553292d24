"""End to end: the official ``openai`` SDK, metered through ``statek.http_client()``, against a real
llama.cpp server (Gemma 3 270M): the usage statek records equals the server's own report.

The server comes from the ``llama_server`` fixture of ``test_llama_cpp_e2e`` (a real process from
PyPI packages; it fails, never skips, when it cannot start). The endpoint is recognised the way a
user's would be: ``LLAMA_CPP_API_URL`` points at it, no ``provider=`` is given.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_llama_cpp_e2e import llama_server  # noqa: F401 - the real server fixture

import statek
from statek import Job
from statek.telemetry import configure_telemetry

pytestmark = pytest.mark.e2e

MESSAGES = [
    {"role": "system", "content": "Answer in one short sentence."},
    {"role": "user", "content": "Name a colour."},
]


@pytest.fixture(name="spans")
def spans_fixture(llama_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:  # noqa: F811
    monkeypatch.setenv("LLAMA_CPP_API_URL", llama_server)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    configure_telemetry(tracer_provider=provider, meter_provider=MeterProvider([InMemoryMetricReader()]))
    yield exporter
    configure_telemetry()


def _client(llama_server: str, bodies: list[bytes]) -> OpenAI:  # noqa: F811
    def keep(response: Any) -> None:
        if "text/event-stream" not in response.headers.get("content-type", ""):
            bodies.append(response.read())

    http = statek.http_client(event_hooks={"response": [keep]})
    return OpenAI(base_url=llama_server.removesuffix("/chat/completions"), api_key="none", http_client=http)


def test_an_sdk_call_is_metered_with_the_servers_own_usage(
    llama_server: str,  # noqa: F811
    spans: InMemorySpanExporter,
) -> None:
    bodies: list[bytes] = []
    client = _client(llama_server, bodies)
    with Job("e2e-sdk") as job:
        completion = client.chat.completions.create(
            model="gemma-3-270m", messages=MESSAGES, max_tokens=12, temperature=0.0
        )
    assert completion.choices[0].message.content
    usage = json.loads(bodies[-1])["usage"]  # the server's own report, as it sent it
    (span,) = spans.get_finished_spans()
    assert span.name == "chat gemma-3-270m"
    assert span.attributes["gen_ai.provider.name"] == "llama_cpp"
    assert span.attributes["gen_ai.usage.input_tokens"] == usage["prompt_tokens"] > 5
    assert span.attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"] > 0
    assert span.attributes["statek.bytes.received"] == len(bodies[-1])
    assert span.attributes["statek.cost.status"] == "unpriced"  # a local model has no price: never $0
    assert job.usage.total_input_tokens == usage["prompt_tokens"]
    assert job.usage.total_output_tokens == usage["completion_tokens"]
    assert job.usage.by_model()[("LLAMA_CPP", "gemma-3-270m")].calls == 1


def test_a_streamed_sdk_call_is_metered_with_the_usage_of_its_last_chunk(
    llama_server: str,  # noqa: F811
    spans: InMemorySpanExporter,
) -> None:
    client = _client(llama_server, [])
    with Job("e2e-sdk-stream") as job:
        chunks = list(
            client.chat.completions.create(
                model="gemma-3-270m",
                messages=MESSAGES,
                max_tokens=12,
                temperature=0.0,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    reported = [c.usage for c in chunks if c.usage is not None]
    (span,) = spans.get_finished_spans()
    assert "statek.time_to_first_chunk_s" in span.attributes
    if reported:  # llama.cpp honours include_usage: statek reads the same numbers
        assert span.attributes["gen_ai.usage.input_tokens"] == reported[-1].prompt_tokens > 5
        assert span.attributes["gen_ai.usage.output_tokens"] == reported[-1].completion_tokens > 0
        assert job.usage.total_input_tokens == reported[-1].prompt_tokens
    else:  # a server that ignores the option: recorded as not metered, never as $0
        assert span.attributes["statek.cost.status"] == "no_usage"
        assert job.usage.total_cost is None
