"""``statek pricing compare --litellm FILE --database``: the price database against LiteLLM's map.

Called by :mod:`statek.cli.pricing`'s ``compare`` when both options are given (kept out of that
module, whose tables another change reworks). Exit status 1 when any price differs.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..metering.audit import compare_database_with_litellm
from ..metering.registry import default_registry

__all__ = ["database_against_litellm"]


def database_against_litellm(litellm: Path, providers: tuple[str, ...], as_json: bool) -> None:
    """Print the database's prices that differ from LiteLLM's (one line each) and a summary."""
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
