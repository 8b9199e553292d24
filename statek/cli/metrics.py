"""``statek metrics ...``: serve ``/metrics`` (optionally with simulated traffic) and show the catalogue.

``statek metrics serve`` runs :func:`statek.exporters.instrument` in the foreground: Prometheus
``/metrics`` on ``--host:--port`` and OTLP when ``--otlp-endpoint`` (or ``OTEL_EXPORTER_OTLP_*ENDPOINT``)
is set. With ``--traffic N`` it also makes N simulated calls per second against the in-process
loopback :class:`~statek.testing.ProviderSimulator` (no network, no keys), so a Prometheus or a
Grafana dashboard has something to show. ``statek metrics catalogue`` prints every instrument and
the Prometheus series it produces: a table on a terminal, tab-separated lines when piped, JSON
with ``--json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..exceptions import ConfigurationError
from ..exporters.prometheus import DEFAULT_PORT
from .output import literal

__all__ = ["app"]

app = typer.Typer(help="Serve and inspect statek's metrics.", no_args_is_help=True)

SIMULATED_MODELS = ("gpt-4o-mini", "gpt-4.1-nano")
"""Models the simulated traffic calls (OpenAI wire, priced from the shipped price table)."""


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to serve /metrics on."),
    port: int = typer.Option(
        DEFAULT_PORT, help="Port to serve /metrics on (0: any free port; 9464 is OpenTelemetry's, not ours)."
    ),
    otlp_endpoint: str = typer.Option(
        None, help="Also push OTLP to this collector base URL, e.g. http://127.0.0.1:4318."
    ),
    service_name: str = typer.Option("statek", help="service.name of the exported telemetry."),
    traffic: float = typer.Option(0.0, min=0.0, help="Simulated calls per second (0: serve only)."),
    duration: float = typer.Option(0.0, min=0.0, help="Stop after this many seconds (0: run until Ctrl+C)."),
) -> None:
    """Serve /metrics in the foreground, optionally with simulated provider traffic."""
    from ..exporters import instrument, shutdown

    console = Console()
    errors = Console(stderr=True, soft_wrap=True, highlight=False)
    for name, value in (("--traffic", traffic), ("--duration", duration)):
        if not math.isfinite(value):
            errors.print(f"[red]{name} must be a finite number, got {value}[/]")
            raise typer.Exit(2)
    try:
        active = instrument(
            service_name, prometheus_port=port, prometheus_host=host, otlp_endpoint=otlp_endpoint or None
        )
    except (OSError, ConfigurationError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        Console(stderr=True).print(
            Text("error:", style="red"),
            literal(f"cannot serve /metrics on {host}:{port}: {reason}"),
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    console.print(
        f"Serving [bold]http://{host}:{active.prometheus_port}/metrics[/]"
        + (f", simulated traffic {traffic:g} calls/s" if traffic else "")
        + ". Ctrl+C to stop."
    )
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run(traffic, duration))
    finally:
        shutdown()
    console.print("Stopped; telemetry flushed.")


async def _run(traffic: float, duration: float) -> None:
    deadline = time.monotonic() + duration if duration else None
    if not traffic:
        while deadline is None or time.monotonic() < deadline:
            await asyncio.sleep(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic())))
        return
    from .. import LLM_API, ChatHistoryItem
    from ..executors.job import Job
    from ..testing import Failure, ModelBehavior, ProviderSimulator

    behaviors = {
        "gpt-4o-mini": ModelBehavior(
            text="Paris.", cached_tokens=8, failures=[Failure.rate_limit(every=20, retry_after=0)]
        ),
        "gpt-4.1-nano": ModelBehavior(text="Bonjour.", failures=[Failure.server_error(status=500, every=50)]),
    }
    with ProviderSimulator(behaviors, seed=1, max_recorded=0) as sim:  # no record: bounded memory
        api = LLM_API.get("OPENAI", api_url=sim.openai_url, api_key="simulated")
        interval, n = 1.0 / traffic, 0
        next_at = time.monotonic()
        async with Job("statek-metrics-serve"):
            while deadline is None or time.monotonic() < deadline:
                model = SIMULATED_MODELS[n % len(SIMULATED_MODELS)]
                question = [ChatHistoryItem.user(f"Question {n}: what is the capital of France?")]
                with contextlib.suppress(Exception):  # failures are part of the show; they are metered
                    await api.process_request(model=model, chat_history=question)
                n += 1
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await api.aclose()


@app.command("catalogue")
def catalogue(
    as_json: bool = typer.Option(
        False, "--json", help="Print the catalogue as JSON (one object per instrument)."
    ),
) -> None:
    """List every instrument: name, kind, unit, Prometheus series and attributes."""
    from ..instruments import CATALOGUE

    rows: list[dict[str, Any]] = [
        {
            "instrument": spec.name,
            "kind": spec.kind,
            "unit": spec.unit,
            "prometheus_series": list(spec.prometheus_series),
            "attributes": list(spec.attributes),
        }
        for spec in CATALOGUE
    ]
    console = Console()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not console.is_terminal:
        # Piped: one line per instrument, tab-separated, nothing wrapped or boxed (grep/cut friendly).
        typer.echo("instrument\tkind\tunit\tprometheus_series\tattributes")
        for row in rows:
            typer.echo(
                "\t".join(
                    (
                        row["instrument"],
                        row["kind"],
                        row["unit"],
                        ",".join(row["prometheus_series"]),
                        ",".join(row["attributes"]),
                    )
                )
            )
        return
    table = Table(title="statek instruments")
    for column in ("instrument", "kind", "unit", "Prometheus series", "attributes"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row["instrument"],
            row["kind"],
            row["unit"],
            "\n".join(row["prometheus_series"]),
            "\n".join(row["attributes"]),
        )
    console.print(table)
