"""How an answer says it was billed beyond its token counts: the service tier and the modality split.

* :func:`tier_label`: the service tier an answer names (OpenAI ``service_tier``, Anthropic
  ``usage.service_tier``, Vertex ``usageMetadata.trafficType``), as one lower-case label:
  ``default``, ``flex``, ``priority``, ``batch``, ``provisioned_throughput``, ...;
* :func:`openai_modalities` and :func:`gemini_modalities`: the audio and image token counts of an
  OpenAI-shaped ``usage`` object or a Gemini ``usageMetadata``, in the order of
  :data:`statek.metering.cost.MODALITY_ORDER` (input audio, cached audio, output audio, input image,
  output image), each clamped to its parent count.

Pure functions over parsed JSON; counts go through :func:`~statek.wire.numbers.count` (same bounds).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from .numbers import count, dig

__all__ = ["NO_MODALITIES", "Modalities", "gemini_modalities", "openai_modalities", "tier_label"]

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


def tier_label(value: Any) -> str | None:
    """The service tier ``value`` names, lower case (Vertex's ``ON_DEMAND_FLEX`` → ``flex``,
    ``ON_DEMAND`` → ``default``); ``None`` for an absent, empty, over-long or non-text value."""
    if not isinstance(value, str) or not value or len(value) > _MAX_TIER_CHARS:
        return None
    label = value.strip().lower()
    if not label or not all(c.isalnum() or c in "_-" for c in label):
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
