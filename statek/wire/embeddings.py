"""Embedding answers: OpenAI-compatible ``/embeddings`` and Gemini ``embedContent`` /
``batchEmbedContents`` / Vertex ``predict``. Only usage matters here: embeddings bill input tokens.

* OpenAI-compatible: ``usage.prompt_tokens`` (``total_tokens`` when it is missing), ``model``.
* Gemini API: ``usageMetadata.promptTokenCount``.
* Vertex AI ``predict``: the sum of ``predictions[].embeddings.statistics.token_count``.

An answer without any of these has ``has_usage`` False: it is recorded as not metered, never as $0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..types import CallDetail
from .answer import Answer
from .errors import WireFormatError
from .numbers import count, dig, reported_cost
from .validation import guarded

__all__ = ["read_gemini", "read_openai"]


@guarded
def read_openai(body: Any, bytes_sent: int, bytes_received: int) -> Answer:
    """An OpenAI-compatible embeddings answer. Raises :class:`WireFormatError` for a body that is
    not an object or is an error object."""
    if not isinstance(body, Mapping):
        raise WireFormatError(f"expected a JSON object, got {type(body).__name__}")
    if body.get("error") and not body.get("data"):
        raise WireFormatError("the answer is an error")
    raw_usage = body.get("usage")
    has_usage = isinstance(raw_usage, Mapping)
    usage: Mapping[str, Any] = raw_usage if isinstance(raw_usage, Mapping) else {}
    tokens = count(usage.get("prompt_tokens"))
    tokens = count(usage.get("total_tokens")) if tokens is None else tokens
    model = body.get("model")
    detail = CallDetail(
        total_bytes_sent=bytes_sent,
        total_bytes_received=bytes_received,
        cost=reported_cost(usage.get("cost")),
        input_tokens=tokens or 0,
        response_model=model if isinstance(model, str) and model else None,
        has_usage=has_usage,
    )
    return Answer("", None, detail)


@guarded
def read_gemini(body: Any, bytes_sent: int, bytes_received: int) -> Answer:
    """A Gemini / Vertex embeddings answer (see the module docstring for where usage is)."""
    if not isinstance(body, Mapping):
        raise WireFormatError(f"expected a JSON object, got {type(body).__name__}")
    tokens = count(dig(body, ("usageMetadata", "promptTokenCount")))
    if tokens is None and isinstance(body.get("predictions"), list):
        counts = [count(dig(p, ("embeddings", "statistics", "token_count"))) for p in body["predictions"]]
        tokens = sum(c for c in counts if c is not None) if any(c is not None for c in counts) else None
    detail = CallDetail(
        total_bytes_sent=bytes_sent,
        total_bytes_received=bytes_received,
        cost=None,
        input_tokens=tokens or 0,
        has_usage=tokens is not None,
    )
    return Answer("", None, detail)
