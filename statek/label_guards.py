"""Which label values of a call get metric series of their own: statek's cardinality guards
(:mod:`statek.cardinality`) bound to one set of instruments.

- Model names (request and response models, each with a guard of its own): a model a price layer prices (the
  price files, the price database) always keeps its series; at most ``STATEK_METRICS_MAX_MODELS``
  (default 50) other names do; the rest are recorded as ``_other_``.
- Each allow-listed job attribute (``job_label_keys``): at most ``STATEK_METRICS_MAX_LABEL_VALUES``
  (default 20) distinct values each; the rest are recorded as ``_other_``.

The limits are read when the instruments first need a guard (the first call after
:func:`statek.telemetry.configure_telemetry` gives a meter provider its instruments).
"""

from __future__ import annotations

from collections.abc import Callable

from .cardinality import (
    DEFAULT_MAX_LABEL_VALUES,
    DEFAULT_MAX_MODELS,
    MAX_LABEL_VALUES_ENV,
    MAX_MODELS_ENV,
    limit_from_env,
)
from .instruments import GEN_AI_REQUEST_MODEL, JOB_LABEL_PREFIX, Instruments
from .metering import default_registry

__all__ = ["guard_job_labels", "model_admitter"]

_MODEL_FIX = (
    "If these are not real model names (request or user ids sent as the model), fix the caller; "
    "if they are, add them to a price file or raise " + MAX_MODELS_ENV + "."
)
_LABEL_FIX = (
    "Allow-list only low-cardinality job attributes (job_label_keys: tenant, feature), or raise "
    + MAX_LABEL_VALUES_ENV
    + "; who spent what per job lives in the ledger."
)


def model_admitter(
    instruments: Instruments, pricing_provider: str, label: str = GEN_AI_REQUEST_MODEL
) -> Callable[[str], str]:
    """A function mapping a model name to itself or ``_other_`` (see the module docstring);
    ``pricing_provider``: the price-table provider that decides which models are known; ``label``:
    the request model's guard, or the response model's (a guard of its own, same limit)."""
    guard = instruments.guard(label, limit_from_env(MAX_MODELS_ENV, DEFAULT_MAX_MODELS), _MODEL_FIX)

    def known(model: str) -> bool:
        return default_registry().find(pricing_provider, model) is not None

    def admit(model: str) -> str:
        return guard.admit(model, known)

    return admit


def guard_job_labels(
    instruments: Instruments, keys: tuple[str, ...], values: tuple[str, ...]
) -> tuple[str, ...]:
    """``values`` of the allow-listed job attributes ``keys``, each kept or replaced by ``_other_``."""
    if not keys:
        return values
    limit = limit_from_env(MAX_LABEL_VALUES_ENV, DEFAULT_MAX_LABEL_VALUES)
    return tuple(
        instruments.guard(JOB_LABEL_PREFIX + key, limit, _LABEL_FIX).admit(value)
        for key, value in zip(keys, values)
    )
