"""Embedding answers: OpenAI-compatible ``/embeddings`` and Gemini ``embedContent`` / ``batchEmbedContents``.

Vectors are deterministic (derived from the reply's token) and short (8 dimensions). Usage is the
behaviour's ``input_tokens`` only: embeddings bill the input, nothing else. OpenAI's answer honours
``encoding_format`` (``"base64"``, which the official SDK asks for by default, packs little-endian
float32 values); Gemini reports ``usageMetadata.promptTokenCount``.
"""

from __future__ import annotations

import base64
import random
import struct
from typing import Any

from . import gemini_wire, openai_wire
from ._wire import WireFormat, json_response
from .behavior import Reply, Usage
from .exchange import SimRequest, SimResponse

__all__ = ["GEMINI", "OPENAI"]

DIMENSIONS = 8


def _inputs(request: SimRequest) -> int:
    body = request.body if isinstance(request.body, dict) else {}
    if isinstance(body.get("requests"), list):  # Gemini batchEmbedContents
        return max(len(body["requests"]), 1)
    given = body.get("input")
    return len(given) if isinstance(given, list) and given and not isinstance(given[0], int) else 1


def _vector(reply: Reply, index: int) -> list[float]:
    rng = random.Random(f"{reply.token}:{index}")
    # Values exactly representable in float32, so base64 and JSON answers decode to the same floats.
    return [round(rng.uniform(-1, 1) * 1024) / 1024 for _ in range(DIMENSIONS)]


def render_openai(reply: Reply, request: SimRequest) -> SimResponse:
    """An OpenAI ``list`` of embeddings with ``usage.prompt_tokens``."""
    body = request.body if isinstance(request.body, dict) else {}
    base64_format = body.get("encoding_format") == "base64"
    data = []
    for index in range(_inputs(request)):
        vector = _vector(reply, index)
        encoded: Any = (
            base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if base64_format else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = reply.usage.input_tokens
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    answer = {"object": "list", "data": data, "model": reply.response_model, "usage": usage}
    return json_response(200, answer, reply=reply, usage=Usage(input_tokens=tokens), wire_usage=usage)


def render_gemini(reply: Reply, request: SimRequest) -> SimResponse:
    """Gemini ``embeddings`` (batch) or ``embedding`` (single) with ``usageMetadata``."""
    tokens = reply.usage.input_tokens
    usage = {"promptTokenCount": tokens, "totalTokenCount": tokens}
    vectors = [{"values": _vector(reply, i)} for i in range(_inputs(request))]
    batch = request.path.endswith(":batchEmbedContents")
    answer: dict[str, Any] = {"embeddings": vectors} if batch else {"embedding": vectors[0]}
    answer["usageMetadata"] = usage
    return json_response(200, answer, reply=reply, usage=Usage(input_tokens=tokens), wire_usage=usage)


OPENAI = WireFormat("openai_embeddings", render_openai, openai_wire.error_body)
"""OpenAI-compatible embeddings."""
GEMINI = WireFormat("gemini_embeddings", render_gemini, gemini_wire.error_body)
"""Gemini embeddings."""
