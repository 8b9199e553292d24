"""``statek pricing compare --litellm FILE --database``: the price database against LiteLLM's map.

Called by :mod:`statek.cli.pricing`'s ``compare`` when both options are given (kept out of that
module, whose tables another change reworks). Exit status 1 when any price differs.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import typer

from ..metering.audit import compare_database_with_litellm
from ..metering.database import database_version
from ..metering.export import write_price_csv
from ..metering.registry import default_registry

__all__ = ["database_against_litellm"]


LITELLM_SOURCE = "https://github.com/BerriAI/litellm/blob/main/model_prices_and_context_window.json"


def database_against_litellm(
    litellm: Path, providers: tuple[str, ...], as_json: bool, missing_out: Path | None = None
) -> None:
    """Print the database's prices that differ from LiteLLM's (one line each) and a summary; with
    ``missing_out``, write LiteLLM's rows for the ids the database does not price (none at $0) as a
    price file (``SOURCE`` LiteLLM's map, ``CHECKED`` today) to load with ``STATEK_MODEL_INFO_DIR``."""
    database = default_registry().database
    if database is None:
        typer.echo("no price database is configured", err=True)
        raise typer.Exit(1)
    try:
        result = compare_database_with_litellm(database, litellm, providers)
    except (OSError, ValueError, RecursionError) as exc:
        typer.echo(
            f"{litellm}: cannot read: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}",
            err=True,
        )
        raise typer.Exit(1) from None
    if missing_out is not None:
        today = date.today()
        fill = [
            r._replace(source=LITELLM_SOURCE, checked=today) for r in result.missing if r.input or r.output
        ]
        with missing_out.open("w", encoding="utf-8", newline="") as handle:
            count = write_price_csv(
                fill,
                handle,
                note=f"LiteLLM's prices for ids genai-prices {database_version()} does not price.",
            )
        typer.echo(f"wrote {count} row(s) to {missing_out}", err=True)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "against": str(litellm),
                    "different": [
                        {
                            "provider": c.row.provider,
                            "model": c.row.model,
                            "from": c.row.path,
                            "changes": [[col, str(a), str(b)] for col, a, b in c.changes],
                        }
                        for c in result.changes
                    ],
                    "missing": [{"provider": r.provider, "model": r.model} for r in result.missing],
                    "same": result.same,
                    "skipped": result.skipped,
                },
                indent=2,
            )
        )
    else:
        for change in result.changes:
            details = ", ".join(f"{col} {a} -> {b}" for col, a, b in change.changes)
            typer.echo(f"{change.row.provider} {change.row.model} ({change.row.path}): {details}")
        typer.echo(
            f"{len(result.changes)} different, {len(result.missing)} not priced by the database, "
            f"{result.same} same, {result.skipped} of providers the database does not know"
        )
    if result.changes:
        raise typer.Exit(1)
