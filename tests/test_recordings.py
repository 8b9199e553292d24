"""Real provider answers, recorded by other projects' test suites, read through statek's public API.

Each recording in ``tests/recordings/`` (provenance per file in ``<id>.meta.json`` and ``README.md``) is
served by an ``httpx.MockTransport`` as the provider's answer to ``process_request``; the resulting
``LLM_Stats`` (and ``response.detail``) must carry the usage in statek's one meaning, worked out here
by hand from the recorded numbers and the provider's documented usage semantics:

* ``input_tokens`` is the whole prompt, cached tokens included (Anthropic reports cache reads and
  writes outside ``input_tokens``: added; Gemini reports tool-use prompt tokens apart: added);
* ``output_tokens`` is everything generated, reasoning included (Gemini's ``thoughtsTokenCount`` and
  xAI's ``reasoning_tokens`` are outside the candidate/completion count: added; Gemini's OpenAI layer
  counts thoughts only in ``total_tokens``: total - prompt - completion);
* ``cached_tokens`` is the part of the prompt read from cache;
* ``cost`` is the provider's own charge in USD (OpenRouter ``usage.cost``; xAI ``cost_in_usd_ticks``
  of 1e-10 USD), ``None`` where the answer reports none.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from statek import LLM_API
from statek._http import RetryPolicy
from statek.exceptions import ProviderError, ProviderHTTPError, RateLimitError

RECORDINGS = Path(__file__).parent / "recordings"
NO_URL = {"AZURE_OPENAI", "GEMINI_ENTERPRISE"}  # account-specific endpoints: any URL will do behind the mock


class Usage(NamedTuple):
    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    cost: Decimal | None = None


TICK = Decimal("1E-10")

EXPECTED: dict[str, Usage] = {
    # Anthropic: input = input_tokens + cache_creation_input_tokens + cache_read_input_tokens.
    "anthropic_cache_read": Usage(3 + 0 + 1111, 406, 1111),
    "anthropic_cache_read_and_write_5m": Usage(3 + 418 + 1111, 33, 1111),
    "anthropic_cache_read_opus": Usage(2 + 0 + 1590, 4, 1590),
    "anthropic_cache_write_5m": Usage(2 + 1590 + 0, 4, 0),
    # message_delta usage is cumulative and replaces message_start's (2 + 3068 + 0, 69).
    "anthropic_stream_cache_usage_grows": Usage(6 + 3337 + 6289, 198, 6289),
    "anthropic_stream_cache_write_1h": Usage(13 + 3913, 4, 0),
    "anthropic_stream_redacted_thinking": Usage(92, 189),
    "anthropic_stream_thinking": Usage(43, 282),
    "anthropic_stream_tool_no_args": Usage(565, 48),
    "anthropic_thinking_high": Usage(51, 1699),  # thinking_tokens 139 already inside output_tokens
    "anthropic_thinking_tokens": Usage(13, 44),  # thinking_tokens 33 already inside
    "anthropic_tool_no_args": Usage(602, 93),
    "anthropic_tool_use_with_thinking": Usage(398, 155),
    # OpenAI-shaped: prompt_tokens (cache inside), completion_tokens (reasoning inside).
    "azure_deepseek_chat": Usage(19, 1969),
    "azure_stream_prompt_filter_first": Usage(15, 78),
    "cerebras_glm_reasoning": Usage(17, 415),
    "cerebras_gpt_oss_reasoning": Usage(79, 37),
    "dashscope_reasoning": Usage(24, 1668),
    "dashscope_stream_reasoning": Usage(24, 1355),
    "dashscope_tool_call": Usage(295, 22),
    "deepseek_cache_hit_896": Usage(896 + 80, 61, 896),  # prompt = hit + miss
    "deepseek_cache_hit_tool_call": Usage(512 + 51, 116, 512),
    "deepseek_cache_miss_all": Usage(0 + 875, 79, 0),
    "deepseek_reasoner": Usage(12, 789),
    "deepseek_stream_reasoner": Usage(6, 212),
    "deepseek_stream_tool_call_aisdk": Usage(320 + 19, 83, 320),
    "deepseek_tool_call_aisdk": Usage(320 + 19, 92, 320),
    "gemini_openai_layer_text": Usage(66, 6 + (100 - 66 - 6)),
    "gemini_openai_layer_tool_call": Usage(35, 12 + (109 - 35 - 12)),
    "groq_cached_reasoning": Usage(336, 96, 256),
    "groq_compound_web_search": Usage(5296, 387),
    "groq_reasoning_aisdk": Usage(17, 649),
    "groq_stream_tool_call": Usage(304, 49),
    "groq_stream_x_groq_usage": Usage(21, 988),  # usage only inside x_groq on the last chunk
    "groq_tool_call_aisdk": Usage(218, 15),
    "mistral_cached": Usage(268, 5, 224),
    "mistral_magistral_thinking_chunks": Usage(664, 747),
    "mistral_stream_magistral": Usage(10, 232),
    "mistral_stream_tool_call": Usage(124, 22),
    "ollama_cloud_gpt_oss": Usage(134, 122),
    "ollama_local_json": Usage(136, 15),
    "openai_cache_read": Usage(4020, 4, 4012),
    "openai_cache_write": Usage(4020, 4, 0),
    "openai_o3mini_reasoning": Usage(11, 809),
    "openai_o3mini_reasoning_short": Usage(7, 87),
    "openai_stream_text": Usage(12, 5),
    "openai_stream_text_aisdk": Usage(16, 300),
    "openai_stream_two_tool_calls": Usage(75, 51),
    "openai_text_aisdk": Usage(16, 363),
    "openai_tool_call": Usage(104, 16),
    "openai_two_tool_calls": Usage(75, 51),
    "openrouter_anthropic_thinking": Usage(43, 53, 0, Decimal("0.000924")),
    # BYOK: OpenRouter's fee (0) plus what Google billed the user's key, upstream_inference_cost; at
    # gemini-2.5-flash's $0.30/$2.50 per M: 326 * 0.30e-6 + 91 * 2.50e-6 = 0.0000978 + 0.0002275
    "openrouter_byok_tool_call": Usage(326, 91, 0, Decimal("0.0003253")),
    "openrouter_grok_cached_no_cost": Usage(687, 240, 682),
    "openrouter_reasoning_cost": Usage(17, 2177, 0, Decimal("0.00435825")),
    "openrouter_stream_cached_cost": Usage(687, 187, 679, Decimal("0.00333825")),
    "openrouter_stream_web_search_cost": Usage(8174, 30, 0, Decimal("0.0133176")),
    "openrouter_tool_call_mistral": Usage(134, 43),
    "openrouter_web_search_cost": Usage(8174, 30, 0, Decimal("0.0133176")),
    "perplexity_stream": Usage(10, 336),  # usage on every chunk; the last one is the total
    "perplexity_text": Usage(11, 392),
    # xAI: reasoning_tokens are outside completion_tokens (total = prompt + completion + reasoning).
    "xai_stream_text": Usage(12, 1 + 290, 11, 1466250 * TICK),
    "xai_stream_tool_call": Usage(291, 26 + 196, 290, 1330500 * TICK),
    "xai_text": Usage(12, 1 + 228, 2, 1176500 * TICK),
    "xai_tool_call": Usage(291, 26 + 189, 244, 1399000 * TICK),
    "xai_tool_call_2": Usage(307, 26 + 255, 244, 1777000 * TICK),
    # Gemini / Vertex: input = promptTokenCount + toolUsePromptTokenCount;
    # output = candidatesTokenCount + thoughtsTokenCount; cached = cachedContentTokenCount (inside prompt).
    "gemini_function_call_signature": Usage(38, 12 + 30),
    "gemini_implicit_cache_thoughts": Usage(373, 89 + 167, 204),
    "gemini_implicit_cache_video": Usage(17713, 68 + 821, 17379),
    "gemini_max_tokens_all_thoughts": Usage(15, 0 + 2),
    "gemini_safety_block": Usage(14, 0),
    "gemini_stream_function_call": Usage(29, 10 + 202),
    "gemini_stream_thought_summaries": Usage(34, 469 + 787),  # usageMetadata is cumulative: last wins
    "gemini_stream_tool_use_prompt": Usage(17 + 102, 241 + 412),
    "gemini_tool_call_aisdk": Usage(29, 15 + 893),
    "gemini_tool_use_prompt_tokens": Usage(17 + 119, 201 + 213),
    "vertex_flex_stream": Usage(5, 1 + 100),
    "vertex_function_call": Usage(74, 16 + 200),
    "vertex_prompt_blocked": Usage(0, 0),
    "vertex_response_blocked": Usage(19, 6 + 27),
    "vertex_stream_otel": Usage(8, 388 + 2193),
    "vertex_text": Usage(13, 8),
}


class Detail(NamedTuple):
    """The parts of the usage kept in ``response.detail``: each a subset of input or output."""

    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0


# Every recording not listed here reports no cache writes and no separate reasoning count (Anthropic
# and Mistral streams, for instance, do not break thinking out of output_tokens).
DETAIL: dict[str, Detail] = {
    "anthropic_cache_read_and_write_5m": Detail(cache_write_tokens=418),
    "anthropic_cache_write_5m": Detail(cache_write_tokens=1590),
    "anthropic_stream_cache_usage_grows": Detail(cache_write_tokens=3337),
    "anthropic_stream_cache_write_1h": Detail(3913, 3913),  # ephemeral_1h_input_tokens
    "anthropic_thinking_high": Detail(reasoning_tokens=139),  # output_tokens_details.thinking_tokens
    "anthropic_thinking_tokens": Detail(reasoning_tokens=33),
    "azure_stream_prompt_filter_first": Detail(reasoning_tokens=64),
    "cerebras_glm_reasoning": Detail(reasoning_tokens=406),
    "cerebras_gpt_oss_reasoning": Detail(reasoning_tokens=25),
    "dashscope_reasoning": Detail(reasoning_tokens=1353),
    "dashscope_stream_reasoning": Detail(reasoning_tokens=1084),
    "deepseek_cache_hit_896": Detail(reasoning_tokens=25),
    "deepseek_cache_hit_tool_call": Detail(reasoning_tokens=60),
    "deepseek_cache_miss_all": Detail(reasoning_tokens=26),
    "deepseek_reasoner": Detail(reasoning_tokens=415),
    "deepseek_stream_reasoner": Detail(reasoning_tokens=198),
    "deepseek_stream_tool_call_aisdk": Detail(reasoning_tokens=39),
    "deepseek_tool_call_aisdk": Detail(reasoning_tokens=48),
    "gemini_openai_layer_text": Detail(reasoning_tokens=100 - 66 - 6),
    "gemini_openai_layer_tool_call": Detail(reasoning_tokens=109 - 35 - 12),
    "groq_cached_reasoning": Detail(reasoning_tokens=59),
    "groq_reasoning_aisdk": Detail(reasoning_tokens=570),
    "groq_stream_tool_call": Detail(reasoning_tokens=23),
    "openai_cache_write": Detail(cache_write_tokens=4012),  # prompt_tokens_details.cache_write_tokens
    "openai_o3mini_reasoning": Detail(reasoning_tokens=768),
    "openai_o3mini_reasoning_short": Detail(reasoning_tokens=64),
    "openrouter_anthropic_thinking": Detail(reasoning_tokens=48),
    "openrouter_grok_cached_no_cost": Detail(reasoning_tokens=165),
    "openrouter_reasoning_cost": Detail(reasoning_tokens=960),
    "openrouter_stream_cached_cost": Detail(reasoning_tokens=118),
    "xai_stream_text": Detail(reasoning_tokens=290),
    "xai_stream_tool_call": Detail(reasoning_tokens=196),
    "xai_text": Detail(reasoning_tokens=228),
    "xai_tool_call": Detail(reasoning_tokens=189),
    "xai_tool_call_2": Detail(reasoning_tokens=255),
    # Gemini / Vertex: thoughtsTokenCount.
    "gemini_function_call_signature": Detail(reasoning_tokens=30),
    "gemini_implicit_cache_thoughts": Detail(reasoning_tokens=167),
    "gemini_implicit_cache_video": Detail(reasoning_tokens=821),
    "gemini_max_tokens_all_thoughts": Detail(reasoning_tokens=2),
    "gemini_stream_function_call": Detail(reasoning_tokens=202),
    "gemini_stream_thought_summaries": Detail(reasoning_tokens=787),
    "gemini_stream_tool_use_prompt": Detail(reasoning_tokens=412),
    "gemini_tool_call_aisdk": Detail(reasoning_tokens=893),
    "gemini_tool_use_prompt_tokens": Detail(reasoning_tokens=213),
    "vertex_flex_stream": Detail(reasoning_tokens=100),
    "vertex_function_call": Detail(reasoning_tokens=200),
    "vertex_response_blocked": Detail(reasoning_tokens=27),
    "vertex_stream_otel": Detail(reasoning_tokens=2193),
}

ERRORS: dict[str, type[ProviderError]] = {
    "anthropic_400_effort": ProviderHTTPError,
    "gemini_429_quota": RateLimitError,
    "groq_400_tool_use_failed": ProviderHTTPError,
    "groq_404_model": ProviderHTTPError,
    "groq_stream_midstream_error": ProviderError,  # HTTP 200, then an `event: error` in the stream
    "openai_400_unsupported_role": ProviderHTTPError,
    "openai_404_model": ProviderHTTPError,
    "openrouter_429": RateLimitError,
    # HTTP 200, then an error chunk that also carries `choices` (finish_reason null): still an error
    "openrouter_stream_midstream_error": ProviderError,
    "vertex_400_invalid_role": ProviderHTTPError,
    "vertex_404_model": ProviderHTTPError,
}


class Recording(NamedTuple):
    id: str
    provider: str
    status: int
    content_type: str
    body: bytes
    stream: bool


def load(recording_id: str) -> Recording:
    meta = json.loads((RECORDINGS / f"{recording_id}.meta.json").read_text(encoding="utf-8"))
    raw = (RECORDINGS / meta["body_file"]).read_bytes()
    if meta["format"] == "chunks":  # replayed exactly as the AI SDK's own tests replay them
        lines = [line for line in raw.decode("utf-8").splitlines() if line.strip()]
        raw = "".join(f"data: {line}\n\n" for line in [*lines, "[DONE]"]).encode()
    return Recording(
        meta["id"], meta["provider"], meta["status"], meta["content_type"], raw, meta["format"] != "json"
    )


def replay(recording: Recording) -> Any:
    """``process_request`` against a transport that answers with the recording; returns the response."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            recording.status, content=recording.body, headers={"content-type": recording.content_type}
        )

    options: dict[str, Any] = {"api_key": "test-key", "stream": recording.stream}
    if recording.provider in NO_URL:
        options["api_url"] = "https://example.invalid/v1/chat/completions"
    api = LLM_API.get(
        recording.provider,
        "recorded-model",
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(answer)),
        retry=RetryPolicy(max_attempts=1),
        **options,
    )
    return api.process_request(system_prompt="Be brief.", chat_history=None, metadata={"MAX_TOKENS": 64})


def test_every_recording_is_used() -> None:
    ids = {path.name.removesuffix(".meta.json") for path in RECORDINGS.glob("*.meta.json")}
    assert ids == set(EXPECTED) | set(ERRORS)
    assert not set(EXPECTED) & set(ERRORS)
    assert set(DETAIL) <= set(EXPECTED)


@pytest.mark.parametrize("recording_id", sorted(EXPECTED))
async def test_recorded_usage_is_normalised(recording_id: str) -> None:
    recording = load(recording_id)
    response = await replay(recording)
    stats = response.stats
    assert (
        Usage(stats.input_tokens, stats.output_tokens, stats.cached_tokens, stats.cost)
        == (EXPECTED[recording_id])
    )
    assert stats.total_bytes_received == len(recording.body)
    detail = response.detail
    assert Detail(detail.cache_write_tokens, detail.cache_write_1h_tokens, detail.reasoning_tokens) == (
        DETAIL.get(recording_id, Detail())
    )


@pytest.mark.parametrize("recording_id", sorted(ERRORS))
async def test_recorded_errors_raise_the_documented_error(recording_id: str) -> None:
    recording = load(recording_id)
    with pytest.raises(ERRORS[recording_id]) as caught:
        await replay(recording)
    if recording.status != 200:
        assert isinstance(caught.value, ProviderHTTPError)
        assert caught.value.status_code == recording.status
