"""``statek pricing explain PROVIDER MODEL``: which price row prices a call, and by which rule.

Registered on ``statek pricing`` by :func:`register` (kept out of :mod:`statek.cli.pricing`, whose
tables another change reworks). Works over the effective table (the database below the shipped files
and ``STATEK_MODEL_INFO_DIR``, or ``--file``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..metering.explain import explain
from ..metering.index import PriceTable
from ..metering.loader import read_price_files
from ..metering.registry import default_registry

__all__ = ["register"]


def _explain(
    provider: Annotated[str, typer.Argument(help="Provider (OPENAI, VERTEX, BEDROCK, azure, ...).")],
    model: Annotated[str, typer.Argument(help="Model id as the call names it.")],
    tier: Annotated[
        str | None, typer.Option("--tier", help="Service tier the answer names (flex, priority, ...).")
    ] = None,
    files: Annotated[
        list[Path] | None,
        typer.Option("--file", "-f", help="Use these price files/folders instead of the default files."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Show which price row prices PROVIDER MODEL and every rule tried on the way; exit 1 if none."""
    table = default_registry().table
    if files:
        report = read_price_files(files)
        for problem in report.problems:
            typer.echo(str(problem), err=True)
        table = PriceTable([list(report.rows)], database=default_registry().database)
    result = explain(table, provider, model, tier=tier)
    row = result.row
    prices = (
        {
            "input": str(row.input),
            "cached": None if row.cached is None else str(row.cached),
            "output": str(row.output),
            "source": row.source,
            "from": row.location or row.path,
        }
        if row is not None
        else None
    )
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "provider": provider,
                    "model": model,
                    "price_model": result.price_model,
                    "steps": result.steps,
                    "prices": prices,
                },
                indent=2,
            )
        )
    else:
        for step in result.steps:
            typer.echo(step)
        if prices is not None:
            typer.echo(
                f"=> priced by {result.price_model}: input {prices['input']}, cached {prices['cached'] or '-'}, "
                f"output {prices['output']} USD per million tokens ({prices['from']})"
            )
        else:
            typer.echo("=> unpriced")
    if row is None:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``explain`` to the ``statek pricing`` app."""
    app.command("explain")(_explain)
