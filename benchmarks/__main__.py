"""``python -m benchmarks [--quick]``: the suite (overhead, collector down, pricing), each part
interleaved within itself; ``python -m benchmarks NAME [ARGS...]`` runs one benchmark;
``python -m benchmarks list`` lists them."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path

SUITE: tuple[tuple[str, list[str], list[str]], ...] = (
    # (benchmark, quick arguments, full arguments)
    ("overhead", ["--quick"], []),
    ("collector_down", ["--quick"], []),
    ("pricing", ["--quick"], []),
)


def available() -> list[str]:
    """Names of the benchmark modules in this package (every module with a ``main``)."""
    names = []
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"benchmarks.{info.name}")
        if callable(getattr(module, "main", None)):
            names.append(info.name)
    return sorted(names)


def suite(quick: bool) -> int:
    for name, quick_args, full_args in SUITE:
        print(f"\n== {name} {'(quick)' if quick else ''}", flush=True)
        started = time.perf_counter()
        importlib.import_module(f"benchmarks.{name}").main(quick_args if quick else full_args)
        print(f"-- {name}: {time.perf_counter() - started:.0f} s", flush=True)
    return 0


def run(argv: list[str]) -> int:
    if not argv or argv[0] in ("--quick", "all"):
        return suite(quick="--quick" in argv)
    names = available()
    if argv[0] == "list":
        print("benchmarks:", ", ".join(names) or "(none)")
        print(
            "run one with: python -m benchmarks NAME [ARGS...]; the suite with: python -m benchmarks [--quick]"
        )
        return 0
    name, rest = argv[0], argv[1:]
    if name not in names:
        print(
            f"unknown benchmark {name!r}; available: {', '.join(names)} (or: list, --quick)", file=sys.stderr
        )
        return 2
    importlib.import_module(f"benchmarks.{name}").main(rest)
    return 0


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1:]))
