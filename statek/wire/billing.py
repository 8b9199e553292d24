"""How an answer says it was billed beyond its token counts: the service tier and the modality split.

* :func:`tier_label`: the service tier an answer names (OpenAI ``service_tier``, Anthropic
  ``usage.service_tier``, Vertex ``usageMetadata.trafficType``), as one lower-case label:
  ``default``, ``flex``, ``priority``, ``batch``, ``provisioned_throughput``, ...; Perplexity's
  ``usage.search_context_size`` (``low`` / ``medium`` / ``high``, which sets its request fee) is read
  as its tier;
* :func:`reported_billing`: what an OpenAI-shaped ``usage`` says the call cost beyond its ``cost``
  field (OpenRouter BYOK: its fee plus ``cost_details.upstream_inference_cost``) and which part of that
  cost is no token price (Perplexity's request fee and search queries, OpenRouter's server tools and
  BYOK fee);
* :func:`openai_modalities` and :func:`gemini_modalities`: the audio and image token counts of an
  OpenAI-shaped ``usage`` object or a Gemini ``usageMetadata``, in the order of
  :data:`statek.metering.cost.MODALITY_ORDER` (input audio, cached audio, output audio, input image,
  output image), each clamped to its parent count.

Pure functions over parsed JSON; counts go through :func:`~statek.wire.numbers.count` (same bounds).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from ..limits import MAX_COST_USD
from .numbers import count, dig, reported_cost

__all__ = [
    "NO_MODALITIES",
    "Modalities",
    "gemini_modalities",
    "openai_modalities",
    "reported_billing",
    "tier_label",
]

Modalities = tuple[int, int, int, int, int]
"""(input audio, cached audio, output audio, input image, output image) tokens."""
NO_MODALITIES: Final[Modalities] = (0, 0, 0, 0, 0)

_MAX_TIER_CHARS: Final = 40
_VERTEX_TIERS: Final = {
    "on_demand": "default",
    "on_demand_flex": "flex",
    "on_demand_priority": "priority",
    "traffic_type_unspecified": None,
}
"""Vertex ``trafficType`` values in the tier names the other providers use."""
_TIER_CHARS: Final = re.compile(r"[\w-]+")
"""A tier label's characters, at least one: ``_``, ``-`` and what ``str.isalnum`` accepts (the word
class of a ``str`` pattern is exactly those and ``_``)."""


def tier_label(value: Any) -> str | None:
    """The service tier ``value`` names, lower case (Vertex's ``ON_DEMAND_FLEX`` → ``flex``,
    ``ON_DEMAND`` → ``default``); ``None`` for an absent, empty, over-long or non-text value."""
    if not isinstance(value, str) or not value or len(value) > _MAX_TIER_CHARS:
        return None
    label = value.strip().lower()
    if _TIER_CHARS.fullmatch(label) is None:
        return None
    return _VERTEX_TIERS.get(label, label)


def _at_most(value: int | None, limit: int) -> int:
    return min(value or 0, limit)


def openai_modalities(usage: Mapping[str, Any], prompt: int, completion: int) -> Modalities:
    """Audio and image counts of an OpenAI-shaped ``usage`` (``prompt_tokens_details`` /
    ``completion_tokens_details``; cached audio in ``prompt_tokens_details.cached_tokens_details``)."""
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    if not isinstance(prompt_details, Mapping) and not isinstance(completion_details, Mapping):
        return NO_MODALITIES
    audio = _at_most(count(dig(usage, ("prompt_tokens_details", "audio_tokens"))), prompt)
    image = _at_most(count(dig(usage, ("prompt_tokens_details", "image_tokens"))), prompt)
    cached_audio = _at_most(
        count(dig(usage, ("prompt_tokens_details", "cached_tokens_details", "audio_tokens"))), audio
    )
    out_audio = _at_most(count(dig(usage, ("completion_tokens_details", "audio_tokens"))), completion)
    out_image = _at_most(count(dig(usage, ("completion_tokens_details", "image_tokens"))), completion)
    return (audio, cached_audio, out_audio, image, out_image)


def _by_modality(details: Any) -> dict[str, int]:
    """A Gemini ``[{modality, tokenCount}, ...]`` list as ``{"AUDIO": n, ...}`` (repeats summed)."""
    out: dict[str, int] = {}
    if not isinstance(details, list):
        return out
    for item in details:
        if not isinstance(item, Mapping):
            continue
        modality, tokens = item.get("modality"), count(item.get("tokenCount"))
        if isinstance(modality, str) and tokens:
            out[modality.upper()] = out.get(modality.upper(), 0) + tokens
    return out


def gemini_modalities(usage: Mapping[str, Any], prompt: int, cached: int, candidates: int) -> Modalities:
    """Audio and image counts of a Gemini ``usageMetadata`` (``promptTokensDetails``,
    ``cacheTokensDetails``, ``candidatesTokensDetails``)."""
    keys = ("promptTokensDetails", "cacheTokensDetails", "candidatesTokensDetails")
    if not any(key in usage for key in keys):
        return NO_MODALITIES
    prompt_parts, cache_parts, out_parts = (_by_modality(usage.get(key)) for key in keys)
    audio = _at_most(prompt_parts.get("AUDIO"), prompt)
    cached_audio = _at_most(_at_most(cache_parts.get("AUDIO"), audio), cached)
    return (
        audio,
        cached_audio,
        _at_most(out_parts.get("AUDIO"), candidates),
        _at_most(prompt_parts.get("IMAGE"), prompt),
        _at_most(out_parts.get("IMAGE"), candidates),
    )


_PERPLEXITY_FEES: Final = ("request_cost", "search_queries_cost")


def reported_billing(usage: Mapping[str, Any], cost: Decimal | None) -> tuple[Decimal | None, Decimal | None]:
    """``(cost, explained)``: the call's whole reported cost and the part of it that is no token price.

    * OpenRouter BYOK (``is_byok: true``): ``cost`` is OpenRouter's fee only; the upstream provider
      bills the user's own key ``cost_details.upstream_inference_cost``: the call costs both. The fee
      is explained (no token price).
    * OpenRouter server tools (web search): ``upstream_inference_cost`` minus its prompt and
      completion parts is explained.
    * Perplexity (``cost`` an object): ``request_cost`` and ``search_queries_cost`` are explained.

    ``explained`` is ``None`` when the answer itemises nothing."""
    if cost is None:
        return None, None
    explained = Decimal(0)
    details = usage.get("cost_details")
    if isinstance(details, Mapping):
        upstream = reported_cost(details.get("upstream_inference_cost"))
        prompt = reported_cost(details.get("upstream_inference_prompt_cost"))
        completion = reported_cost(details.get("upstream_inference_completions_cost"))
        if upstream is not None and prompt is not None and completion is not None:
            explained += max(upstream - prompt - completion, Decimal(0))
        if usage.get("is_byok") is True and upstream is not None and cost + upstream <= MAX_COST_USD:
            explained += cost  # OpenRouter's BYOK fee
            cost += upstream
    breakdown = usage.get("cost")
    if isinstance(breakdown, Mapping):
        for key in _PERPLEXITY_FEES:
            fee = reported_cost(breakdown.get(key))
            if fee is not None:
                explained += fee
    return cost, (min(explained, cost) if explained else None)
