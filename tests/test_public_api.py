"""The public contract of the seed document: every symbol at its documented import path."""

from __future__ import annotations

import importlib

import pytest

import statek
from statek import LLM_API, LLM_Response, LLM_Stats

SEED_SYMBOLS = [
    ("statek.llm_api", "LLM_API"),
    ("statek.llm_api", "LLM_Response"),
    ("statek.llm_api", "LLM_Stats"),
    ("statek.llm_api", "add_provider"),
    ("statek", "LLM_API"),
    ("statek", "LLM_Response"),
    ("statek", "LLM_Stats"),
    ("statek", "add_provider"),
    ("statek.model_pricing", "ModelPricing"),
    ("statek.model_pricing", "get_model_pricing"),
    ("statek.model_pricing", "set_model_pricing"),
    ("statek.model_pricing", "init_model_pricing"),
    ("statek.executors.llm_usage", "LLM_Usage"),
]

PROVIDER_CLASSES = [
    "OpenAI_API",
    "OpenRouter_API",
    "Groq_API",
    "MistralAI_API",
    "DeepSeek_API",
    "XAI_API",
    "TogetherAI_API",
    "FireworksAI_API",
    "Cerebras_API",
    "Perplexity_API",
    "SambaNova_API",
    "NvidiaNIM_API",
    "Nebius_API",
    "Cohere_API",
    "MoonshotAI_API",
    "DashScope_API",
    "CloudflareWorkersAI_API",
    "CloudflareAIGateway_API",
    "GitHubModels_API",
    "Bedrock_API",
    "MicrosoftFoundry_API",
    "AzureOpenAI_API",
    "GeminiEnterprise_API",
    "Ollama_API",
    "LMStudio_API",
    "VLLM_API",
    "SGLang_API",
    "LlamaCpp_API",
    "VertexAI_API",
    "ClaudeAI_API",
    "Claude_API",
]


@pytest.mark.parametrize(("module", "name"), SEED_SYMBOLS)
def test_seed_symbol_importable_from_documented_path(module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name)


@pytest.mark.parametrize("name", PROVIDER_CLASSES)
def test_provider_classes_importable_from_both_paths(name: str) -> None:
    from_package = getattr(statek, name)
    from_module = getattr(importlib.import_module("statek.llm_api"), name)
    assert from_package is from_module
    assert issubclass(from_package, LLM_API)


def test_claude_api_is_the_same_class() -> None:
    assert statek.Claude_API is statek.ClaudeAI_API


def test_all_is_sorted_unique_and_resolvable() -> None:
    assert list(statek.__all__) == sorted(statek.__all__)
    assert len(set(statek.__all__)) == len(statek.__all__)
    for name in statek.__all__:
        assert hasattr(statek, name), name


def test_response_types_keep_the_seed_field_order() -> None:
    assert LLM_Response._fields == ("text", "stats", "call_requests")
    assert LLM_Stats._fields[:6] == (
        "total_bytes_sent",
        "total_bytes_received",
        "cost",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
    )
    assert len(LLM_Stats._fields) == 6
    stats = LLM_Stats(1, 2, None)
    assert stats == (1, 2, None, 0, 0, 0)


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), (0, 0.0), ("0.7", 0.7), (1.0, 1.0), (0.25, 0.25)]
)
def test_parse_temperature_accepts(value: object, expected: float | None) -> None:
    assert LLM_API.parse_temperature(value) == expected


@pytest.mark.parametrize("value", [-0.1, 1.01, "hot", [0.5], float("nan"), float("inf")])
def test_parse_temperature_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="TEMPERATURE must be between 0.0 and 1.0, got"):
        LLM_API.parse_temperature(value)


def test_require_model() -> None:
    assert LLM_API.require_model("gpt-5-mini") == "gpt-5-mini"
    for empty in (None, "", "   "):
        with pytest.raises(ValueError, match="model must be provided to process_request"):
            LLM_API.require_model(empty)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("1", True),
        ("YES", True),
        (" on ", True),
        ("false", False),
        ("0", False),
        ("maybe", True),
        ("high", True),
        ("", False),
        (" off ", False),
        ("Disabled", False),
        ("none", False),
        (None, False),
    ],
)
def test_parse_enable_reasoning_never_raises(value: object, expected: bool) -> None:
    assert LLM_API.parse_enable_reasoning(value) is expected
