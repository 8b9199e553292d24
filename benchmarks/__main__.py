"""``python -m benchmarks [NAME [ARGS...]]``: list the benchmarks, or run one (``all`` runs every one)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


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


def run(argv: list[str]) -> int:
    names = available()
    if not argv:
        print("benchmarks:", ", ".join(names) or "(none)")
        print("run one with: python -m benchmarks NAME [ARGS...]   (or: python -m benchmarks all)")
        return 0
    name, rest = argv[0], argv[1:]
    if name == "all":
        for each in names:
            print(f"== {each}")
            importlib.import_module(f"benchmarks.{each}").main(rest)
        return 0
    if name not in names:
        print(f"unknown benchmark {name!r}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    importlib.import_module(f"benchmarks.{name}").main(rest)
    return 0


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1:]))
