"""The request side's short ways give what the general ways give.

The common call (no metadata, tools, style, temperature or reasoning switch) is prepared without the
general path's parsing, its text turns are rendered without a call each, its headers are the cached
endpoint's own, and each event loop's deadlines are found by the loop's id. Each test here fails if a
short way departs from the general one or keeps something the general one would let go.
"""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from statek import _http
from statek.chat import ChatHistoryItem, ChatStyle, ToolCall
from statek.providers.openai_compat import OpenAICompatible_API, _message
from statek.settings import ProviderSettings

URL = "http://127.0.0.1:9/v1/chat/completions"
ANSWER = {
    "id": "chatcmpl-1",
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}

texts = st.text(max_size=12)
calls = st.builds(
    ToolCall,
    st.text(min_size=1, max_size=6),
    st.sampled_from(["get_weather", "lookup"]),
    st.just([]),
    st.dictionaries(st.sampled_from(["city", "n"]), st.integers() | texts, max_size=2),
)
items = st.one_of(
    st.builds(ChatHistoryItem.user, texts),
    st.builds(lambda text: ChatHistoryItem(ChatHistoryItem.user("").role.SYSTEM, text), texts),
    st.builds(ChatHistoryItem.assistant, texts),
    st.builds(ChatHistoryItem.assistant, texts, st.lists(calls, min_size=1, max_size=2)),
    st.builds(ChatHistoryItem.tool_result, calls, texts | st.dictionaries(texts, st.integers(), max_size=2)),
)
histories = st.none() | st.lists(items, max_size=5)
models = st.sampled_from(["m", " m ", "gpt-4o-mini", "\tmodel\n"])


def _api(**values: Any) -> OpenAICompatible_API:
    return OpenAICompatible_API(ProviderSettings(api_url=URL, api_key="k-test"), **values)


def _rendered_one_by_one(
    system: str | None, history: list[ChatHistoryItem] | None, plain: bool
) -> list[dict[str, Any]]:
    """The messages as the general renderer makes them: each turn through ``_message``."""
    messages = [_message(item, plain) for item in history or ()]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return messages


@settings(max_examples=200, deadline=None)
@given(st.none() | texts, models, histories, st.sampled_from([False, None, "", 0, "off", "NO"]))
def test_the_common_call_is_prepared_and_rendered_as_the_general_path_does(
    system: str | None, model: str, history: list[ChatHistoryItem] | None, switch: Any
) -> None:
    api = _api()
    short = api._prepare(system, model, None, None, history, None, None, switch)
    general = api._prepare(system, model, {}, [], history, ChatStyle.NATIVE, None, switch)
    assert short == general and repr(short) == repr(general)
    payload = api.preview_request(system, model, chat_history=history, enable_reasoning=switch)
    assert payload == api._payload(general)
    assert payload["messages"] == _rendered_one_by_one(system, history, plain=False)
    assert json.dumps(payload)  # what is sent is JSON as it is


@settings(max_examples=100, deadline=None)
@given(st.none() | texts, histories)
def test_plain_style_renders_each_turn_as_the_general_renderer_does(
    system: str | None, history: list[ChatHistoryItem] | None
) -> None:
    payload = _api().preview_request(system, "m", chat_history=history, chat_style=ChatStyle.PLAIN)
    assert payload["messages"] == _rendered_one_by_one(system, history, plain=True)


def _scripted(seen: list[httpx.Request], streamed: bool = False) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if streamed:
            chunk = {**ANSWER, "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}
            content = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
            return httpx.Response(200, content=content, headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=ANSWER)

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


async def test_a_subclass_headers_hook_is_sent_whole_and_streamed_and_the_cache_stays_clean() -> None:
    class Tagged(OpenAICompatible_API):
        def _request_headers(self) -> dict[str, str]:
            headers = super()._request_headers()
            headers["x-tag"] = "t"
            return headers

    seen: list[httpx.Request] = []
    tagged = Tagged(ProviderSettings(api_url=URL, api_key="k-test"), http_client=_scripted(seen))
    await tagged.process_request(model="m")
    streamed = Tagged(ProviderSettings(api_url=URL, api_key="k-test"), http_client=_scripted(seen, True))
    stream = streamed.stream_request(model="m")
    assert [piece async for piece in stream] == ["ok"]
    assert [r.headers.get("x-tag") for r in seen] == ["t", "t"]
    assert all(r.headers["authorization"] == "Bearer k-test" for r in seen)
    assert "x-tag" not in tagged._endpoint().headers and "x-tag" not in streamed._endpoint().headers
    plain = _api(http_client=_scripted(seen))
    await plain.process_request(model="m")
    assert "x-tag" not in seen[-1].headers and seen[-1].headers["authorization"] == "Bearer k-test"


def test_each_loops_deadlines_go_with_the_loop() -> None:
    """The deadlines' armed timer refers to its loop: a registry holding them strongly kept every
    loop that ever made a call (``asyncio.run`` per request leaked one loop each)."""
    api = _api(http_client=_scripted([]))
    gc.collect()
    before = len(_http._deadlines)
    for _ in range(3):
        loop = asyncio.new_event_loop()
        gone = weakref.ref(loop)
        assert loop.run_until_complete(api.process_request(model="m")).text == "ok"
        assert len(_http._deadlines) == before + 1  # made on the loop's first exchange, kept for it
        assert loop.run_until_complete(api.process_request(model="m")).text == "ok"
        assert len(_http._deadlines) == before + 1
        loop.close()
        del loop
        gc.collect()
        assert gone() is None
        assert len(_http._deadlines) == before  # dropped with the loop, before its id can be reused


async def test_a_retry_outside_an_observed_call_reports_nothing_and_still_retries() -> None:
    """``_post_raw`` looks the retry hook up only when a retry happens (inside ``process_request``
    the call's record counts it: tests/test_telemetry.py); outside any observed call there is none."""
    statuses = iter([503, 200, 503, 200])

    def answer(request: httpx.Request) -> httpx.Response:
        status = next(statuses)
        return httpx.Response(status, json=ANSWER if status == 200 else {"error": "busy"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    api = _api(http_client=client, retry=_http.RetryPolicy(initial_backoff=0, jitter=False))
    assert (await api.process_request(model="m")).text == "ok"
    raw = await api._post_raw({"model": "m", "messages": []})
    assert raw.status_code == 200 and raw.attempts == 2
