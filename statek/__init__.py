"""statek: observability-first metering for LLM provider calls.

Call any of ~30 providers through one interface (:class:`LLM_API`); every call is wrapped in an
OpenTelemetry span and token/byte/cost counters, priced exactly from price tables, and accumulated
per job in ``LLM_Usage``. See the README for the quick start.
"""

from .chat import ChatHistoryItem, ChatRole, ChatStyle, ToolCall
from .llm_api import LLM_API, LLM_Response, LLM_Stats, add_provider
from .providers.anthropic import Claude_API, ClaudeAI_API
from .providers.catalog import (
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
    LMStudio_API,
    LlamaCpp_API,
    MicrosoftFoundry_API,
    MistralAI_API,
    MoonshotAI_API,
    Nebius_API,
    NvidiaNIM_API,
    Ollama_API,
    OpenAI_API,
    OpenRouter_API,
    Perplexity_API,
    SGLang_API,
    SambaNova_API,
    TogetherAI_API,
    VLLM_API,
    XAI_API,
)
from .providers.vertex import VertexAI_API

__all__ = [
    "AzureOpenAI_API",
    "Bedrock_API",
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
    "LLM_API",
    "LLM_Response",
    "LLM_Stats",
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
]
