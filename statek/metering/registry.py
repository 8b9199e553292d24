"""The process-wide price table: layers of price files, code overrides, atomic reloads, lazy start-up.

Precedence, lowest first: the shipped table (``statek/data/prices.csv``), the folder named by
``STATEK_MODEL_INFO_DIR``, files loaded later with :meth:`PriceRegistry.load` (each load above the
previous ones), and rows set in code (:meth:`PriceRegistry.set_row`, which replace every dated
version of their key). A higher layer replaces a lower layer's row with the same provider, family,
model and ``VALID_FROM``.

Every change builds a complete new :class:`PriceTable` and then swaps one reference, so a reader
always sees either the old table or the new one, never a mix. In strict mode a load or reload with
any problem raises one :class:`~statek.exceptions.PricingError` and the old table stays. Nothing is
read until the first lookup, and nothing is ever fetched over the network.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import PricingError
from ..settings import MODEL_INFO_DIR_ENV
from .index import PriceTable, RowKey, row_key
from .loader import LoadReport, read_price_files
from .records import PriceRow, Problem

if TYPE_CHECKING:
    from ..types import CallDetail
    from .types import CallCost

__all__ = [
    "FROM_ENV",
    "PriceRegistry",
    "default_registry",
    "price_call",
    "set_default_registry",
    "shipped_prices_path",
]

logger = logging.getLogger("statek.metering")


def shipped_prices_path() -> Path:
    """The default price table that ships inside the package."""
    return Path(str(resources.files("statek") / "data" / "prices.csv"))


class _FromEnv:
    def __repr__(self) -> str:
        return "FROM_ENV"


FROM_ENV = _FromEnv()
"""Default of ``model_info_dir``: read ``STATEK_MODEL_INFO_DIR`` when the registry starts."""


@dataclass(frozen=True)
class _Layer:
    paths: tuple[Path, ...]
    report: LoadReport


def _raise_if(problems: Iterable[Problem], what: str) -> None:
    problems = list(problems)
    if problems:
        lines = [str(p) for p in problems]
        raise PricingError(f"{what}: {len(lines)} problem(s):\n  " + "\n  ".join(lines), lines)


class PriceRegistry:
    """A price table built from layers; thread-safe; see the module docstring for precedence.

    ``shipped`` includes the package's default table; ``model_info_dir`` is loaded on top of it
    (default: the ``STATEK_MODEL_INFO_DIR`` environment variable, read at first use; ``None``: none).
    """

    def __init__(
        self, *, shipped: bool = True, model_info_dir: str | Path | None | _FromEnv = FROM_ENV
    ) -> None:
        self._shipped = shipped
        self._model_info_dir = model_info_dir
        self._lock = threading.RLock()
        self._layers: list[_Layer] = []
        self._overrides: dict[RowKey, PriceRow] = {}
        self._placeholders: dict[tuple[str, str, str], Any] = {}
        self._table: PriceTable | None = None

    # ----------------------------------------------------------------- reading
    @property
    def table(self) -> PriceTable:
        """The current table (loads the start-up layers on first use)."""
        table = self._table
        if table is None:
            with self._lock:
                if self._table is None:
                    self._start()
                table = self._table
        return table  # type: ignore[return-value]

    def price_call(
        self,
        provider: str,
        model: str,
        stats: CallDetail,
        *,
        at: datetime | None = None,
        model_family: str | None = None,
    ) -> CallCost:
        """See :func:`statek.metering.price_call`."""
        table = self._table
        if table is None:
            table = self.table
        return table.price_call(provider, model, stats, at, model_family)

    def find(
        self, provider: str, model: str, model_family: str | None = None, at: datetime | None = None
    ) -> PriceRow | None:
        """The row pricing ``model`` at ``at`` (default now), or ``None``."""
        return self.table.find(provider, model, model_family, at)

    @property
    def problems(self) -> list[Problem]:
        """Every problem reported by the layers currently loaded."""
        self._ensure_started()
        return [p for layer in self._layers for p in layer.report.problems]

    # ----------------------------------------------------------------- changing
    def load(self, paths: str | Path | Iterable[str | Path], *, strict: bool = False) -> LoadReport:
        """Add price files (folders: every ``.csv``/``.txt`` below them) above everything loaded so far.

        Lenient (default): good rows take effect, problems are logged and returned in the report.
        Strict: any problem raises ``PricingError`` listing all of them, and nothing changes.
        """
        paths = (paths,) if isinstance(paths, (str, Path)) else tuple(paths)
        report = read_price_files(paths)
        if strict:
            _raise_if(report.problems, "price files rejected")
        with self._lock:
            self._ensure_started()  # start-up layers first, so this one lands above them
            self._layers.append(_Layer(tuple(Path(p) for p in paths), report))
            self._swap()
        self._log(report.problems)
        return report

    def reload(self, *, strict: bool = False) -> list[Problem]:
        """Re-read every file layer from disk and swap in the result at once.

        Strict: any problem raises ``PricingError`` and the current table stays in effect.
        """
        with self._lock:
            self._ensure_started()
            fresh = [_Layer(layer.paths, read_price_files(layer.paths)) for layer in self._layers]
            problems = [p for layer in fresh for p in layer.report.problems]
            if strict:
                _raise_if(problems, "reload rejected, the previous prices stay in effect")
            self._layers = fresh
            self._swap()
        self._log(problems)
        return problems

    def set_row(self, row: PriceRow) -> PriceRow:
        """Make ``row`` the price of its key, replacing every ``VALID_FROM`` version of it."""
        with self._lock:
            self._ensure_started()
            self._overrides[row_key(row)] = row
            self._swap()
        return row

    def placeholder(self, key: tuple[str, str, str], factory: Any) -> Any:
        """The placeholder object stored under ``key``, created with ``factory()`` the first time."""
        with self._lock:
            if key not in self._placeholders:
                self._placeholders[key] = factory()
            return self._placeholders[key]

    def existing_placeholder(self, key: tuple[str, str, str]) -> Any:
        """The placeholder stored under ``key``, or ``None``."""
        return self._placeholders.get(key)

    def reset(self) -> None:
        """Forget every layer, override and placeholder; the next use starts over."""
        with self._lock:
            self._layers, self._overrides, self._placeholders = [], {}, {}
            self._table = None

    # ----------------------------------------------------------------- internals
    def _ensure_started(self) -> None:
        with self._lock:
            if self._table is None:
                self._start()

    def _start(self) -> None:
        if self._shipped:
            path = shipped_prices_path()
            self._layers.append(_Layer((path,), read_price_files([path])))
        folder = (
            os.environ.get(MODEL_INFO_DIR_ENV)
            if isinstance(self._model_info_dir, _FromEnv)
            else self._model_info_dir
        )
        if folder:
            self._layers.append(_Layer((Path(folder),), read_price_files([folder])))
        self._swap()
        self._log([p for layer in self._layers for p in layer.report.problems])

    def _swap(self) -> None:
        self._table = PriceTable([layer.report for layer in self._layers], self._overrides.values())

    @staticmethod
    def _log(problems: Iterable[Problem]) -> None:
        for problem in problems:
            logger.warning("price file problem: %s", problem)


_default = PriceRegistry()


def default_registry() -> PriceRegistry:
    """The process-wide registry that :func:`price_call` and the seed pricing API use."""
    return _default


def set_default_registry(registry: PriceRegistry) -> PriceRegistry:
    """Make ``registry`` the process-wide one; returns the previous one (tests, embedding apps)."""
    global _default
    previous, _default = _default, registry
    return previous


def price_call(
    provider: str,
    model: str,
    stats: CallDetail,
    *,
    at: datetime | None = None,
    model_family: str | None = None,
) -> CallCost:
    """Price one call: from the price table when a valid price exists, else the provider-reported
    ``stats.cost``, else unpriced (``amount`` ``None``, never ``$0``).

    ``at`` (default: now) picks the ``VALID_FROM`` version in force; naive datetimes are UTC.
    ``provider`` is the price-table provider (``LLM_API.pricing_provider`` or ``provider_key``).
    """
    table = _default._table
    if table is None:
        table = _default.table
    return table.price_call(provider, model, stats, at, model_family)
