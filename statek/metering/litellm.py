"""Convert LiteLLM's ``model_prices_and_context_window.json`` into rows of the STATEK metering format.

LiteLLM keeps USD prices **per token** as JSON numbers; they are parsed straight to ``Decimal`` (never
through a float) and multiplied by one million. Mapped fields:

=========================================================  =====================================
LiteLLM field                                              price-file column
=========================================================  =====================================
``input_cost_per_token``                                   ``INPUT_PRICE_PER_M``
``output_cost_per_token``                                  ``OUTPUT_PRICE_PER_M``
``cache_read_input_token_cost``                            ``INPUT_PRICE_PER_CACHED_M``
``cache_creation_input_token_cost``                        ``CACHE_WRITE_5M_PRICE_PER_M``
``cache_creation_input_token_cost_above_1hr``              ``CACHE_WRITE_1H_PRICE_PER_M``
``input_cost_per_token_above_{N}k_tokens`` (smallest N)    ``LONG_CONTEXT_*`` with threshold N*1000
``*_flex`` / ``*_priority`` / ``*_batches``                  a row of provider ``P:flex`` / ``P:priority``
                                                           / ``P:batch`` (a service tier's prices)
=========================================================  =====================================

Entries that are not chat/completion models (images, audio...) or have no token prices are skipped
and counted (embedding models are converted: their output price is 0). Malformed values are
reported per model and skipped. A price with more decimals than the format keeps
(:data:`~statek.metering.schema.MAX_DECIMALS`) is rounded half-even and counted in ``rounded``; two
LiteLLM entries that become the same provider and model with different prices are reported, and the
first is kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, Final

from . import schema as S
from .records import normalise, provider_key

__all__ = ["LITELLM_PROVIDERS", "LiteLLMConversion", "convert_litellm", "format_price"]

LITELLM_PROVIDERS: Final[Mapping[str, str]] = {
    "openai": "OPENAI",
    "text-completion-openai": "OPENAI",
    "anthropic": "ANTHROPIC",
    "gemini": "GEMINI",
    "vertex_ai": "VERTEX",
    "vertex_ai-language-models": "VERTEX",
    "deepseek": "DEEPSEEK",
    "xai": "XAI",
    "mistral": "MISTRAL",
    "groq": "GROQ",
    "together_ai": "TOGETHER",
    "fireworks_ai": "FIREWORKS",
    "openrouter": "OPENROUTER",
    "cerebras": "CEREBRAS",
    "perplexity": "PERPLEXITY",
    "moonshot": "MOONSHOT",
    "dashscope": "DASHSCOPE",
    "bedrock": "BEDROCK",
    "bedrock_converse": "BEDROCK",
    "azure": "AZURE_OPENAI",
    "nvidia_nim": "NVIDIA",
    "sambanova": "SAMBANOVA",
    "cohere_chat": "COHERE",
}
"""LiteLLM ``litellm_provider`` values and the statek provider keys they become (others: upper-cased)."""

_CHAT_MODES: Final = frozenset({"chat", "completion", "responses", "embedding"})
_TIER_SUFFIXES: Final = (("_flex", "flex"), ("_priority", "priority"), ("_batches", "batch"))
_QUANTUM: Final = Decimal(1).scaleb(-S.MAX_DECIMALS)
_TIER: Final = re.compile(r"^input_cost_per_token_above_(\d+)k_tokens$")
_MILLION_DIGITS: Final = 6


@dataclass
class LiteLLMConversion:
    """The converted rows (as CSV cell dicts keyed by column), what was skipped, and problems."""

    rows: list[dict[str, str]] = field(default_factory=list)
    skipped: int = 0
    skipped_why: dict[str, int] = field(default_factory=dict)
    """Why entries were skipped: their ``mode`` (``image_generation``, ...) or ``no token price``."""
    problems: list[str] = field(default_factory=list)
    rounded: list[str] = field(default_factory=list)
    """``model: key`` of every price rounded to the format's precision."""


def format_price(value: Decimal) -> str:
    """Plain decimal notation without trailing zeros: ``2.5E+0`` → ``"2.5"``, ``1E+1`` → ``"10"``."""
    text = format(value.normalize(), "f")
    return text


def _per_million(value: Any, what: str, rounded: list[str]) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise ValueError(f"{what} is not a number: {value!r}")  # noqa: TRY004 - bad data, reported per model
    per_token = Decimal(value)
    if not per_token.is_finite() or (per_token and not -30 < per_token.adjusted() < 6):
        raise ValueError(f"{what} is out of range: {str(value)[:40]}")
    price = per_token.scaleb(_MILLION_DIGITS)
    exponent = price.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -S.MAX_DECIMALS:
        price = price.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)
        rounded.append(what)
    if price < 0:
        raise ValueError(f"{what} is negative: {value!r}")
    if price > S.MAX_PRICE:
        raise ValueError(f"{what} is above {S.MAX_PRICE} USD per million tokens: {str(value)[:40]}")
    return price


def _provider(litellm_provider: str) -> str:
    return (
        LITELLM_PROVIDERS.get(litellm_provider)
        or re.sub(r"[^A-Za-z0-9]+", "_", litellm_provider).strip("_").upper()
    )


def convert_litellm(path: str | Path, *, checked: str = "") -> LiteLLMConversion:
    """Read LiteLLM's JSON price file at ``path`` and convert every chat model with token prices.

    Raises ``ValueError`` when the file is not a JSON object.
    """
    text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text, parse_float=Decimal)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of models, found {type(data).__name__}")  # noqa: TRY004
    out = LiteLLMConversion()
    source = f"litellm:{Path(path).name}"
    seen: dict[tuple[str, str], tuple[str, dict[str, str]]] = {}
    for name, spec in data.items():
        if name == "sample_spec" or not isinstance(spec, dict):
            out.skipped += 1
            continue
        mode = spec.get("mode")
        why = None
        if mode is not None and mode not in _CHAT_MODES:
            why = str(mode)[:40]
        elif "input_cost_per_token" not in spec or "output_cost_per_token" not in spec:
            why = "no token price"
        if why is not None:
            out.skipped += 1
            out.skipped_why[why] = out.skipped_why.get(why, 0) + 1
            continue
        rounded: list[str] = []
        try:
            rows = [
                _row(name, spec, source, checked, rounded),
                *_tier_rows(name, spec, source, checked, rounded),
            ]
        except ValueError as exc:
            out.problems.append(f"{path}: {name}: {exc}")
            continue
        finally:
            out.rounded.extend(f"{name}: {key}" for key in rounded)
        for row in rows:
            key = (provider_key(row[S.PROVIDER]), normalise(row[S.MODEL]))
            earlier = seen.get(key)
            if earlier is None:
                seen[key] = (name, row)
                out.rows.append(row)
            elif _prices_of(earlier[1]) != _prices_of(row):
                out.problems.append(
                    f"{path}: {name}: same provider and model as {earlier[0]!r} with different prices; "
                    f"kept {earlier[0]!r}"
                )
    return out


def _prices_of(row: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in row.items() if k in S.PRICE_COLUMNS or k == S.LC_THRESHOLD}


def _tier_rows(
    name: str, spec: dict[str, Any], source: str, checked: str, rounded: list[str]
) -> list[dict[str, str]]:
    """One row per service tier LiteLLM prices for this model (provider ``P:tier``)."""
    out = []
    for suffix, tier in _TIER_SUFFIXES:
        inp, outp = spec.get("input_cost_per_token" + suffix), spec.get("output_cost_per_token" + suffix)
        if inp is None or outp is None:
            continue
        tiered = {
            "input_cost_per_token": inp,
            "output_cost_per_token": outp,
            "litellm_provider": spec.get("litellm_provider"),
        }
        cached = spec.get("cache_read_input_token_cost" + suffix)
        if cached is not None:
            tiered["cache_read_input_token_cost"] = cached
        row = _row(name, tiered, source, checked, rounded)
        row[S.PROVIDER] = f"{row[S.PROVIDER]}:{tier}"
        out.append(row)
    return out


def _row(name: str, spec: dict[str, Any], source: str, checked: str, rounded: list[str]) -> dict[str, str]:
    litellm_provider = str(spec.get("litellm_provider") or "").strip()
    model = (
        name[len(litellm_provider) + 1 :]
        if litellm_provider and name.startswith(litellm_provider + "/")
        else name
    )
    row = {
        S.PROVIDER: _provider(litellm_provider) if litellm_provider else "UNKNOWN",
        S.MODEL_FAMILY: "",
        S.MODEL: model,
        S.CURRENCY: S.DEFAULT_CURRENCY,
        S.SOURCE: source,
        S.CHECKED: checked,
    }
    optional = {
        S.CACHED: "cache_read_input_token_cost",
        S.CACHE_WRITE_5M: "cache_creation_input_token_cost",
        S.CACHE_WRITE_1H: "cache_creation_input_token_cost_above_1hr",
    }
    row[S.INPUT] = format_price(_per_million(spec["input_cost_per_token"], "input_cost_per_token", rounded))
    row[S.OUTPUT] = format_price(
        _per_million(spec["output_cost_per_token"], "output_cost_per_token", rounded)
    )
    for column, key in optional.items():
        if spec.get(key) is not None:
            row[column] = format_price(_per_million(spec[key], key, rounded))
    tiers = sorted(int(m.group(1)) for key in spec if (m := _TIER.match(key)) and spec[key] is not None)
    for thousands in tiers:
        suffix = f"_above_{thousands}k_tokens"
        if spec.get("output_cost_per_token" + suffix) is None:
            continue
        row[S.LC_THRESHOLD] = str(thousands * 1000)
        row[S.LC_INPUT] = format_price(
            _per_million(spec["input_cost_per_token" + suffix], "input" + suffix, rounded)
        )
        row[S.LC_OUTPUT] = format_price(
            _per_million(spec["output_cost_per_token" + suffix], "output" + suffix, rounded)
        )
        for column, key in (
            (S.LC_CACHED, "cache_read_input_token_cost"),
            (S.LC_CACHE_WRITE_5M, "cache_creation_input_token_cost"),
        ):
            if spec.get(key + suffix) is not None:
                row[column] = format_price(_per_million(spec[key + suffix], key + suffix, rounded))
        break  # the format has one long-context tier: the lowest threshold
    return row
