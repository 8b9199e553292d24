"""Hostile provider answers for every wire format statek reads, and the telemetry they are recorded into.

Shared by the fuzz suite (``test_hostile_answers.py``) and the count script in its docstring. A
:class:`WireFormat` knows a valid answer (whole and streamed), how to frame a streamed one, and how to
build the provider that reads it behind an ``httpx.MockTransport``. :func:`hostile_answers` draws an
answer from a valid one by replacing, dropping or adding values anywhere in it with the values that broke
statek before: negative, huge and non-finite numbers, numbers as text, wrong containers, deep nesting,
``error`` objects, and raw bytes that are not JSON at all.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from statek._http import RetryPolicy
from statek.exporters.prometheus import PrometheusExporter
from statek.llm_api import LLM_API
from statek.providers.anthropic import ClaudeAI_API
from statek.providers.openai_compat import OpenAICompatible_API
from statek.providers.vertex import VertexAI_API
from statek.settings import ProviderSettings
from statek.telemetry import configure_telemetry

Json = Any

OPENAI_ANSWER: Json = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Paris.",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
                ],
            },
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "total_tokens": 15,
        "cost": 0.0001,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 1},
    },
}
OPENAI_STREAM: list[Json] = [
    {"model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Par"}}]},
    {"model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": "is."}}]},
    {
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}]
                },
            }
        ]
    },
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15, "cost": 0.0001},
    },
]
ANTHROPIC_ANSWER: Json = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "Paris."},
        {"type": "tool_use", "id": "tu1", "name": "f", "input": {"a": 1}},
    ],
    "stop_reason": "end_turn",
    "usage": {
        "input_tokens": 12,
        "output_tokens": 3,
        "cache_creation_input_tokens": 2,
        "cache_read_input_tokens": 4,
        "cache_creation": {"ephemeral_5m_input_tokens": 2, "ephemeral_1h_input_tokens": 0},
    },
}
ANTHROPIC_STREAM: list[Json] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [],
            "usage": {"input_tokens": 12, "output_tokens": 1, "cache_read_input_tokens": 4},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Paris."}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"a": 1}'},
    },
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}},
    {"type": "message_stop"},
]
GEMINI_ANSWER: Json = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": "Paris."},
                    {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "s"},
                ],
            },
            "finishReason": "STOP",
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 12,
        "candidatesTokenCount": 3,
        "thoughtsTokenCount": 1,
        "cachedContentTokenCount": 4,
        "totalTokenCount": 16,
    },
    "modelVersion": "gemini-2.5-flash",
}
GEMINI_STREAM: list[Json] = [
    {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Par"}]}}],
        "modelVersion": "gemini-2.5-flash",
    },
    {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "is."}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 3, "totalTokenCount": 15},
    },
]

URL = "http://127.0.0.1:9"


def _openai(stream: bool, client: httpx.AsyncClient, key: str) -> LLM_API:
    settings = ProviderSettings(api_url=f"{URL}/v1/chat/completions", api_key=key)
    return OpenAICompatible_API(settings, http_client=client, retry=_ONCE, stream=stream)


def _anthropic(stream: bool, client: httpx.AsyncClient, key: str) -> LLM_API:
    settings = ProviderSettings(api_url=f"{URL}/v1/messages", api_key=key)
    return ClaudeAI_API(settings, http_client=client, retry=_ONCE, stream=stream)


def _gemini(stream: bool, client: httpx.AsyncClient, key: str) -> LLM_API:
    settings = ProviderSettings(api_url=f"{URL}/v1beta/models/{{model}}:generateContent", api_key=key)
    return VertexAI_API(settings, http_client=client, retry=_ONCE, stream=stream)


_ONCE = RetryPolicy(max_attempts=1)


@dataclass(frozen=True)
class WireFormat:
    """One wire format: a valid answer whole and streamed, the stream framing, and its provider."""

    name: str
    answer: Json
    stream: list[Json]
    frame: Callable[[Json], bytes]
    provider: Callable[[bool, httpx.AsyncClient, str], LLM_API]
    model: str

    def body(self, answer: Json, streamed: bool) -> bytes:
        """The bytes a server sends for ``answer`` (a list of events when ``streamed``)."""
        if not streamed:
            return _dumps(answer)
        events = answer if isinstance(answer, list) else [answer]
        done = b"data: [DONE]\n\n" if self.name == "openai" else b""
        return b"".join(self.frame(event) for event in events) + done


def _dumps(value: Json) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def _frame_anthropic(event: Json) -> bytes:
    kind = event.get("type") if isinstance(event, dict) and isinstance(event.get("type"), str) else "x"
    return b"event: " + kind.encode() + b"\ndata: " + _dumps(event) + b"\n\n"


FORMATS = (
    WireFormat(
        "openai",
        OPENAI_ANSWER,
        OPENAI_STREAM,
        lambda e: b"data: " + _dumps(e) + b"\n\n",
        _openai,
        "gpt-4o-mini",
    ),
    WireFormat(
        "anthropic", ANTHROPIC_ANSWER, ANTHROPIC_STREAM, _frame_anthropic, _anthropic, "claude-sonnet-4-5"
    ),
    WireFormat(
        "gemini",
        GEMINI_ANSWER,
        GEMINI_STREAM,
        lambda e: b"data: " + _dumps(e) + b"\r\n\r\n",
        _gemini,
        "gemini-2.5-flash",
    ),
)

# ----------------------------------------------------------------------------- hostile values
_NUMBERS = st.one_of(
    st.sampled_from(
        [
            -1,
            -5,
            -(2**63),
            2**63 - 1,
            2**63,
            2**64,
            10**400,
            1e308,
            -1e308,
            math.nan,
            math.inf,
            -math.inf,
            0.5,
            -0.0,
            1e-320,
        ]
    ),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
)
_SCALARS = st.one_of(
    _NUMBERS,
    st.booleans(),
    st.none(),
    st.text(max_size=12),
    st.sampled_from(["12", "NaN", "-3", "1e999999999", "1e-999999999", ""]),
)
HOSTILE: st.SearchStrategy[Json] = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "text", "type", "error", "usage", "0"]), inner, max_size=3),
    ),
    max_leaves=6,
)
ERROR_OBJECTS = st.sampled_from(
    [
        {"message": "upstream failed", "code": 502},
        {"type": "overloaded_error", "message": "Overloaded"},
        {"status": "INTERNAL", "message": "boom"},
        "boom",
    ]
)


def paths(value: Json, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside ``value`` (containers included)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


def _replace(document: Json, path: tuple[Any, ...], new: Json) -> Json:
    if not path:
        return new
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = new
    return document


def _delete(document: Json, path: tuple[Any, ...]) -> Json:
    if not path:
        return document
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    return document


@st.composite
def hostile_answers(draw: st.DrawFn, wire: WireFormat, streamed: bool) -> bytes:
    """The bytes of one hostile answer in ``wire``'s format."""
    if draw(st.integers(0, 19)) == 0:  # one in twenty: not JSON at all
        return draw(st.binary(max_size=64)) + draw(st.sampled_from([b"", b"{", b"[" * 5000, b"\xff\xfe"]))
    document = copy.deepcopy(wire.stream if streamed else wire.answer)
    for _ in range(draw(st.integers(1, 4))):
        every = list(paths(document))
        path = draw(st.sampled_from(every))
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "error", "nest"]))
        if action == "replace":
            document = _replace(document, path, draw(HOSTILE))
        elif action == "delete":
            document = _delete(document, path)
        elif action == "error":
            objects = [p for p in every if _is_object(document, p)]
            if objects:
                _lookup(document, draw(st.sampled_from(objects)))["error"] = copy.deepcopy(
                    draw(ERROR_OBJECTS)
                )
        else:  # deeper than Python's json can recurse: spliced into the bytes below
            document = _replace(document, path, _DEEP)
    return wire.body(document, streamed).replace(b'"' + _DEEP.encode() + b'"', b"[" * 3000 + b"]" * 3000)


_DEEP = "deeply-nested-placeholder"


def _lookup(document: Json, path: tuple[Any, ...]) -> Json:
    for step in path:
        document = document[step]
    return document


def _is_object(document: Json, path: tuple[Any, ...]) -> bool:
    try:
        return isinstance(_lookup(document, path), dict)
    except (KeyError, IndexError, TypeError):
        return False


# ----------------------------------------------------------------------------- telemetry under test
class Exporters:
    """statek's telemetry into an in-memory span exporter, an in-memory metric reader (read back and
    encoded as an OTLP request, as the OTLP exporter does) and a Prometheus registry."""

    def __init__(self, **options: Any) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.registry = CollectorRegistry()
        self.prometheus = PrometheusExporter(registry=self.registry, target_info=False)
        self.meter_provider = MeterProvider(metric_readers=[self.reader, self.prometheus.reader])
        configure_telemetry(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **options
        )

    def close(self) -> None:
        configure_telemetry()
        self.prometheus.shutdown()
        self.meter_provider.shutdown()

    def assert_exporting(self) -> None:
        """``/metrics`` renders and parses, an OTLP request encodes, and every number in both is a
        finite, non-negative value (no counter went down, none overflowed)."""
        text = generate_latest(self.registry).decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                assert math.isfinite(sample.value) and sample.value >= 0, sample
        data = self.reader.get_metrics_data()
        assert data is not None
        encode_metrics(data).SerializeToString()  # what the OTLP exporter sends; raises on int64 overflow
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        value = point.sum if hasattr(point, "bucket_counts") else point.value
                        assert math.isfinite(value) and value >= 0, (metric.name, point)

    def span_numbers(self) -> Iterator[tuple[str, Any]]:
        for span in self.spans.get_finished_spans():
            for key, value in (span.attributes or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    yield key, value


def finite_non_negative(value: Any) -> bool:
    """Whether ``value`` is a number statek may show: finite and not negative."""
    if isinstance(value, Decimal):
        return value.is_finite() and value >= 0
    return math.isfinite(value) and value >= 0
