"""Reproducible benchmarks. ``python -m benchmarks`` lists them; ``python -m benchmarks NAME`` runs one.

Each benchmark is a module here with a ``main(argv: list[str] | None = None) -> None``; it is also
runnable on its own as ``python -m benchmarks.NAME``. Benchmarks print numbers; they assert nothing.
"""
