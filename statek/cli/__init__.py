"""The ``statek`` command: ``statek demo``, ``statek pricing ...``, ``statek metrics ...``,
``statek budget ...``."""

from __future__ import annotations

import typer

from .budget import app as budget_app
from .demo import demo
from .metrics import app as metrics_app
from .pricing import app as pricing_app
from .usage import app as usage_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="statek",
    help="Meter LLM provider calls: exact cost, OpenTelemetry spans, Prometheus and OTLP metrics.",
    no_args_is_help=True,
    add_completion=False,
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("statek")
    except PackageNotFoundError:  # a source tree without installed metadata
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"statek {_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print statek's version and exit."
    ),
) -> None:
    """Meter LLM provider calls: exact cost, OpenTelemetry spans, Prometheus and OTLP metrics."""


app.command("demo")(demo)
app.add_typer(pricing_app, name="pricing")
app.add_typer(metrics_app, name="metrics")
app.add_typer(usage_app, name="usage")
app.add_typer(budget_app, name="budget")


def main() -> None:
    """Console-script entry point."""
    app()
