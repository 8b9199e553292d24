"""Hostile provider answers (issue 10, items 5-7): fuzzed for every wire format, streamed and not.

Each answer goes through the real provider class behind an ``httpx.MockTransport``, inside a job, with
statek's telemetry recorded into in-memory span and metric exporters and a Prometheus registry. Whatever
the answer, the call either returns numbers statek can record or raises a typed
:class:`~statek.exceptions.ProviderError` that keeps the exchange's bytes (and, for an unreadable answer,
the answer itself); the job counts those bytes; ``/metrics`` still renders and an OTLP request still
encodes, with no negative or non-finite number in either.

``HOSTILE_EXAMPLES`` (default 150 per format and mode) raises the number of examples for a longer run.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from decimal import Decimal
from enum import IntEnum
from typing import Any

import httpx
import pytest
from hostile_support import FORMATS, Exporters, WireFormat, finite_non_negative, hostile_answers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statek import LLM_API, ChatHistoryItem
from statek.exceptions import ProviderError, ResponseFormatError, StatekError
from statek.executors.job import Job
from statek.limits import MAX_COUNT, bounded, problems
from statek.llm_api import LLM_Response, PreparedRequest
from statek.metering import PriceRegistry, set_default_registry
from statek.settings import ProviderSettings
from statek.types import CallDetail
from statek.wire import embeddings, openai_responses
from statek.wire.answer import StreamReader
from statek.wire.anthropic_messages import MessageStreamReader
from statek.wire.errors import WireFormatError
from statek.wire.gemini import ContentStreamReader
from statek.wire.openai_chat import ChatStreamReader

EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "150"))


@pytest.fixture(name="exporters", scope="module")
def exporters_fixture() -> Iterator[Exporters]:
    registry = PriceRegistry(shipped=True, model_info_dir=None)
    previous = set_default_registry(registry)
    exporters = Exporters()
    yield exporters
    exporters.close()
    set_default_registry(previous)


def _content_type(wire: WireFormat, streamed: bool) -> str:
    return "text/event-stream" if streamed else "application/json"


async def _call(
    wire: WireFormat, streamed: bool, body: bytes
) -> tuple[LLM_Response | BaseException, Job, int]:
    sent: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(len(request.content))
        return httpx.Response(200, content=body, headers={"content-type": _content_type(wire, streamed)})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        api = wire.provider(streamed, client, "not-a-real-key-000")
        async with Job("fuzz") as job:
            try:
                outcome: LLM_Response | BaseException = await api.process_request(
                    model=wire.model, chat_history=[ChatHistoryItem.user("capital of France?")]
                )
            except BaseException as exc:  # noqa: BLE001 - judged below
                outcome = exc
    return outcome, job, sum(sent)


def check_one(wire: WireFormat, streamed: bool, body: bytes, exporters: Exporters) -> str:
    """Call with ``body`` as the answer and assert every promise; return ``"ok"`` or the error class."""
    outcome, job, sent = asyncio.run(_call(wire, streamed, body))
    assert job.usage.total_bytes_sent == sent > 0
    assert job.usage.total_bytes_received == len(body)
    if isinstance(outcome, BaseException):
        assert isinstance(outcome, ProviderError), f"untyped {type(outcome).__name__}: {outcome}"
        assert (outcome.bytes_sent, outcome.bytes_received) == (sent, len(body))
        if isinstance(outcome, ResponseFormatError):
            assert outcome.content == body[: ResponseFormatError.CONTENT_LIMIT]
        assert job.usage.failed_calls == 1
        return type(outcome).__name__
    detail = outcome.detail
    assert problems(detail) == []
    assert (detail.total_bytes_sent, detail.total_bytes_received) == (sent, len(body))
    for value in (*outcome.stats, detail.priced_cost):
        if value is not None:
            assert finite_non_negative(value)
    assert isinstance(outcome.text, str)
    assert job.usage.calls == 1 and 0 <= job.usage.total_input_tokens <= MAX_COUNT
    return "ok"


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("wire", FORMATS, ids=[w.name for w in FORMATS])
def test_valid_answers_are_read(wire: WireFormat, streamed: bool, exporters: Exporters) -> None:
    # The baseline the fuzzing starts from: untouched, every format is read with its usage.
    body = wire.body(wire.stream if streamed else wire.answer, streamed)
    assert check_one(wire, streamed, body, exporters) == "ok"


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("wire", FORMATS, ids=[w.name for w in FORMATS])
def test_fuzzed_answers_never_crash_lose_bytes_or_poison_the_exporters(
    wire: WireFormat, streamed: bool, exporters: Exporters
) -> None:
    outcomes: dict[str, int] = {}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(body=hostile_answers(wire, streamed))
    def run(body: bytes) -> None:
        kind = check_one(wire, streamed, body, exporters)
        outcomes[kind] = outcomes.get(kind, 0) + 1

    run()
    exporters.assert_exporting()
    for key, value in exporters.span_numbers():
        assert finite_non_negative(value), (key, value)
    # Both ways out were taken: fuzzing that never reaches the readers (or never trips them) proves little.
    assert outcomes.get("ok", 0) > 0 and sum(outcomes.values()) - outcomes.get("ok", 0) > 0, outcomes


# ----------------------------------------------------------------------------- the repros of the issue
def _repro(wire_name: str, body: object, streamed: bool = False) -> tuple[str, BaseException | LLM_Response]:
    wire = next(w for w in FORMATS if w.name == wire_name)
    raw = body if isinstance(body, bytes) else wire.body(body, streamed)
    outcome, _, _ = asyncio.run(_call(wire, streamed, raw))
    return wire_name, outcome


@pytest.mark.parametrize(
    ("wire", "body"),
    [
        ("anthropic", {"content": [{"type": "text", "text": 5}], "usage": {"input_tokens": 1}}),
        ("gemini", {"candidates": {"a": 1}, "usageMetadata": {"promptTokenCount": 1}}),
        ("openai", b'{"choices": [], "usage": {"prompt_tokens": NaN, "completion_tokens": 1}}'),
        ("openai", {"choices": [], "usage": {"prompt_tokens": -5, "completion_tokens": 1}}),
        ("openai", {"choices": [], "usage": {"prompt_tokens": 10**400, "completion_tokens": 1}}),
        ("openai", {"choices": [], "usage": {"prompt_tokens": 2**64, "completion_tokens": 1}}),
        ("anthropic", {"content": [], "usage": {"input_tokens": 1e308, "output_tokens": 1e308}}),
        ("gemini", {"usageMetadata": {"promptTokenCount": "12"}}),
        ("anthropic", {"content": [], "usage": {"input_tokens": 1, "cache_creation": [1]}}),
    ],
    ids=[
        "anthropic-text-5",
        "gemini-candidates-object",
        "openai-nan",
        "negative",
        "10**400",
        "2**64",
        "1e308",
        "text-count",
        "cache-creation-list",
    ],
)
def test_the_issues_repros_are_typed_format_errors_that_keep_the_answer(
    wire: str, body: object, exporters: Exporters
) -> None:
    _, outcome = _repro(wire, body)
    assert isinstance(outcome, ResponseFormatError), outcome
    assert outcome.bytes_received > 0 and outcome.content


def test_a_negative_or_absurd_reported_cost_is_no_money(exporters: Exporters) -> None:
    for cost in (-5, 1e308, "NaN", 10**400):
        body = {
            **json.loads(json.dumps(FORMATS[0].answer)),
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "cost": cost},
        }
        _, outcome = _repro("openai", body)
        assert isinstance(outcome, LLM_Response), outcome
        assert outcome.stats.cost is None
        assert outcome.detail.priced_cost is None or outcome.detail.priced_cost >= Decimal(0)


def test_openrouter_error_event_in_a_200_stream_is_a_failure_not_an_empty_answer(
    exporters: Exporters,
) -> None:
    # OpenRouter documents it: mid-stream, an event with an error object AND a choices entry.
    events = [
        {"model": "m", "choices": [{"index": 0, "delta": {"content": "Par"}}]},
        {
            "id": "x",
            "object": "chat.completion.chunk",
            "error": {"code": "server_error", "message": "Provider disconnected unexpectedly"},
            "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
        },
    ]
    _, outcome = _repro("openai", events, streamed=True)
    assert isinstance(outcome, ProviderError) and "Provider disconnected" in str(outcome)
    assert outcome.bytes_received > 0


@pytest.mark.parametrize("wire", ["openai", "anthropic", "gemini"])
def test_any_answer_carrying_an_error_object_is_a_failure(wire: str, exporters: Exporters) -> None:
    answer = json.loads(json.dumps(next(w for w in FORMATS if w.name == wire).answer))
    answer["error"] = {"message": "quota exceeded", "type": "error"}
    _, outcome = _repro(wire, answer)
    assert isinstance(outcome, ProviderError) and "quota exceeded" in str(outcome)


def test_every_error_statek_raises_for_an_answer_is_one_of_its_own() -> None:
    # The fuzz suite's "typed" means this tree: nothing outside StatekError leaves a provider call.
    assert issubclass(ResponseFormatError, StatekError) and issubclass(ProviderError, StatekError)


# ----------------------------------------------------------------------------- the recording choke point
class _Hostile(IntEnum):
    MANY = 7


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("input_tokens", -5),
        ("output_tokens", 10**400),
        ("cached_tokens", 2**64),
        ("cost", Decimal(-5)),
        ("cost", Decimal("NaN")),
        ("cost", Decimal("1e308")),
        ("reasoning_tokens", 1e308),
    ],
)
def test_bounded_replaces_what_no_exporter_may_see(field: str, value: object) -> None:
    detail = CallDetail(10, 20, None, 3, 4)._replace(**{field: value})
    checked, found = bounded(detail)
    assert found and found[0].startswith(field)
    assert problems(checked) == []
    assert getattr(checked, field) in (0, None)


def test_bounded_keeps_a_fine_detail_as_it_is() -> None:
    detail = CallDetail(10, 20, Decimal("0.5"), 3, 4, 1, priced_cost=Decimal("0.25"))
    assert bounded(detail) == (detail, [])
    assert bounded(detail)[0] is detail
    assert bounded(detail._replace(input_tokens=_Hostile.MANY)) == (detail._replace(input_tokens=7), [])


async def test_a_user_provider_reporting_hostile_numbers_cannot_poison_the_exporters(
    exporters: Exporters,
) -> None:
    class Hostile(LLM_API):
        provider_key = "HOSTILE"
        requires_api_key = False

        async def _send(self, params: PreparedRequest, payload: dict[str, Any]) -> LLM_Response:
            detail = CallDetail(-1, 2**64, Decimal(-5), -5, 10**400, 1e308)  # type: ignore[arg-type]
            return LLM_Response("ok", None, None, detail=detail)

        def _build_payload(self, params: PreparedRequest) -> dict[str, Any]:
            return {}

    for _ in range(2):  # 1e308 twice overflowed the float sum of /metrics
        response = await Hostile(ProviderSettings(api_url="http://127.0.0.1:9")).process_request(
            model="m", chat_history=[ChatHistoryItem.user("hi")]
        )
        assert problems(response.detail) == []
    exporters.assert_exporting()


# ----------------------------------------------------------------------------- the incremental readers
READERS: dict[str, Callable[[bool], StreamReader]] = {
    "openai": lambda keep: ChatStreamReader(keep_content=keep),
    "anthropic": lambda keep: MessageStreamReader(keep_content=keep),
    "gemini": lambda keep: ContentStreamReader(keep_content=keep),
}


@pytest.mark.parametrize("keep_content", [True, False], ids=["content", "usage-only"])
@pytest.mark.parametrize("wire", FORMATS, ids=[w.name for w in FORMATS])
def test_stream_readers_fed_in_any_pieces_refuse_or_read_within_bounds(
    wire: WireFormat, keep_content: bool
) -> None:
    # The readers behind LLM_API.stream_request and the httpx transport: fed as bytes arrive.
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(body=hostile_answers(wire, streamed=True), cut=st.integers(1, 64))
    def run(body: bytes, cut: int) -> None:
        reader = READERS[wire.name](keep_content)
        try:
            for start in range(0, len(body), cut):
                reader.feed(body[start : start + cut])
            answer = reader.finish(10, len(body))
        except WireFormatError:
            return
        assert problems(answer.detail) == [] and isinstance(answer.text, str)

    run()


RESPONSES_ANSWER: Any = {
    "id": "resp_1",
    "object": "response",
    "model": "gpt-4.1",
    "status": "completed",
    "output": [
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Paris."}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
    ],
    "usage": {
        "input_tokens": 12,
        "output_tokens": 3,
        "input_tokens_details": {"cached_tokens": 4},
        "output_tokens_details": {"reasoning_tokens": 1},
    },
}
EMBEDDINGS_OPENAI: Any = {
    "object": "list",
    "data": [{"embedding": [0.1, 0.2]}],
    "model": "e",
    "usage": {"prompt_tokens": 3, "total_tokens": 3},
}
EMBEDDINGS_GEMINI: Any = {"embeddings": [{"values": [0.1, 0.2]}], "usageMetadata": {"promptTokenCount": 3}}
CODECS: dict[str, tuple[Any, Callable[[Any, int, int], Any]]] = {
    "responses": (RESPONSES_ANSWER, openai_responses.read_response),
    "embeddings-openai": (EMBEDDINGS_OPENAI, embeddings.read_openai),
    "embeddings-gemini": (EMBEDDINGS_GEMINI, embeddings.read_gemini),
}


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_the_other_codecs_refuse_or_read_within_bounds(codec: str) -> None:
    valid, read = CODECS[codec]
    assert problems(read(valid, 10, 20).detail) == []
    wire = WireFormat(codec, valid, [], lambda e: b"", FORMATS[0].provider, "m")

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(body=hostile_answers(wire, streamed=False))
    def run(body: bytes) -> None:
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            return  # not JSON: the provider refuses it before any codec sees it
        try:
            answer = read(document, 10, len(body))
        except WireFormatError:
            return
        assert problems(answer.detail) == []

    run()


def test_an_unrecordable_reported_cost_is_logged_once_not_dropped_silently(
    exporters: Exporters, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from statek.wire import numbers

    monkeypatch.setattr(numbers, "_dropped_logged", False)
    for cost in ("1e999999999", "1e999999999", -1, "abc"):
        body = {
            **json.loads(json.dumps(FORMATS[0].answer)),
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "cost": cost},
        }
        _, outcome = _repro("openai", body)
        assert isinstance(outcome, LLM_Response) and outcome.stats.cost is None
    warnings = [r for r in caplog.records if "reported cost it cannot record" in r.getMessage()]
    assert len(warnings) == 1 and "1e999999999" in warnings[0].getMessage()
