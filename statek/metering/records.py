"""The values the engine passes around: a price row, a problem found while loading, and name keys."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Final, NamedTuple

from .cost import Prices

__all__ = ["PROVIDER_ALIASES", "PriceRow", "Problem", "RowKey", "normalise", "provider_key", "row_key"]


def normalise(name: str) -> str:
    """The matching key of a provider, family or model name: whitespace removed, case folded.

    ``"Open AI"`` and ``"OPENAI"`` give the same key, as do ``"gpt-4 turbo"`` and ``"GPT-4TURBO"``.
    """
    return "".join(name.split()).casefold()


PROVIDER_ALIASES: Final[Mapping[str, str]] = {
    "claude": "anthropic",
    "claudeai": "anthropic",
    "gemini": "google",
    "googleai": "google",
    "googlegemini": "google",
    "vertexai": "vertex",
    "vertex_ai": "vertex",
    "google_vertex": "vertex",
    "google_vertexai": "vertex",
    "googlevertex": "vertex",
    "gemini_enterprise": "vertex",
    "xai": "x-ai",
    "x_ai": "x-ai",
    "grok": "x-ai",
    "bedrock": "aws",
    "amazon_bedrock": "aws",
    "aws_bedrock": "aws",
    "azure_openai": "azure",
    "azureopenai": "azure",
    "mistralai": "mistral",
    "mistral_ai": "mistral",
    "deep_seek": "deepseek",
    "moonshot": "moonshotai",
    "moonshot_ai": "moonshotai",
    "kimi": "moonshotai",
    "togetherai": "together",
    "together_ai": "together",
    "fireworksai": "fireworks",
    "fireworks_ai": "fireworks",
}
"""Normalised provider names folded to one key: the ``genai-prices`` provider id where it has one
(``GEMINI`` → ``google``, ``BEDROCK`` → ``aws``, ``XAI`` → ``x-ai``), so a price-file row and the
database speak of the same provider. Vertex AI (``VERTEX``, ``VERTEXAI``, ``GEMINI_ENTERPRISE``) is
its own key, ``vertex``: Google bills some models there at other prices than on the Gemini API; a
Vertex call no ``vertex`` row prices falls back to the database's ``google`` prices."""


RowKey = tuple[str, str, str]
"""Normalised ``(provider, family, model)``."""


def provider_key(provider: str) -> str:
    """The normalised provider name, aliases folded (``"Gemini:Flex"`` → ``"google:flex"``)."""
    key = normalise(provider)
    if ":" in key:  # a service tier's provider, "openai:flex": the provider part folds
        base, tier = key.split(":", 1)
        return f"{PROVIDER_ALIASES.get(base, base)}:{tier}"
    return PROVIDER_ALIASES.get(key, key)


def row_key(row: PriceRow) -> RowKey:
    """The normalised ``(provider, family, model)`` of ``row``."""
    return provider_key(row.provider), normalise(row.model_family), normalise(row.model)


class Problem(NamedTuple):
    """One thing wrong with a price file. ``line`` and ``column`` are ``None`` when they do not apply.

    A ``warning`` (a repeated key whose later row wins, an unknown column) does not stop a strict
    load; anything else is an error.
    """

    path: str
    line: int | None
    column: str | None
    reason: str
    warning: bool = False

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.column}: {self.reason}" if self.column else f"{where}: {self.reason}"


class PriceRow(NamedTuple):
    """One validated row of a price table. Prices are USD per million tokens, exact.

    A flat tuple because a table may hold hundreds of thousands of them; :attr:`prices` and
    :attr:`long_context` give the structured view. ``valid_from`` is timezone-aware (UTC when the
    file gave no offset), ``None`` for "always". ``path``/``line`` say where the row came from
    (``"<set_model_pricing>"`` for rows set in code).
    """

    provider: str
    model_family: str
    model: str
    input: Decimal
    cached: Decimal | None
    output: Decimal
    cache_write_5m: Decimal | None = None
    cache_write_1h: Decimal | None = None
    long_context_threshold: int | None = None
    long_context_input: Decimal | None = None
    long_context_cached: Decimal | None = None
    long_context_output: Decimal | None = None
    long_context_cache_write_5m: Decimal | None = None
    long_context_cache_write_1h: Decimal | None = None
    valid_from: datetime | None = None
    currency: str = "USD"
    source: str = ""
    checked: date | None = None
    path: str = ""
    line: int = 0
    match: str = ""
    reasoning: Decimal | None = None
    request_fee_per_k: Decimal | None = None

    @property
    def prices(self) -> Prices:
        """The standard tier."""
        return Prices(
            self.input, self.output, self.cached, self.cache_write_5m, self.cache_write_1h, self.reasoning
        )

    @property
    def long_context(self) -> Prices | None:
        """The tier used above :attr:`long_context_threshold` prompt tokens, if the row has one."""
        if (
            self.long_context_threshold is None
            or self.long_context_input is None
            or self.long_context_output is None
        ):
            return None
        return Prices(
            self.long_context_input,
            self.long_context_output,
            self.long_context_cached,
            self.long_context_cache_write_5m,
            self.long_context_cache_write_1h,
            self.reasoning,
        )

    @property
    def location(self) -> str:
        """``path:line`` of the row, for messages."""
        return f"{self.path}:{self.line}" if self.line else self.path

    def price_fields(self) -> tuple[object, ...]:
        """Everything that decides a price; two rows with equal keys and equal price fields agree."""
        return (*self[3:16], self.reasoning, self.request_fee_per_k)
