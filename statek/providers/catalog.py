"""The catalogue of built-in OpenAI-compatible providers: one typed row each, one named class each.

A provider with no behaviour of its own is a row, not a module: its registry keys and aliases, its
default endpoint, its OpenTelemetry ``gen_ai.provider.name``, the price-table provider whose rows apply,
and the :class:`~statek.providers.openai_compat.ChatCompletionsProfile` describing how it departs
from OpenAI on the wire (where cached and reasoning tokens are, its own cost report, its auth header).
The classes at the bottom bind each row to the shared implementation, so that ``OpenAI_API`` and
friends exist as real classes for users, IDEs and type checkers.

Wire facts (usage fields, URLs, headers) are from ``shared/reference/provider-usage.md``; the
``gen_ai.provider.name`` values are the OpenTelemetry GenAI well-known values where one exists
(openai, azure.ai.openai, azure.ai.inference, aws.bedrock, cohere, deepseek, gcp.vertex_ai, groq,
mistral_ai, perplexity, x_ai), otherwise a lowercase provider name.

Providers whose endpoint contains an account, resource, region or project (Cloudflare, Azure,
Bedrock, Microsoft Foundry, Gemini Enterprise) have no default URL: set ``{KEY}_API_URL`` to the
full chat-completions URL; ``url_hint`` shows its shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from .openai_compat import AuthStyle, ChatCompletionsProfile, OpenAICompatible_API, ReasoningRequest

__all__ = [
    "CATALOG",
    "VLLM_API",
    "XAI_API",
    "AzureOpenAI_API",
    "Bedrock_API",
    "CatalogProvider",
    "CatalogRow",
    "Cerebras_API",
    "CloudflareAIGateway_API",
    "CloudflareWorkersAI_API",
    "Cohere_API",
    "DashScope_API",
    "DeepSeek_API",
    "FireworksAI_API",
    "GeminiEnterprise_API",
    "GitHubModels_API",
    "Groq_API",
    "LMStudio_API",
    "LlamaCpp_API",
    "MicrosoftFoundry_API",
    "MistralAI_API",
    "MoonshotAI_API",
    "Nebius_API",
    "NvidiaNIM_API",
    "Ollama_API",
    "OpenAI_API",
    "OpenRouter_API",
    "Perplexity_API",
    "SGLang_API",
    "SambaNova_API",
    "TogetherAI_API",
    "catalog_row",
]


_OPENAI_SHAPE = ChatCompletionsProfile()


@dataclass(frozen=True, slots=True)
class CatalogRow:
    """One built-in OpenAI-compatible provider.

    ``key`` is the canonical registry key (and settings prefix, e.g. ``OPENAI_API_KEY``); ``aliases``
    are the other accepted names. ``default_api_url`` is the full chat-completions URL, ``None`` when
    the URL depends on the user's account (``url_hint`` then shows its shape).
    """

    key: str
    aliases: tuple[str, ...]
    class_name: str
    genai_provider_name: str
    pricing_provider: str
    default_api_url: str | None
    requires_api_key: bool = True
    profile: ChatCompletionsProfile = _OPENAI_SHAPE
    url_hint: str | None = None
    price_provider: str | None = None
    """The ``genai-prices`` provider id whose prices apply when no price file names the model;
    ``None``: the database has none for this provider (local servers stay unpriced unless the user
    gives a price)."""

    @property
    def names(self) -> tuple[str, ...]:
        """The canonical key followed by every alias."""
        return (self.key, *self.aliases)


# OpenAI rejects max_tokens for reasoning models; max_completion_tokens works for all of them.
_OPENAI = ChatCompletionsProfile(max_tokens_field="max_completion_tokens")

CATALOG: tuple[CatalogRow, ...] = (
    CatalogRow(
        "OPENAI",
        (),
        "OpenAI_API",
        "openai",
        "openai",
        "https://api.openai.com/v1/chat/completions",
        profile=_OPENAI,
        price_provider="openai",
    ),
    CatalogRow(
        "OPENROUTER",
        (),
        "OpenRouter_API",
        "openrouter",
        "openrouter",
        "https://openrouter.ai/api/v1/chat/completions",
        profile=ChatCompletionsProfile(
            cost_path=("cost",),  # USD (credits are dollars)
            reasoning_request=ReasoningRequest.OPENROUTER,
            send_stream_options=False,  # usage always comes on the last chunk; the flag is a no-op
        ),
        price_provider="openrouter",
    ),
    CatalogRow(
        "GROQ",
        (),
        "Groq_API",
        "groq",
        "groq",
        "https://api.groq.com/openai/v1/chat/completions",
        profile=ChatCompletionsProfile(stream_usage_paths=(("usage",), ("x_groq", "usage"))),
        price_provider="groq",
    ),
    CatalogRow(
        "MISTRAL",
        ("MISTRALAI", "MISTRAL_AI"),
        "MistralAI_API",
        "mistral_ai",
        "mistral",
        "https://api.mistral.ai/v1/chat/completions",
        profile=ChatCompletionsProfile(
            # The schema has all three; the misspelt one is real.
            cached_tokens_paths=(
                ("prompt_tokens_details", "cached_tokens"),
                ("prompt_token_details", "cached_tokens"),
                ("num_cached_tokens",),
            ),
            # Mistral's request schema has OpenAI's "reasoning_effort" (none, minimal, low ... xhigh).
            reasoning_request=ReasoningRequest.EFFORT,
            send_stream_options=False,  # not in Mistral's request schema; usage comes on the last chunk
        ),
        price_provider="mistral",
    ),
    CatalogRow(
        "DEEPSEEK",
        ("DEEP_SEEK",),
        "DeepSeek_API",
        "deepseek",
        "deepseek",
        "https://api.deepseek.com/chat/completions",
        profile=ChatCompletionsProfile(
            # prompt_tokens = hit + miss; prefer the hit count when both shapes are present.
            cached_tokens_paths=(("prompt_cache_hit_tokens",), ("prompt_tokens_details", "cached_tokens")),
            reasoning_request=ReasoningRequest.NONE,
        ),
        price_provider="deepseek",
    ),
    CatalogRow(
        "XAI",
        ("X_AI", "GROK"),
        "XAI_API",
        "x_ai",
        "xai",
        "https://api.x.ai/v1/chat/completions",
        profile=ChatCompletionsProfile(
            reasoning_in_output=False,  # total = prompt + completion + reasoning
            cost_path=("cost_in_usd_ticks",),
            cost_unit_usd=Decimal("1E-10"),  # 1 USD = 10,000,000,000 ticks
            default_reasoning_effort="high",  # grok-3-mini accepts only low/high
        ),
        price_provider="x-ai",
    ),
    CatalogRow(
        "TOGETHER",
        ("TOGETHERAI", "TOGETHER_AI"),
        "TogetherAI_API",
        "together_ai",
        "together",
        "https://api.together.xyz/v1/chat/completions",
        price_provider="together",
    ),
    CatalogRow(
        "FIREWORKS",
        ("FIREWORKSAI", "FIREWORKS_AI"),
        "FireworksAI_API",
        "fireworks_ai",
        "fireworks",
        "https://api.fireworks.ai/inference/v1/chat/completions",
        price_provider="fireworks",
    ),
    CatalogRow(
        "CEREBRAS",
        (),
        "Cerebras_API",
        "cerebras",
        "cerebras",
        "https://api.cerebras.ai/v1/chat/completions",
        price_provider="cerebras",
    ),
    CatalogRow(
        "PERPLEXITY",
        (),
        "Perplexity_API",
        "perplexity",
        "perplexity",
        "https://api.perplexity.ai/chat/completions",
        profile=ChatCompletionsProfile(
            # Deep-research samples: total_tokens = prompt + completion, reasoning (billed apart) is outside.
            reasoning_tokens_paths=(("reasoning_tokens",), ("completion_tokens_details", "reasoning_tokens")),
            reasoning_in_output=False,
            cost_path=("cost", "total_cost"),
            send_stream_options=False,  # the final chunk carries usage and the real cost unasked
        ),
        price_provider="perplexity",
    ),
    CatalogRow(
        "SAMBANOVA",
        ("SAMBA_NOVA",),
        "SambaNova_API",
        "sambanova",
        "sambanova",
        "https://api.sambanova.ai/v1/chat/completions",
    ),
    CatalogRow(
        "NVIDIA",
        ("NVIDIA_NIM", "NIM"),
        "NvidiaNIM_API",
        "nvidia_nim",
        "nvidia",
        "https://integrate.api.nvidia.com/v1/chat/completions",
    ),
    CatalogRow(
        "NEBIUS",
        (),
        "Nebius_API",
        "nebius",
        "nebius",
        "https://api.tokenfactory.nebius.com/v1/chat/completions",
    ),
    CatalogRow(
        "COHERE",
        (),
        "Cohere_API",
        "cohere",
        "cohere",
        "https://api.cohere.ai/compatibility/v1/chat/completions",
        price_provider="cohere",
    ),
    CatalogRow(
        "MOONSHOT",
        ("MOONSHOTAI", "MOONSHOT_AI", "KIMI"),
        "MoonshotAI_API",
        "moonshot_ai",
        "moonshot",
        "https://api.moonshot.ai/v1/chat/completions",
        profile=ChatCompletionsProfile(
            cached_tokens_paths=(("cached_tokens",), ("prompt_tokens_details", "cached_tokens")),
            reasoning_request=ReasoningRequest.NONE,
            stream_usage_paths=(("usage",), ("choices", 0, "usage")),
        ),
        price_provider="moonshotai",
    ),
    CatalogRow(
        "DASHSCOPE",
        ("DASH_SCOPE", "ALIBABA", "ALIBABA_CLOUD", "QWEN"),
        "DashScope_API",
        "dashscope",
        "dashscope",
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1/chat/completions",
        profile=ChatCompletionsProfile(
            # Both reads and writes are inside prompt_tokens.
            cache_write_paths=(
                ("prompt_tokens_details", "cache_creation_input_tokens"),
                ("prompt_tokens_details", "cache_write_tokens"),
            ),
            reasoning_request=ReasoningRequest.ENABLE_THINKING,
        ),
    ),
    CatalogRow(
        "CLOUDFLARE",
        ("CLOUDFLARE_WORKERS_AI", "WORKERS_AI"),
        "CloudflareWorkersAI_API",
        "cloudflare_workers_ai",
        "cloudflare",
        None,
        url_hint="https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/v1/chat/completions",
        price_provider="cloudflare",
    ),
    CatalogRow(
        "CLOUDFLARE_AI_GATEWAY",
        ("AI_GATEWAY",),
        "CloudflareAIGateway_API",
        "cloudflare_ai_gateway",
        "cloudflare_ai_gateway",
        None,
        url_hint="https://gateway.ai.cloudflare.com/v1/{account_id}/{gateway_id}/compat/chat/completions",
    ),
    CatalogRow(
        "GITHUB",
        ("GITHUB_MODELS",),
        "GitHubModels_API",
        "github_models",
        "github",
        "https://models.github.ai/inference/chat/completions",
        profile=ChatCompletionsProfile(
            extra_headers=(("accept", "application/vnd.github+json"), ("x-github-api-version", "2022-11-28")),
        ),
    ),
    CatalogRow(
        "BEDROCK",
        ("AMAZON_BEDROCK", "AWS_BEDROCK"),
        "Bedrock_API",
        "aws.bedrock",
        "bedrock",
        None,
        url_hint="https://bedrock-runtime.{region}.amazonaws.com/openai/v1/chat/completions",
        price_provider="aws",
    ),
    CatalogRow(
        "MICROSOFT_FOUNDRY",
        ("MS_FOUNDRY", "AZURE_FOUNDRY"),
        "MicrosoftFoundry_API",
        "azure.ai.inference",
        "azure",
        None,
        profile=ChatCompletionsProfile(
            auth=AuthStyle.API_KEY_HEADER, default_query=(("api-version", "2024-05-01-preview"),)
        ),
        url_hint="https://{resource}.services.ai.azure.com/models/chat/completions",
        price_provider="azure",
    ),
    CatalogRow(
        "AZURE_OPENAI",
        ("AZURE_OPEN_AI",),
        "AzureOpenAI_API",
        "azure.ai.openai",
        "azure",
        None,
        profile=ChatCompletionsProfile(
            max_tokens_field="max_completion_tokens",
            auth=AuthStyle.API_KEY_HEADER,
            default_query=(("api-version", "2024-10-21"),),
        ),
        url_hint="https://{resource}.openai.azure.com/openai/deployments/{deployment}/chat/completions",
        price_provider="azure",
    ),
    CatalogRow(
        "GEMINI_ENTERPRISE",
        ("GOOGLE_GEMINI_ENTERPRISE", "GOOGLE_OPENAI"),
        "GeminiEnterprise_API",
        "gcp.vertex_ai",
        "vertex",  # Vertex AI's prices (issue 21), else the database's Google prices
        None,
        # Observed on Gemini's OpenAI layer: thoughts are in total_tokens only (re-verify on Vertex).
        profile=ChatCompletionsProfile(reasoning_in_output=False, reasoning_from_total=True),
        url_hint="https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/{location}"
        "/endpoints/openapi/chat/completions",
        price_provider="google",
    ),
    CatalogRow(
        "OLLAMA",
        (),
        "Ollama_API",
        "ollama",
        "ollama",
        "http://localhost:11434/v1/chat/completions",
        requires_api_key=False,
    ),
    CatalogRow(
        "LMSTUDIO",
        ("LM_STUDIO",),
        "LMStudio_API",
        "lmstudio",
        "lmstudio",
        "http://localhost:1234/v1/chat/completions",
        requires_api_key=False,
    ),
    CatalogRow(
        "VLLM",
        (),
        "VLLM_API",
        "vllm",
        "vllm",
        "http://localhost:8000/v1/chat/completions",
        requires_api_key=False,
    ),
    CatalogRow(
        "SGLANG",
        (),
        "SGLang_API",
        "sglang",
        "sglang",
        "http://localhost:30000/v1/chat/completions",
        requires_api_key=False,
        profile=ChatCompletionsProfile(
            reasoning_tokens_paths=(("reasoning_tokens",), ("completion_tokens_details", "reasoning_tokens")),
        ),
    ),
    CatalogRow(
        "LLAMA_CPP",
        ("LLAMACPP", "LLAMA_CPP_PYTHON"),
        "LlamaCpp_API",
        "llama_cpp",
        "llama_cpp",
        "http://localhost:8080/v1/chat/completions",
        requires_api_key=False,
    ),
)

_BY_KEY = {entry.key: entry for entry in CATALOG}


def catalog_row(key: str) -> CatalogRow:
    """The catalogue row whose canonical key is ``key`` (exact, upper case)."""
    return _BY_KEY[key]


class CatalogProvider(OpenAICompatible_API):
    """A built-in OpenAI-compatible provider: a :class:`CatalogRow` bound to the shared implementation.

    ``class X(CatalogProvider, row=catalog_row("KEY"))`` copies the row into the class attributes the rest of
    statek reads (``provider_key``, ``genai_provider_name``, ``pricing_provider``, ``price_provider``, ``default_api_url``,
    ``requires_api_key``, ``profile``). Subclassing a bound class without ``row=`` keeps its row.
    """

    row: ClassVar[CatalogRow]
    price_provider: ClassVar[str | None] = None

    def __init_subclass__(cls, row: CatalogRow | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if row is None:
            return
        if row.class_name != cls.__name__:
            raise TypeError(f"catalogue row {row.key} names class {row.class_name}, not {cls.__name__}")
        cls.row = row
        cls.provider_key = row.key
        cls.genai_provider_name = row.genai_provider_name
        cls.pricing_provider = row.pricing_provider
        cls.price_provider = row.price_provider
        cls.default_api_url = row.default_api_url
        cls.requires_api_key = row.requires_api_key
        cls.profile = row.profile


class OpenAI_API(CatalogProvider, row=catalog_row("OPENAI")):
    """OpenAI Chat Completions."""


class OpenRouter_API(CatalogProvider, row=catalog_row("OPENROUTER")):
    """OpenRouter: reports its charge in ``usage.cost`` (USD)."""


class Groq_API(CatalogProvider, row=catalog_row("GROQ")):
    """Groq."""


class MistralAI_API(CatalogProvider, row=catalog_row("MISTRAL")):
    """Mistral AI."""


class DeepSeek_API(CatalogProvider, row=catalog_row("DEEPSEEK")):
    """DeepSeek: cache hits in ``prompt_cache_hit_tokens``."""


class XAI_API(CatalogProvider, row=catalog_row("XAI")):
    """xAI Grok: reasoning counted outside ``completion_tokens``; cost in ``cost_in_usd_ticks``."""


class TogetherAI_API(CatalogProvider, row=catalog_row("TOGETHER")):
    """Together AI."""


class FireworksAI_API(CatalogProvider, row=catalog_row("FIREWORKS")):
    """Fireworks AI."""


class Cerebras_API(CatalogProvider, row=catalog_row("CEREBRAS")):
    """Cerebras."""


class Perplexity_API(CatalogProvider, row=catalog_row("PERPLEXITY")):
    """Perplexity Sonar: cost in ``usage.cost.total_cost``; reasoning outside the completion count."""


class SambaNova_API(CatalogProvider, row=catalog_row("SAMBANOVA")):
    """SambaNova Cloud."""


class NvidiaNIM_API(CatalogProvider, row=catalog_row("NVIDIA")):
    """NVIDIA NIM (build.nvidia.com)."""


class Nebius_API(CatalogProvider, row=catalog_row("NEBIUS")):
    """Nebius Token Factory (formerly AI Studio)."""


class Cohere_API(CatalogProvider, row=catalog_row("COHERE")):
    """Cohere, through its OpenAI compatibility API."""


class MoonshotAI_API(CatalogProvider, row=catalog_row("MOONSHOT")):
    """Moonshot / Kimi: cache hits in top-level ``usage.cached_tokens``."""


class DashScope_API(CatalogProvider, row=catalog_row("DASHSCOPE")):
    """Alibaba DashScope / Qwen (compatible mode); cache writes in ``cache_creation_input_tokens``."""


class CloudflareWorkersAI_API(CatalogProvider, row=catalog_row("CLOUDFLARE")):
    """Cloudflare Workers AI (account URL required)."""


class CloudflareAIGateway_API(CatalogProvider, row=catalog_row("CLOUDFLARE_AI_GATEWAY")):
    """Cloudflare AI Gateway, unified OpenAI-compatible endpoint (gateway URL required)."""


class GitHubModels_API(CatalogProvider, row=catalog_row("GITHUB")):
    """GitHub Models (a PAT with ``models:read``)."""


class Bedrock_API(CatalogProvider, row=catalog_row("BEDROCK")):
    """Amazon Bedrock, OpenAI-compatible endpoint with a Bedrock API key (region URL required)."""


class MicrosoftFoundry_API(CatalogProvider, row=catalog_row("MICROSOFT_FOUNDRY")):
    """Microsoft Foundry models endpoint (``api-key`` header; resource URL required)."""


class AzureOpenAI_API(CatalogProvider, row=catalog_row("AZURE_OPENAI")):
    """Azure OpenAI deployment (``api-key`` header, ``api-version`` query; deployment URL required)."""


class GeminiEnterprise_API(CatalogProvider, row=catalog_row("GEMINI_ENTERPRISE")):
    """Gemini on Vertex AI through Google's OpenAI-compatible endpoint (project URL required)."""


class Ollama_API(CatalogProvider, row=catalog_row("OLLAMA")):
    """A local Ollama server."""


class LMStudio_API(CatalogProvider, row=catalog_row("LMSTUDIO")):
    """A local LM Studio server."""


class VLLM_API(CatalogProvider, row=catalog_row("VLLM")):
    """A vLLM server."""


class SGLang_API(CatalogProvider, row=catalog_row("SGLANG")):
    """An SGLang server: ``reasoning_tokens`` at the top level of usage."""


class LlamaCpp_API(CatalogProvider, row=catalog_row("LLAMA_CPP")):
    """A llama.cpp server (``llama-server`` or llama-cpp-python)."""
