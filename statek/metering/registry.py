"""The process-wide price table: the database, layers of price files, code overrides, atomic reloads.

Precedence, lowest first: the price database (``genai-prices``, :mod:`statek.metering.database`),
the shipped table (``statek/data/prices.csv``: rows the database lacks), the folder named by
``STATEK_MODEL_INFO_DIR``, files loaded later with :meth:`PriceRegistry.load` (each load above the
previous ones) or :meth:`PriceRegistry.set_row` (rows set in code, which replace every dated
version of their key), in the order they were made: a later ``init_model_pricing`` overrides an
earlier ``set_model_pricing`` and the other way round. A higher layer replaces a lower layer's row
with the same provider, family, model and ``VALID_FROM``; any file row for a model hides the
database's price for it.

Every change builds a complete new :class:`PriceTable` and then swaps one reference, so a reader
always sees either the old table or the new one, never a mix. A strict load with any error raises
one :class:`~statek.exceptions.PricingError` and changes nothing; a reload never replaces a file's
rows with a version of the file that has errors (lenient or strict). ``STATEK_MODEL_INFO_DIR`` is
read once, at the first lookup; the database is read at the first lookup it has to answer, never at
import, and nothing is ever fetched over the network.
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
from typing import TYPE_CHECKING, Any, Final

from ..exceptions import PricingError
from ..settings import MODEL_INFO_DIR_ENV
from .database import PriceDatabase, default_database
from .index import FROM_PROVIDER, PriceTable
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
    "shipped_price_paths",
    "shipped_prices_path",
    "use_price_data",
]

logger = logging.getLogger("statek.metering")


def shipped_prices_path() -> Path:
    """The default price table that ships inside the package: rows the price database lacks."""
    return Path(str(resources.files("statek") / "data" / "prices.csv"))


SHIPPED_FILES: Final = ("gaps.csv", "prices.csv", "endpoints.csv", "tiers.csv", "overrides.csv")
"""The shipped price files, in load order (``statek/data/PRICES.md`` says what each holds): LiteLLM's
prices for catalogue providers' ids the database does not price; rows the database lacks; prices that depend on the endpoint that served the call (Vertex AI, ...); service
tiers (``openai:flex``, ...); and corrections of database rows found stale, each with a test that
fails once the database agrees."""


def shipped_price_paths() -> tuple[Path, ...]:
    """Every shipped price file (:data:`SHIPPED_FILES`)."""
    folder = shipped_prices_path().parent
    return tuple(folder / name for name in SHIPPED_FILES if (folder / name).is_file())


class _FromEnv:
    def __repr__(self) -> str:
        return "FROM_ENV"


FROM_ENV = _FromEnv()
"""Default of ``model_info_dir``: read ``STATEK_MODEL_INFO_DIR`` when the registry starts."""


@dataclass(frozen=True)
class _Layer:
    paths: tuple[Path, ...]
    report: LoadReport
    replace_all: bool = False  # rows set in code: they replace every dated version of their key


def _layered_table(layers: list[_Layer], database: PriceDatabase | None) -> PriceTable:
    """One table from the layers in order; a code-set row removes the lower versions of its key."""
    from .records import row_key

    rows: list[PriceRow] = []
    for layer in layers:
        if layer.replace_all:
            replaced = {row_key(r) for r in layer.report.rows}
            rows = [r for r in rows if row_key(r) not in replaced]
        rows.extend(layer.report.rows)
    return PriceTable([rows], database=database)


def _raise_if(problems: Iterable[Problem], what: str) -> None:
    problems = [p for p in problems if not p.warning]
    if problems:
        lines = [str(p) for p in problems]
        raise PricingError(f"{what}: {len(lines)} problem(s):\n  " + "\n  ".join(lines), lines)


class PriceRegistry:
    """A price table built from layers; thread-safe; see the module docstring for precedence.

    ``shipped`` includes the package's default table; ``model_info_dir`` is loaded on top of it
    (default: the ``STATEK_MODEL_INFO_DIR`` environment variable, read at first use; ``None``: none).
    ``database`` is the lowest layer (default: the bundled ``genai-prices`` data; ``None``: none).
    """

    def __init__(
        self,
        *,
        shipped: bool = True,
        model_info_dir: str | Path | None | _FromEnv = FROM_ENV,
        database: PriceDatabase | None | _FromEnv = FROM_ENV,
    ) -> None:
        self._shipped = shipped
        self._model_info_dir = model_info_dir
        self._database = database
        self._lock = threading.RLock()
        self._layers: list[_Layer] = []
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
        database_provider: str | None = FROM_PROVIDER,
    ) -> CallCost:
        """See :func:`statek.metering.price_call`."""
        table = self._table
        if table is None:
            table = self.table
        return table.price_call(provider, model, stats, at, model_family, database_provider)

    def find(
        self,
        provider: str,
        model: str,
        model_family: str | None = None,
        at: datetime | None = None,
        database_provider: str | None = FROM_PROVIDER,
    ) -> PriceRow | None:
        """The row pricing ``model`` at ``at`` (default now), or ``None``."""
        return self.table.find(provider, model, model_family, at, database_provider)

    @property
    def database(self) -> PriceDatabase | None:
        """The database layer, ``None`` when this registry has none."""
        return default_database() if isinstance(self._database, _FromEnv) else self._database

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

        A layer whose files now have errors keeps its previous rows (a half-written file never
        replaces a working one); strict: any error raises ``PricingError`` and nothing changes.
        """
        with self._lock:
            self._ensure_started()
            fresh: list[_Layer] = []
            problems: list[Problem] = []
            for layer in self._layers:
                if layer.replace_all:
                    fresh.append(layer)
                    continue
                report = read_price_files(layer.paths)
                problems.extend(report.problems)
                fresh.append(_Layer(layer.paths, report) if report.ok else layer)
            if strict:
                _raise_if(problems, "reload rejected, the previous prices stay in effect")
            self._layers = fresh
            self._swap()
        self._log(problems)
        return problems

    def set_row(self, row: PriceRow) -> PriceRow:
        """Make ``row`` the price of its key, replacing every ``VALID_FROM`` version of it, above
        everything loaded so far (a later load can override it again)."""
        with self._lock:
            self._ensure_started()
            self._layers.append(_Layer((), LoadReport((row,), (), ()), replace_all=True))
            self._swap()
        return row

    def use_database(self, database: PriceDatabase | None) -> None:
        """Price from ``database`` from now on (``None``: no database), e.g. newer data than the
        installed ``genai-prices`` bundles: ``PriceDatabase(UpdatePrices().fetch().providers)``."""
        with self._lock:
            self._ensure_started()
            self._database = database
            self._swap()

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
            self._layers, self._placeholders = [], {}
            self._table = None

    # ----------------------------------------------------------------- internals
    def _ensure_started(self) -> None:
        with self._lock:
            if self._table is None:
                self._start()

    def _start(self) -> None:
        # Whatever goes wrong here, a table is set, so the folder is never re-read on every call.
        layers: list[_Layer] = []
        try:
            if self._shipped:
                paths = shipped_price_paths()
                layers.append(_Layer(paths, read_price_files(paths)))
            folder = (
                os.environ.get(MODEL_INFO_DIR_ENV)
                if isinstance(self._model_info_dir, _FromEnv)
                else self._model_info_dir
            )
            if folder:
                layers.append(_Layer((Path(folder),), read_price_files([folder])))
        except Exception:
            logger.exception("statek could not read its price files; only the price database is used")
        self._layers = layers + self._layers
        self._swap()
        self._log([p for layer in self._layers for p in layer.report.problems])

    def _swap(self) -> None:
        self._table = _layered_table(self._layers, self.database)

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


def use_price_data(providers: Iterable[Any]) -> None:
    """Price calls from these ``genai-prices`` providers instead of the data the installed package
    bundles (newer prices without a new statek or genai-prices release). statek never fetches: you
    get the data, e.g. with genai-prices' own updater::

        from genai_prices import UpdatePrices
        statek.metering.use_price_data(UpdatePrices().fetch().providers)

    Price files still win over the database, model by model."""
    default_registry().use_database(PriceDatabase(list(providers)))


def price_call(
    provider: str,
    model: str,
    stats: CallDetail,
    *,
    at: datetime | float | None = None,
    model_family: str | None = None,
    database_provider: str | None = FROM_PROVIDER,
) -> CallCost:
    """Price one call. The rule:

    * the provider reported its own cost (``stats.cost``): that is the call's cost (``reported``),
      and when a price table prices the call too, its figure is kept as ``table_amount`` (drift);
    * else a table price (files, then the database): ``calculated``;
    * else, when the answer carried no usage (no tokens and no cost): ``no_usage``;
    * else ``unpriced``. Neither of the last two is ever ``$0``.

    ``at`` (default: now; a datetime or epoch seconds) picks the prices in force (``VALID_FROM``,
    the database's effective dates and time-of-day prices); naive datetimes are UTC. ``provider`` is the price-table provider
    (``LLM_API.pricing_provider``); ``database_provider`` the ``genai-prices`` provider id to use
    when no file row matches (default: the one ``provider`` names; ``None``: never the database).
    """
    table = _default._table
    if table is None:
        table = _default.table
    return table.price_call(provider, model, stats, at, model_family, database_provider)
