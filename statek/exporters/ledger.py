"""Which ledger sinks :func:`statek.instrument` starts, and the OTLP log exporter they use.

- A ledger directory: ``instrument(ledger=DIR)``, else ``STATEK_LEDGER_DIR``.
- Postgres: ``instrument(ledger_url=URL)``, else ``STATEK_LEDGER_URL``.
- OTLP log records (events ``statek.usage.call`` / ``statek.usage.job``): when
  ``OTEL_LOGS_EXPORTER`` (``otlp``, ``console``, ``none``) lists ``otlp``; or, when a directory or
  Postgres ledger is on, by the same rule as spans and metrics (see :mod:`.environment`):
  ``OTEL_LOGS_EXPORTER`` unset and an endpoint known (``otlp_endpoint=``,
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_LOGS_ENDPOINT``). So an application that
  exports spans and metrics over OTLP does not start sending per-call usage records (they carry every
  job attribute) until it asks for the ledger. ``OTEL_SDK_DISABLED=true`` turns the log records off
  (not the directory or Postgres).

Nothing is started when no sink is asked for: no thread, no polars import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..exceptions import ConfigurationError
from ..ledger.rows import service_identity
from ..ledger.writer import LedgerSink, LedgerWriter
from ..secrets import register_url
from ..settings import LEDGER_DIR_ENV, LEDGER_URL_ENV
from .environment import sdk_disabled
from .otlp import protocol_for

__all__ = ["LOG_EXPORTERS", "close_ledger", "log_exporter", "logs_plan", "open_ledger", "start_ledger"]

LOG_EXPORTERS = frozenset({"otlp", "console", "none"})
"""The values ``OTEL_LOGS_EXPORTER`` may list (comma-separated)."""


def logs_plan(
    otlp_endpoint: str | None, env: Mapping[str, str] | None = None, *, ledger_on: bool = True
) -> tuple[bool, bool]:
    """``(otlp, console)``: whether usage records go out as OTLP log records, and to the console
    (``ledger_on``: a directory or Postgres ledger is configured; see the module docstring)."""
    env = os.environ if env is None else env
    if sdk_disabled(env):
        return False, False
    raw = env.get("OTEL_LOGS_EXPORTER", "")
    chosen = frozenset(p.strip().lower() for p in raw.split(",") if p.strip())
    unknown = sorted(chosen - LOG_EXPORTERS)
    if unknown:
        raise ConfigurationError(
            f"OTEL_LOGS_EXPORTER={raw!r}: statek does not support {', '.join(unknown)}; use a "
            f"comma-separated subset of {', '.join(sorted(LOG_EXPORTERS))}"
        )
    if "none" in chosen and len(chosen) > 1:
        raise ConfigurationError(
            f"OTEL_LOGS_EXPORTER={raw!r}: 'none' cannot be combined with other exporters"
        )
    if chosen:
        return "otlp" in chosen, "console" in chosen
    if not ledger_on:
        return False, False
    endpoint = bool(otlp_endpoint) or bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
    )
    return endpoint, False


def log_exporter(
    endpoint: str | None = None,
    *,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> Any:
    """An OTLP log exporter: ``endpoint`` is the collector's base URL (``/v1/logs`` appended for
    HTTP), ``None`` leaves it to ``OTEL_EXPORTER_OTLP_[LOGS_]ENDPOINT``."""
    chosen = protocol_for("logs", protocol)
    extra = dict(headers) if headers else None
    if chosen == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as Grpc
        except ImportError as exc:
            raise ConfigurationError(
                'OTLP over gRPC needs the grpc extra: pip install "statek[grpc]"'
            ) from exc
        return Grpc(endpoint=endpoint, headers=extra, timeout=timeout)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    url = endpoint.rstrip("/") + "/v1/logs" if endpoint else None
    return OTLPLogExporter(endpoint=url, headers=extra, timeout=timeout)


def open_ledger(
    *,
    directory: str | os.PathLike[str] | None,
    url: str | None,
    otlp_endpoint: str | None,
    exporter_args: Mapping[str, Any],
    resource: Any,
    interval: float = 1.0,
) -> LedgerWriter | None:
    """The ledger writer for what is asked (see the module docstring), ``None`` when nothing is."""
    directory = directory or os.environ.get(LEDGER_DIR_ENV) or None
    url = url or os.environ.get(LEDGER_URL_ENV) or None
    logs_otlp, logs_console = logs_plan(otlp_endpoint, ledger_on=bool(directory or url))
    if not (directory or url or logs_otlp or logs_console):
        return None
    attributes = dict(getattr(resource, "attributes", None) or {})
    service = service_identity(attributes)
    sinks: list[LedgerSink] = []
    if directory:
        from ..ledger.parquet import ParquetSink

        sinks.append(ParquetSink(directory, service.instance))
    if url:
        from ..ledger.postgres import PostgresSink

        sinks.append(PostgresSink(url))
    if logs_otlp or logs_console:
        from ..ledger.otlp import OtlpLogSink

        if logs_otlp:
            sinks.append(OtlpLogSink(log_exporter(otlp_endpoint, **exporter_args), resource))
        if logs_console:
            from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter

            console = OtlpLogSink(ConsoleLogRecordExporter(), resource)
            console.name = "console_logs"
            sinks.append(console)
    return LedgerWriter(sinks, service, interval=interval)


def start_ledger(
    *,
    directory: str | os.PathLike[str] | None,
    url: str | None,
    otlp_endpoint: str | None,
    exporter_args: Mapping[str, Any],
    resource_attributes: Mapping[str, str],
) -> LedgerWriter | None:
    """Open the ledger :func:`statek.instrument` asked for and feed it every call and job from now on."""
    from opentelemetry.sdk.resources import Resource

    url = url or os.environ.get(LEDGER_URL_ENV) or None
    register_url(url)  # a database URL may hold a password: never printed
    writer = open_ledger(
        directory=directory,
        url=url,
        otlp_endpoint=otlp_endpoint,
        exporter_args=exporter_args,
        resource=Resource.create(dict(resource_attributes)),
    )
    if writer is not None:
        from ..ledger.consumer import attach

        attach(writer)
    return writer


def close_ledger(writer: LedgerWriter, timeout: float = 5.0) -> None:
    """Stop feeding ``writer`` and write what it holds (what :func:`statek.shutdown` does)."""
    from ..ledger.consumer import detach

    detach(writer)
    writer.close(timeout)
