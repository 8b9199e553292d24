"""The wire codecs: every stream reader gives the same answer however the bytes are cut, and the
same answer as the whole-body reader; request recognition never raises on outside input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statek.testing import ModelBehavior, ProviderSimulator
from statek.wire import anthropic_messages, embeddings, gemini, openai_chat, openai_responses
from statek.wire.answer import StreamReader
from statek.wire.requests import WireRequest, read_answer, recognise, stream_reader

BEHAVIOR = ModelBehavior(
    text="Ünïcode text — with a long enough body to be cut in many places.",
    tool_calls=[("lookup", {"q": "x" * 40})],
    input_tokens=900,
    cached_tokens=512,
    output_tokens=77,
    reasoning_tokens=20,
    stream_chunk_chars=5,
)

ROUTES = {
    "openai_chat": ("/v1/chat/completions", {"stream_options": {"include_usage": True}}),
    "openai_responses": ("/v1/responses", {}),
    "anthropic": ("/v1/messages", {"max_tokens": 100}),
    "gemini": ("/v1beta/models/m:streamGenerateContent", {}),
}


def _exchange(wire: str, stream: bool) -> tuple[WireRequest, bytes]:
    path, extra = ROUTES[wire]
    if wire == "gemini" and not stream:
        path = path.replace("streamGenerateContent", "generateContent")
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "input": "hi", **extra}
    if stream and wire != "gemini":
        body["stream"] = True
    raw = json.dumps(body).encode()
    with ProviderSimulator(default=BEHAVIOR) as sim:
        response = sim.engine.handle(
            "POST", path + ("?alt=sse" if wire == "gemini" and stream else ""), {}, raw
        )
    content = b"".join(response.chunks) if response.chunks is not None else response.body
    request = recognise("POST", path, raw)
    assert request is not None and request.format == wire and request.stream is stream
    return request, content


EXCHANGES = {(w, s): _exchange(w, s) for w in ROUTES for s in (False, True)}


def _feed(reader: StreamReader, content: bytes, cuts: list[int]) -> str:
    text, start = [], 0
    for cut in [*sorted({c % (len(content) + 1) for c in cuts}), len(content)]:
        text += reader.feed(content[start:cut])
        start = cut
    return "".join(text)


@pytest.mark.parametrize("wire", list(ROUTES))
@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_a_stream_reads_the_same_however_it_is_cut_and_matches_the_whole_answer(
    wire: str, cuts: list[int]
) -> None:
    request, content = EXCHANGES[(wire, True)]
    reader = stream_reader(request)
    pieces = _feed(reader, content, cuts)
    answer = reader.finish(10, len(content))
    whole = read_answer(EXCHANGES[(wire, False)][0], EXCHANGES[(wire, False)][1], 10, 0)
    assert pieces == answer.text == whole.text == BEHAVIOR.text
    assert answer.detail.has_usage
    fields = (
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "response_model",
        "finish_reason",
    )
    assert {f: getattr(answer.detail, f) for f in fields} == {f: getattr(whole.detail, f) for f in fields}
    assert (answer.detail.input_tokens, answer.detail.output_tokens, answer.detail.cached_tokens) == (
        900,
        77,
        512,
    )
    assert answer.tool_calls is not None and [(c.name, c.kwargs) for c in answer.tool_calls] == [
        ("lookup", {"q": "x" * 40})
    ]


@pytest.mark.parametrize("wire", list(ROUTES))
def test_a_stream_cut_before_its_usage_event_has_no_usage_but_keeps_its_text(wire: str) -> None:
    request, content = EXCHANGES[(wire, True)]
    reader = stream_reader(request)
    reader.feed(content[: len(content) // 3])
    answer = reader.finish(1, len(content) // 3)
    assert not answer.detail.has_usage
    assert BEHAVIOR.text.startswith(answer.text)


@given(
    method=st.sampled_from(["POST", "GET"]),
    path=st.text(max_size=60) | st.sampled_from([p for p, _ in ROUTES.values()]),
    body=st.binary(max_size=200)
    | st.builds(
        lambda d: json.dumps(d).encode(),
        st.dictionaries(
            st.text(max_size=8), st.none() | st.booleans() | st.integers() | st.text(max_size=8), max_size=5
        ),
    ),
)
def test_recognising_a_request_never_raises(method: str, path: str, body: bytes) -> None:
    found = recognise(method, path, body)
    assert found is None or (method == "POST" and found.operation in ("chat", "embeddings"))


@given(
    body=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=12), c, max_size=4),
        max_leaves=20,
    )
)
def test_readers_raise_only_wire_errors_on_any_json(body: Any) -> None:
    from statek.wire.errors import WireFormatError

    readers = [
        lambda: openai_chat.read_whole(body, openai_chat.OPENAI_PROFILE, 0, 0),
        lambda: openai_responses.read_response(body, 0, 0),
        lambda: embeddings.read_openai(body, 0, 0),
        lambda: embeddings.read_gemini(body, 0, 0),
    ]
    for read in readers:
        try:
            answer = read()
        except WireFormatError:
            continue
        assert isinstance(answer.detail.input_tokens, int)  # bounds are issue 10's validation


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/chat/completions", ("openai_chat", "chat")),
        ("/openai/deployments/gpt4/chat/completions", ("openai_chat", "chat")),
        ("/v1/responses", ("openai_responses", "chat")),
        ("/v1/embeddings", ("openai_embeddings", "embeddings")),
        ("/v1/messages", ("anthropic", "chat")),
        ("/v1/threads/t1/messages", None),
        ("/v1/messages/count_tokens", None),
        ("/v1beta/models/gemini-2.5-flash:generateContent", ("gemini", "chat")),
        (
            "/v1/projects/p/locations/l/publishers/google/models/text-embedding-005:predict",
            ("gemini_embeddings", "embeddings"),
        ),
        ("/v1/projects/p/locations/l/publishers/google/models/imagen-3:predict", None),
        ("/v1beta/models/gemini-embedding-001:batchEmbedContents", ("gemini_embeddings", "embeddings")),
        ("/v1/models", None),
    ],
)
def test_recognised_endpoints(path: str, expected: tuple[str, str] | None) -> None:
    found = recognise("POST", path, b'{"model": "m"}')
    assert (found.format, found.operation) == expected if found else expected is None
    if found is not None and ":" in path:
        assert found.model == path.rpartition("/models/")[2].partition(":")[0]


def test_vertex_predict_embeddings_usage_is_the_sum_of_token_counts() -> None:
    body = {
        "predictions": [
            {"embeddings": {"statistics": {"token_count": 7}}},
            {"embeddings": {"statistics": {"token_count": 5.0}}},
        ]
    }
    assert embeddings.read_gemini(body, 0, 0).detail.input_tokens == 12
    assert not embeddings.read_gemini({"predictions": [{}]}, 0, 0).detail.has_usage


def test_anthropic_stream_error_event_is_a_stream_failure() -> None:
    from statek.wire.errors import StreamFailure

    reader = anthropic_messages.MessageStreamReader()
    with pytest.raises(StreamFailure, match="overloaded_error"):
        reader.feed(
            b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"busy"}}\n\n'
        )
    gemini_reader = gemini.ContentStreamReader()
    with pytest.raises(StreamFailure, match="UNAVAILABLE"):
        gemini_reader.feed(b'data: {"error":{"status":"UNAVAILABLE","message":"busy"}}\n\n')
