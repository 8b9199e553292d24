"""The ``statek`` command: ``statek demo``, ``statek pricing ...``, ``statek metrics ...``."""

from __future__ import annotations

import typer

from .demo import demo
from .metrics import app as metrics_app
from .pricing import app as pricing_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="statek",
    help="Meter LLM provider calls: exact cost, OpenTelemetry spans, Prometheus and OTLP metrics.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("demo")(demo)
app.add_typer(pricing_app, name="pricing")
app.add_typer(metrics_app, name="metrics")


def main() -> None:
    """Console-script entry point."""
    app()
