"""The price-file format: column names, which are required, what each holds.

A price file is CSV (``.csv`` or ``.txt``) with a header row. The six seed columns come first in the
STATEK metering format; every other column is optional and backward compatible, so a file with only
the six seed columns keeps working. Column names are matched case-insensitively and without
surrounding whitespace. See ``docs/pricing.md`` for the user-facing description.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CACHED",
    "CACHE_WRITE_1H",
    "CACHE_WRITE_5M",
    "CHECKED",
    "COLUMNS",
    "COMMENT_PREFIX",
    "CURRENCY",
    "DATE_COLUMNS",
    "DEFAULT_CURRENCY",
    "INPUT",
    "INTEGER_COLUMNS",
    "LC_CACHED",
    "LC_CACHE_WRITE_1H",
    "LC_CACHE_WRITE_5M",
    "LC_INPUT",
    "LC_OUTPUT",
    "LC_THRESHOLD",
    "MATCH",
    "MAX_DECIMALS",
    "MAX_FIELD_CHARS",
    "MAX_PRICE",
    "MAX_THRESHOLD",
    "MODEL",
    "MODEL_FAMILY",
    "OPTIONAL_PRICE_COLUMNS",
    "OUTPUT",
    "PRICE_COLUMNS",
    "PROVIDER",
    "REASONING",
    "REQUEST_FEE",
    "REQUIRED_COLUMNS",
    "SEED_COLUMNS",
    "SOURCE",
    "TEXT_COLUMNS",
    "VALID_FROM",
]

PROVIDER: Final = "PROVIDER"
MODEL_FAMILY: Final = "MODEL_FAMILY"
MODEL: Final = "MODEL"
INPUT: Final = "INPUT_PRICE_PER_M"
CACHED: Final = "INPUT_PRICE_PER_CACHED_M"
OUTPUT: Final = "OUTPUT_PRICE_PER_M"
CACHE_WRITE_5M: Final = "CACHE_WRITE_5M_PRICE_PER_M"
CACHE_WRITE_1H: Final = "CACHE_WRITE_1H_PRICE_PER_M"
LC_THRESHOLD: Final = "LONG_CONTEXT_THRESHOLD"
LC_INPUT: Final = "LONG_CONTEXT_INPUT_PRICE_PER_M"
LC_CACHED: Final = "LONG_CONTEXT_CACHED_PRICE_PER_M"
LC_OUTPUT: Final = "LONG_CONTEXT_OUTPUT_PRICE_PER_M"
LC_CACHE_WRITE_5M: Final = "LONG_CONTEXT_CACHE_WRITE_5M_PRICE_PER_M"
LC_CACHE_WRITE_1H: Final = "LONG_CONTEXT_CACHE_WRITE_1H_PRICE_PER_M"
VALID_FROM: Final = "VALID_FROM"
CURRENCY: Final = "CURRENCY"
SOURCE: Final = "SOURCE"
CHECKED: Final = "CHECKED"
REASONING: Final = "REASONING_PRICE_PER_M"
REQUEST_FEE: Final = "REQUEST_PRICE_PER_K"
MATCH: Final = "MATCH"

SEED_COLUMNS: Final = (PROVIDER, MODEL_FAMILY, MODEL, INPUT, CACHED, OUTPUT)
"""The header of the STATEK metering format, in its documented order."""

REQUIRED_COLUMNS: Final = frozenset({PROVIDER, MODEL, INPUT, OUTPUT})
"""Columns a file must have. ``MODEL_FAMILY`` and the cached price may be absent or empty."""

OPTIONAL_PRICE_COLUMNS: Final = (
    CACHED,
    CACHE_WRITE_5M,
    CACHE_WRITE_1H,
    LC_INPUT,
    LC_CACHED,
    LC_OUTPUT,
    LC_CACHE_WRITE_5M,
    LC_CACHE_WRITE_1H,
    REASONING,
)
PRICE_COLUMNS: Final = (INPUT, OUTPUT, *OPTIONAL_PRICE_COLUMNS, REQUEST_FEE)
"""Every column holding a price (a non-negative decimal): USD per million tokens, except
``REQUEST_PRICE_PER_K`` (USD per 1000 requests)."""
INTEGER_COLUMNS: Final = (LC_THRESHOLD,)
DATE_COLUMNS: Final = (VALID_FROM, CHECKED)
TEXT_COLUMNS: Final = (PROVIDER, MODEL_FAMILY, MODEL, CURRENCY, SOURCE, MATCH)

MAX_PRICE: Final = 1_000_000
"""Largest price accepted (USD per million tokens, or per 1000 requests): anything above is a typo."""
MAX_DECIMALS: Final = 12
"""Most digits after the decimal point a price may have (a millionth of a micro-dollar)."""
MAX_THRESHOLD: Final = 10**12
"""Largest ``LONG_CONTEXT_THRESHOLD`` accepted (tokens)."""
MAX_FIELD_CHARS: Final = 4096
"""Longest field accepted; a longer one is reported, not kept."""

COLUMNS: Final = (
    *SEED_COLUMNS,
    CACHE_WRITE_5M,
    CACHE_WRITE_1H,
    LC_THRESHOLD,
    LC_INPUT,
    LC_CACHED,
    LC_OUTPUT,
    LC_CACHE_WRITE_5M,
    LC_CACHE_WRITE_1H,
    REASONING,
    REQUEST_FEE,
    VALID_FROM,
    CURRENCY,
    SOURCE,
    CHECKED,
    MATCH,
)
"""Every known column, in the order ``statek pricing`` writes them."""

COMMENT_PREFIX: Final = "#"
"""A line whose first non-blank character is ``#``, where a record starts, is a comment (a quote in it
means nothing); a quoted first field starting with ``#`` is data. Blank lines are skipped."""

DEFAULT_CURRENCY: Final = "USD"
"""The only currency statek totals and metrics are kept in; ``CURRENCY`` may be empty or ``USD``."""
