"""How many output tokens a call can write at most: the worst case a budget reserves.

A request's own output cap bounds its answer. A request without one is bounded by the model: its
maximum output tokens, looked up in this order (the first that knows wins):

1. :data:`MODEL_MAX_OUTPUT`: maximum output tokens of well-known model families, from the
   providers' model pages (reasoning included: for OpenAI reasoning models ``max_completion_tokens``
   bounds reasoning plus answer).
2. The price database (genai-prices): the model's ``context_window``. No answer is longer than its
   context window, so it is a true bound, if a loose one.
3. :data:`PROVIDER_MAX_OUTPUT`: a documented default per provider.
4. :data:`UNKNOWN_MAX_OUTPUT`: for a model nobody knows (a local server's, a new one). This one is not
   a bound: a model that writes more without a cap can pass its reservation. A budget with
   ``cap_output=True`` sends the cap it reserved, which makes every reservation a bound.

Caps are checked too (:func:`checked_cap`): a negative, zero, fractional, non-numeric or absurd
cap (above :data:`MAX_OUTPUT_CAP`) is refused before anything is sent, since a budget cannot bound
such a call (a negative cap used to make the estimate negative, so it passed any budget).
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = [
    "MAX_OUTPUT_CAP",
    "MODEL_MAX_OUTPUT",
    "PROVIDER_MAX_OUTPUT",
    "UNKNOWN_MAX_OUTPUT",
    "InvalidOutputCap",
    "checked_cap",
    "model_max_output",
]

MAX_OUTPUT_CAP = 10_000_000
"""The largest output cap statek accepts on a budgeted call: no model writes ten million tokens."""
UNKNOWN_MAX_OUTPUT = 32_768
"""Output tokens reserved for an uncapped call to a model whose maximum is unknown (not a bound)."""

MODEL_MAX_OUTPUT: tuple[tuple[str, int], ...] = (
    # (model name prefix, maximum output tokens); the longest matching prefix wins.
    ("gpt-3.5-turbo", 4_096),
    ("gpt-4-turbo", 4_096),
    ("gpt-4", 8_192),
    ("gpt-4o", 16_384),
    ("chatgpt-4o", 16_384),
    ("gpt-4.1", 32_768),
    ("gpt-5", 128_000),
    ("o1-mini", 65_536),
    ("o1", 100_000),
    ("o3", 100_000),
    ("o4-mini", 100_000),
    ("claude-3-haiku", 4_096),
    ("claude-3-opus", 4_096),
    ("claude-3-5", 8_192),
    ("claude-3-7-sonnet", 64_000),
    ("claude-sonnet-4", 64_000),
    ("claude-opus-4", 32_000),
    ("claude-opus-4-5", 64_000),
    ("claude-haiku-4-5", 64_000),
    ("gemini-1.5", 8_192),
    ("gemini-2.0", 8_192),
    ("gemini-2.5", 65_536),
    ("deepseek-chat", 8_192),
    ("deepseek-reasoner", 65_536),
)
"""Maximum output tokens by model name prefix (provider prefixes such as ``openai/`` are ignored)."""

PROVIDER_MAX_OUTPUT: dict[str, int] = {}
"""Maximum output tokens per statek provider key, for models the tables above do not know. Empty by
default; applications may add their own (``PROVIDER_MAX_OUTPUT["LLAMA_CPP"] = 512``: its ``n_ctx``)."""


class InvalidOutputCap(ValueError):
    """An output cap a budget cannot bound (negative, zero, not a whole number, or absurd)."""

    def __init__(self, value: object) -> None:
        self.value = value
        super().__init__(f"output cap {value!r} is not a whole number of tokens from 1 to {MAX_OUTPUT_CAP:,}")


def checked_cap(value: Any) -> int | None:
    """``value`` as an output cap: ``None`` when absent, else a whole number from 1 to
    :data:`MAX_OUTPUT_CAP`; raises :class:`InvalidOutputCap` otherwise (``True``, ``-1``, ``0``,
    ``1.5``, ``"many"``, ``1e12``). A whole float (``256.0``) or numeric string is accepted."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidOutputCap(value)
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        number = int(value) if value.is_integer() else None
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    if number is None or not 1 <= number <= MAX_OUTPUT_CAP:
        raise InvalidOutputCap(value)
    return number


_known: dict[tuple[str, str, str], int] = {}
_known_lock = threading.Lock()


def model_max_output(provider_key: str, pricing_provider: str, model: str) -> tuple[int, bool]:
    """The most output tokens ``model`` can write, and whether that is a known bound (``False``:
    :data:`UNKNOWN_MAX_OUTPUT`, a guess). Cached per model; see the module docstring for the order."""
    key = (provider_key, pricing_provider, model)
    found = _known.get(key)
    if found is not None:
        return abs(found), found > 0
    tokens = _from_table(model)
    bounded = True
    if tokens is None:
        tokens = _from_database(pricing_provider, model)
    if tokens is None:
        tokens = PROVIDER_MAX_OUTPUT.get(provider_key)
    if tokens is None:
        tokens, bounded = UNKNOWN_MAX_OUTPUT, False
    with _known_lock:
        _known[key] = tokens if bounded else -tokens
    return tokens, bounded


def _from_table(model: str) -> int | None:
    name = model.strip().lower().rsplit("/", 1)[-1]
    best: tuple[int, int] | None = None
    for prefix, tokens in MODEL_MAX_OUTPUT:
        if name.startswith(prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), tokens)
    return None if best is None else best[1]


def _from_database(pricing_provider: str, model: str) -> int | None:
    """The context window genai-prices gives the model (a bound on its output), else ``None``."""
    try:
        from ..metering.database import default_database  # lazy: genai-prices is a heavy import

        database = default_database()
        provider = database.provider(pricing_provider)
        if provider is None or not model.strip():
            return None
        info = provider.find_model(model.strip(), all_providers=database.providers)
    except Exception:  # noqa: BLE001 - no database (Python 3.10) or a model it cannot match
        return None
    window = getattr(info, "context_window", None)
    return window if isinstance(window, int) and window > 0 else None
