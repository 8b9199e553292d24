"""Provider settings and every environment variable statek reads.

Per provider key (``OPENAI``, ``ANTHROPIC``, an alias such as ``GROK``, or a name given to
``add_provider``), settings come from, in order of precedence:

1. keyword arguments to ``LLM_API.get(...)`` / ``add_provider(...)``;
2. ``{NAME}_API_URL``, ``{NAME}_API_KEY``, ``{NAME}_RESPONSE_FORMAT_FILE``,
   ``{NAME}_USE_PROMPT_CACHING`` for the name asked for (an alias), then for its canonical key, from
   the process environment or, as in the original STATEK, a ``.env`` file in the working directory
   (the environment wins; see :func:`environment`);
3. the built-in provider's defaults (public endpoint URL; local servers need no key).

``api_url`` is the full URL that requests are POSTed to, e.g.
``http://localhost:8000/v1/chat/completions``.
"""

from __future__ import annotations

import os
from collections import ChainMap
from collections.abc import Mapping, Sequence
from typing import Any

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, SecretStr

from .secrets import register_secret, register_url

__all__ = [
    "API_KEY_SUFFIX",
    "API_URL_SUFFIX",
    "DEFAULT_PROVIDER",
    "DEFAULT_PROVIDER_ENV",
    "DEFAULT_PROVIDER_ENV_ALIASES",
    "DOTENV_FILE",
    "MODEL_INFO_DIR_ENV",
    "PROMPT_CACHING_SUFFIX",
    "ProviderSettings",
    "RESPONSE_FORMAT_FILE_SUFFIX",
    "SETTING_SUFFIXES",
    "default_provider_name",
    "env_names",
    "environment",
    "load_provider_settings",
    "parse_bool",
]

DEFAULT_PROVIDER_ENV = "DEFAULT_LLM_API_PROVIDER"
"""Provider used by ``LLM_API.get()`` when no name is given (any case), the original STATEK's name."""
DEFAULT_PROVIDER_ENV_ALIASES = ("STATEK_DEFAULT_LLM_API_PROVIDER",)
"""Also read, after ``DEFAULT_LLM_API_PROVIDER``, for the same purpose."""
DEFAULT_PROVIDER = "OPENROUTER"
"""The provider used when neither variable is set."""
DOTENV_FILE = ".env"
"""A dotenv file in the working directory, read for every setting the environment does not hold."""
MODEL_INFO_DIR_ENV = "STATEK_MODEL_INFO_DIR"
"""A folder of price files (CSV/TXT) loaded on first use, on top of the shipped table."""

API_URL_SUFFIX = "_API_URL"
"""``{NAME}_API_URL``: full endpoint URL requests are POSTed to."""
API_KEY_SUFFIX = "_API_KEY"
"""``{NAME}_API_KEY``: the provider's credential. Never printed."""
RESPONSE_FORMAT_FILE_SUFFIX = "_RESPONSE_FORMAT_FILE"
"""``{NAME}_RESPONSE_FORMAT_FILE``: path of a JSON schema the response must follow."""
PROMPT_CACHING_SUFFIX = "_USE_PROMPT_CACHING"
"""``{NAME}_USE_PROMPT_CACHING``: true/false; adds provider cache markers (Anthropic ``cache_control``)."""

SETTING_SUFFIXES: Mapping[str, str] = {
    "api_url": API_URL_SUFFIX,
    "api_key": API_KEY_SUFFIX,
    "response_format_file": RESPONSE_FORMAT_FILE_SUFFIX,
    "use_prompt_caching": PROMPT_CACHING_SUFFIX,
}

_TRUE = frozenset({"1", "true", "yes", "on", "y", "t", "enable", "enabled"})


def parse_bool(value: object) -> bool:
    """``True`` for bools that are true and strings like true/1/yes/on; ``False`` for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    return isinstance(value, str) and value.strip().lower() in _TRUE


class ProviderSettings(BaseModel):
    """Where and how to reach one provider. ``api_key`` is a ``SecretStr``: its repr shows no key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_url: str | None = None
    api_key: SecretStr | None = None
    response_format_file: str | None = None
    use_prompt_caching: bool = False

    def model_post_init(self, context: Any, /) -> None:
        # statek knows every key it holds, so it can scrub it from whatever it prints (statek.secrets).
        register_secret(self.key_value())
        register_url(self.api_url)

    def key_value(self) -> str | None:
        """The raw key, for building request headers only."""
        return self.api_key.get_secret_value() if self.api_key else None


_dotenv_cache: tuple[tuple[int, int, int, int], Mapping[str, str]] | None = None


def _dotenv() -> Mapping[str, str]:
    # On every settings read (each LLM_API.get, each Job): one access() of the relative path (and a stat()
    # when the file exists), no more.
    # The file's identity and version (device, inode, mtime, size) say when to parse it again.
    global _dotenv_cache
    if not os.access(DOTENV_FILE, os.F_OK):  # the common case, without raising and catching an OSError
        return {}
    try:
        stat = os.stat(DOTENV_FILE)
    except OSError:
        return {}
    stamp = (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
    cached = _dotenv_cache
    if cached is None or cached[0] != stamp:
        values = {k: v for k, v in dotenv_values(DOTENV_FILE).items() if v is not None}
        _dotenv_cache = cached = (stamp, values)
    return cached[1]


def environment() -> Mapping[str, str]:
    """The settings environment: the process environment, then ``.env`` in the working directory.

    The file is parsed with python-dotenv, re-read only when it changes, and never written into
    ``os.environ``.
    """
    dotenv = _dotenv()
    return ChainMap(os.environ, dotenv) if dotenv else os.environ  # type: ignore[arg-type]


def values_of(names: tuple[str, ...]) -> tuple[str, ...]:
    """The values of ``names`` in :func:`environment` (the process environment first, then ``.env``),
    ``""`` for each one unset; what a per-call reader such as ``Job()`` uses.

    About ten times faster than ``environment().get`` for each name: ``os.environ.get`` encodes the
    name and raises and catches a ``KeyError`` for every unset one, about a microsecond each.
    """
    try:
        data = os.environ._data  # type: ignore[attr-defined]  # os._Environ's store, which every change updates
    except AttributeError:  # os.environ replaced by a plain mapping (tests do this)
        return _values_in(environment(), names)
    raw = tuple(map(data.get, _encoded_names.get(names) or _encoded(names)))
    dotenv = _dotenv()
    if not dotenv and not any(raw):  # the common case: each one unset (None) or empty (b"")
        return ("",) * len(raw)
    return _decoded(names, raw, dotenv)


def _values_in(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(env.get(name, "") for name in names)


def _encoded(names: tuple[str, ...]) -> tuple[Any, ...]:
    """``names`` as keys of ``os.environ``'s own store (made once per tuple of names)."""
    encode = os.environ.encodekey  # type: ignore[attr-defined]
    encoded = _encoded_names[names] = tuple(encode(name) for name in names)
    return encoded


def _decoded(names: tuple[str, ...], raw: tuple[Any, ...], dotenv: Mapping[str, str]) -> tuple[str, ...]:
    """The values of ``names`` from their raw values in the environment's store, else ``dotenv``."""
    decode = os.environ.decodevalue  # type: ignore[attr-defined]
    return tuple(
        decode(value) if value is not None else dotenv.get(name, "") for name, value in zip(names, raw)
    )


_encoded_names: dict[tuple[str, ...], tuple[Any, ...]] = {}


def default_provider_name(env: Mapping[str, str] | None = None) -> str:
    """The provider ``LLM_API.get()`` uses when given no name (see :data:`DEFAULT_PROVIDER_ENV`)."""
    env = environment() if env is None else env
    for variable in (DEFAULT_PROVIDER_ENV, *DEFAULT_PROVIDER_ENV_ALIASES):
        value = env.get(variable, "").strip()
        if value:
            return value.upper()
    return DEFAULT_PROVIDER


def env_names(name: str) -> dict[str, str]:
    """The environment variable of each setting for provider ``name``."""
    prefix = name.strip().upper()
    return {field: prefix + suffix for field, suffix in SETTING_SUFFIXES.items()}


def load_provider_settings(
    names: Sequence[str],
    overrides: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ProviderSettings:
    """Resolve settings for a provider known by ``names`` (the name asked for first, canonical key next).

    ``overrides`` (explicit arguments) win over the environment, which wins over ``defaults``.
    ``None`` overrides are ignored.
    """
    env = environment() if environ is None else environ
    values: dict[str, Any] = {k: v for k, v in (defaults or {}).items() if v is not None}
    for field in SETTING_SUFFIXES:
        for name in names:
            raw = env.get(env_names(name)[field])
            if raw not in (None, ""):
                values[field] = raw
                break
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if "use_prompt_caching" in values:
        values["use_prompt_caching"] = parse_bool(values["use_prompt_caching"])
    return ProviderSettings(**values)


# --- Vertex AI (appended by the Anthropic/Vertex adapters work) --------------------------------------
VERTEXAI_PROJECT_ENV = "VERTEXAI_PROJECT"
"""Google Cloud project for Vertex AI; with it, ``VertexAI_API`` calls the Vertex model resource URL
(``…/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent``) with
``Authorization: Bearer`` (the ``VERTEXAI_API_KEY`` value is the access token). Without it, the
Gemini API with ``x-goog-api-key``. The ``project=`` constructor argument wins."""
VERTEXAI_LOCATION_ENV = "VERTEXAI_LOCATION"
"""Vertex AI location (region) such as ``us-central1``; default ``global``. ``location=`` wins."""

__all__ += ["VERTEXAI_LOCATION_ENV", "VERTEXAI_PROJECT_ENV"]

# --- Telemetry (appended by the telemetry work) ------------------------------------------------------
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""true/false (the OpenTelemetry GenAI name): put prompts and completions on call spans
(``gen_ai.input.messages`` / ``gen_ai.output.messages``). Off by default; ``configure_telemetry`` /
``statek.instrument(capture_content=...)`` win."""

__all__ += ["CAPTURE_CONTENT_ENV"]

# --- Budgets (appended by the budgets work; see statek/executors/budget.py and docs/budgets.md) ------
MAX_TOKEN_USAGE_ENV = "STATEK_MAX_TOKEN_USAGE"
"""The original STATEK's guard, per job: a job whose approximate token usage
``(bytes sent + bytes received) // 4`` would exceed this whole number is stopped (its next call
raises ``BudgetExceededError``, unsent). Default for every ``Job`` created without ``budget=``."""
BUDGET_USD_ENV = "STATEK_BUDGET_USD"
"""Default USD limit of every ``Job`` created without ``budget=`` (e.g. ``2.50``); unset: none."""
BUDGET_TOKENS_ENV = "STATEK_BUDGET_TOKENS"
"""Default limit on input + output tokens of every ``Job`` created without ``budget=``; unset: none."""
BUDGET_CALLS_ENV = "STATEK_BUDGET_CALLS"
"""Default limit on calls (failed ones included) of every ``Job`` created without ``budget=``."""
BUDGET_UNPRICED_ENV = "STATEK_BUDGET_UNPRICED"
"""``refuse`` (default) or ``allow``: what a USD budget does with a call to a model without a price."""

BUDGET_STORE_ENV = "STATEK_BUDGET_STORE"
"""Where shared budgets (``Budget(key=...)`` / ``period=``) live: unset or ``memory`` for this
process's memory; ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS) for a Redis shared
by every worker and machine (``pip install 'statek[redis]'``). Query options: ``lease`` (seconds a
reservation lives without renewal, default 30), ``on_error`` (``refuse``, the default, or ``allow``:
what a call does when Redis cannot be reached), ``prefix`` (key prefix, default ``statek:budget``)."""

__all__ += [
    "BUDGET_CALLS_ENV",
    "BUDGET_STORE_ENV",
    "BUDGET_TOKENS_ENV",
    "BUDGET_UNPRICED_ENV",
    "BUDGET_USD_ENV",
    "MAX_TOKEN_USAGE_ENV",
]

# --- Usage ledger (appended by the ledger work; see statek/ledger/ and docs/ledger.md) -------------
LEDGER_DIR_ENV = "STATEK_LEDGER_DIR"
"""A folder: ``statek.instrument()`` appends every call and job record to it as Parquet files
(``statek.instrument(ledger=...)`` wins); also the default of ``statek usage ... --ledger``."""
LEDGER_URL_ENV = "STATEK_LEDGER_URL"
"""``postgresql://...``: ``statek.instrument()`` also writes the records to this Postgres database
(extra ``statek[postgres]``); also the default of ``statek usage ... --db``."""
LEDGER_SPOOL_ENV = "STATEK_LEDGER_SPOOL"
"""How many records wait in memory while Postgres is unreachable (default 100000); beyond that the
oldest are dropped, logged and counted."""

__all__ += ["LEDGER_DIR_ENV", "LEDGER_SPOOL_ENV", "LEDGER_URL_ENV"]
