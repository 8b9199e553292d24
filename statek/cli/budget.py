"""``statek budget show KEY``: a shared budget's spend, reservations in flight and what remains.

Reads the store :data:`~statek.settings.BUDGET_STORE_ENV` names (or ``--store``). A Redis store is
read as every worker sees it; the in-process store lives inside its application's process, so from
this command it is empty (it says so): call :func:`statek.executors.budget.account_status` inside
the application instead.
"""

from __future__ import annotations

import json
from decimal import Decimal

import typer

from ..exceptions import ConfigurationError
from ..executors.budget import account_status
from ..executors.budget_store import StoreUnavailable, window_of

__all__ = ["app"]

app = typer.Typer(help="Inspect shared budgets (Budget(key=..., period=...)).", no_args_is_help=True)


def _usd(pico: int) -> str:
    return f"${Decimal(pico).scaleb(-12).normalize():f}"


@app.command("show")
def show(
    key: str = typer.Argument(..., help="The account: the budget key with the job's attributes filled in."),
    period: str = typer.Option("", help="day or month: show the current UTC window of that period."),
    window: str = typer.Option("", help="A window to show (2026-12-06 or 2026-12); overrides --period."),
    store: str = typer.Option("", help="The store URL (default: STATEK_BUDGET_STORE)."),
    as_json: bool = typer.Option(False, "--json", help="Print the counters as JSON."),
) -> None:
    """Print an account's limit, spend, reservations in flight and what remains."""
    if period not in ("", "day", "month"):
        raise typer.BadParameter("--period must be day or month")
    chosen = window or window_of(period or None)  # type: ignore[arg-type]
    try:
        counts, where = account_status(key, chosen, store or None)
    except ConfigurationError as bad:
        typer.echo(f"error: {bad}", err=True)
        raise typer.Exit(2) from None
    except StoreUnavailable as down:
        typer.echo(f"error: {down}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps({"account": key, "window": chosen, "store": where, **counts}, sort_keys=True))
        return
    label = f"{key}@{chosen}" if chosen else key
    if not counts:
        note = " (the in-process store lives in its application's process)" if where == "memory" else ""
        typer.echo(f"{label} ({where}): no spend and no reservations{note}")
        return
    limit = counts.get("limit_pico", -1)
    spent, held = counts.get("spent_pico", 0), counts.get("reserved_pico", 0)
    typer.echo(f"{label} ({where})")
    typer.echo(f"  limit      {_usd(limit) if limit >= 0 else 'none (USD)'}")
    typer.echo(
        f"  spent      {_usd(spent)} ({counts.get('spent_calls', 0):,} calls, "
        f"{counts.get('spent_tokens', 0):,} tokens, {counts.get('unpriced_calls', 0):,} unpriced)"
    )
    typer.echo(f"  in flight  {_usd(held)} ({counts.get('reserved_calls', 0):,} calls)")
    if limit >= 0:
        typer.echo(f"  remaining  {_usd(limit - spent - held)}")
    typer.echo(
        f"  refusals   {counts.get('refusals', 0):,}; lease expiries {counts.get('lease_expiries', 0):,}"
    )
