"""statek: observability-first metering for LLM provider calls.

Call any of ~30 providers through one interface (:class:`LLM_API`); every call is wrapped in an
OpenTelemetry span and token/byte/cost counters, priced exactly from price tables, and accumulated
per job in ``LLM_Usage``. See the README for the quick start.
"""

from typing import TYPE_CHECKING, Any

from .chat import ChatHistoryItem, ChatRole, ChatStyle, ToolCall
from .exceptions import BudgetExceededError
from .executors.budget import Budget
from .executors.job import Job
from .executors.llm_usage import LLM_Usage
from .instrumentation import (
    async_http_client,
    http_client,
    instrument_clients,
    instrument_httpx,
    uninstrument_clients,
    uninstrument_httpx,
)
from .llm_api import LLM_API, LLM_Response, LLM_Stats, add_provider
from .providers import registry as _registry  # noqa: F401 - plugs the provider registry into LLM_API.get
from .providers.anthropic import Claude_API, ClaudeAI_API
from .providers.catalog import (
    VLLM_API,
    XAI_API,
    AzureOpenAI_API,
    Bedrock_API,
    Cerebras_API,
    CloudflareAIGateway_API,
    CloudflareWorkersAI_API,
    Cohere_API,
    DashScope_API,
    DeepSeek_API,
    FireworksAI_API,
    GeminiEnterprise_API,
    GitHubModels_API,
    Groq_API,
    LlamaCpp_API,
    LMStudio_API,
    MicrosoftFoundry_API,
    MistralAI_API,
    MoonshotAI_API,
    Nebius_API,
    NvidiaNIM_API,
    Ollama_API,
    OpenAI_API,
    OpenRouter_API,
    Perplexity_API,
    SambaNova_API,
    SGLang_API,
    TogetherAI_API,
)
from .providers.vertex import VertexAI_API

__all__ = [
    "AzureOpenAI_API",
    "Bedrock_API",
    "Budget",
    "BudgetExceededError",
    "Cerebras_API",
    "ChatHistoryItem",
    "ChatRole",
    "ChatStyle",
    "ClaudeAI_API",
    "Claude_API",
    "CloudflareAIGateway_API",
    "CloudflareWorkersAI_API",
    "Cohere_API",
    "DashScope_API",
    "DeepSeek_API",
    "FireworksAI_API",
    "GeminiEnterprise_API",
    "GitHubModels_API",
    "Groq_API",
    "Job",
    "LLM_API",
    "LLM_Response",
    "LLM_Stats",
    "LLM_Usage",
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
    "ToolCall",
    "VLLM_API",
    "VertexAI_API",
    "XAI_API",
    "add_provider",
    "async_http_client",
    "http_client",
    "instrument",
    "instrument_clients",
    "instrument_httpx",
    "shutdown",
    "uninstrument_clients",
    "uninstrument_httpx",
]

if TYPE_CHECKING:
    from .exporters import instrument, shutdown


def __getattr__(name: str) -> Any:
    # The exporters load the OpenTelemetry SDK and prometheus_client's exposition code; a library
    # that only meters (and leaves export to its host application) never pays for that import.
    if name in ("instrument", "shutdown"):
        from . import exporters

        return getattr(exporters, name)
    raise AttributeError(f"module 'statek' has no attribute {name!r}")
