"""``statek demo``: the whole product working in one command, with no keys and no network.

A fleet of jobs (chat, agent-with-tools, summarise-long-doc, reasoning) runs against the loopback
provider simulator speaking the OpenAI, Anthropic and Gemini wire formats; statek meters every call;
``/metrics`` is served while it runs (and after, with ``--keep-serving``); OTLP is exported when an
endpoint is given; the closing tables come from the jobs' own ``LLM_Usage``.

Bad options end with exit code 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import math
import signal
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..demo.exporters import OTLP_ENDPOINT_ENV, DemoExporters, ExporterError
from ..demo.report import format_cost
from ..demo.runner import JobOutcome
from ..demo.session import DemoResult, DemoRun, RealTarget
from ..demo.simulated import describe_failure, simulated_models
from ..demo.traffic import JobFailed
from ..exceptions import BudgetExceededError, ConfigurationError
from ..exporters.prometheus import DEFAULT_PORT
from .demo_report import render_tables
from .output import literal

__all__ = ["DEFAULT_JOBS", "DEFAULT_METRICS_PORT", "REAL_PROVIDER_JOBS", "demo"]

DEFAULT_JOBS = 200
"""Jobs run against the simulator when neither ``--jobs`` nor ``--duration`` is given."""
REAL_PROVIDER_JOBS = 4
"""Jobs run against a real provider by default: it costs real money."""
DEFAULT_METRICS_PORT = DEFAULT_PORT
"""statek's default ``/metrics`` port (also in dashboards/prometheus.yml); not OpenTelemetry's 9464."""
_REPORT_WIDTH = 160


class _BadOption(Exception):
    """A bad command-line option; the message is the whole explanation."""


def _fail(message: str) -> NoReturn:
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"statek demo: error: {message}", markup=False
    )
    raise typer.Exit(2)


def _validate(
    jobs: int | None,
    duration: float | None,
    concurrency: int,
    port: int,
    provider: str | None,
    model: str | None,
) -> None:
    if jobs is not None and jobs < 1:
        raise _BadOption(f"--jobs must be at least 1, got {jobs}")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise _BadOption(f"--duration must be a positive, finite number of seconds, got {duration}")
    if concurrency < 1:
        raise _BadOption(f"--concurrency must be at least 1, got {concurrency}")
    if not 0 <= port <= 65535:
        raise _BadOption(f"--metrics-port must be from 0 to 65535, got {port}")
    if (provider is None) != (model is None):
        raise _BadOption("--provider and --model go together: name the provider key and one of its models")


def _real_target(provider: str, model: str) -> RealTarget:
    """The real provider, from its environment settings; ``ConfigurationError`` (a one-line message) when
    the provider is unknown or its key or URL is missing."""
    from ..llm_api import LLM_API

    return RealTarget(LLM_API.get(provider, model=model), model)


def demo(
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-n",
            help=f"Jobs to run (default {DEFAULT_JOBS}; {REAL_PROVIDER_JOBS} with --provider).",
            show_default=False,
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration",
            help="Keep starting jobs for this many seconds (instead of a job count).",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", help="Jobs running at once.")] = 16,
    seed: Annotated[
        int, typer.Option(help="Seed of the job mix and the simulator (same seed, same traffic).")
    ] = 0,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="Address /metrics listens on.")
    ] = "127.0.0.1",
    metrics_port: Annotated[
        int, typer.Option("--metrics-port", help="Port of /metrics (0: any free port).")
    ] = (DEFAULT_METRICS_PORT),
    keep_serving: Annotated[
        bool,
        typer.Option(
            "--keep-serving",
            help="Keep serving /metrics after the run, until Ctrl+C (for Prometheus to scrape).",
        ),
    ] = False,
    otlp_endpoint: Annotated[
        str | None,
        typer.Option(
            "--otlp-endpoint",
            help=f"Also export OTLP/HTTP to this endpoint (default: ${OTLP_ENDPOINT_ENV}, if set).",
            show_default=False,
        ),
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider",
            help="Use this real provider (key from its env "
            "settings, e.g. OPENAI_API_KEY) instead of the simulator.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="The model to use with --provider.", show_default=False)
    ] = None,
) -> None:
    """Run a fleet of metered LLM jobs against a built-in simulator (no keys, no network) and show the bill.

    Your own code and tests can run against the same simulator: statek.testing.ProviderSimulator, or the statek_simulator pytest fixture (docs/testing.md).
    """
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, _REPORT_WIDTH)  # a log or a pipe: don't squash the tables
    try:
        _validate(jobs, duration, concurrency, metrics_port, provider, model)
        real = _real_target(provider, model) if provider and model else None
        exporters = DemoExporters.start(metrics_host, metrics_port, otlp_endpoint=otlp_endpoint)
    except (_BadOption, ConfigurationError, ExporterError) as exc:
        _fail(str(exc))
    if jobs is None and duration is None:
        jobs = REAL_PROVIDER_JOBS if real is not None else DEFAULT_JOBS
    try:
        _announce(console, exporters, real, jobs, duration, concurrency)
        try:
            result = _run_with_progress(
                console, DemoRun(jobs=jobs, duration=duration, concurrency=concurrency, seed=seed, real=real)
            )
        except KeyboardInterrupt:
            console.print("Interrupted (Ctrl+C): the demo stopped before the end, so there is no bill.")
            raise typer.Exit(130) from None
        _print_report(console, result, exporters, still_serving=keep_serving)
        if keep_serving:
            console.print(f"Still serving [bold]{exporters.metrics_url}[/] for Prometheus: Ctrl+C to stop.")
            _wait_for_interrupt()
            console.print("stopped.")
    finally:
        exporters.shutdown()


def _wait_for_interrupt() -> None:
    """Block until Ctrl+C or SIGTERM (how service managers and test harnesses stop a process)."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: Ctrl+C only
        pass
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return


def _announce(
    console: Console,
    exporters: DemoExporters,
    real: RealTarget | None,
    jobs: int | None,
    duration: float | None,
    concurrency: int,
) -> None:
    target = (
        f"{real.api.provider_key} {real.model} (real provider)"
        if real
        else (
            "the built-in provider simulator on 127.0.0.1 (OpenAI, Anthropic, Gemini, DeepSeek, OpenRouter, vLLM "
            "wire formats; no keys, no network)"
        )
    )
    amount = (
        f"{jobs} jobs"
        if duration is None
        else f"jobs for {duration:g} s" + (f" (at most {jobs})" if jobs is not None else "")
    )
    console.print(f"[bold]statek demo[/]: {amount}, {concurrency} at a time, against {target}.")
    if real is None:
        console.print(
            "Injected failures (deliberate, seeded: the same in every run with this --seed), so you can "
            "see how statek meters what goes wrong: retries, failed calls (bytes counted, never a "
            "cost) and failed jobs:"
        )
        for m in simulated_models():
            for failure in m.behavior.failures:
                console.print(literal(f"  {m.model}: {describe_failure(failure)}"))
    console.print(
        f"Prometheus metrics, served while the demo runs: [bold]{exporters.metrics_url}[/]"
        + (f"   OTLP: {exporters.otlp_endpoint}" if exporters.otlp_endpoint else "")
    )


@dataclass
class _Tally:
    """What the progress bar shows: finished jobs and, from their usage, calls and cost so far."""

    done: int = 0
    calls: int = 0
    cost: Decimal = Decimal(0)
    unpriced: int = 0
    failed: int = 0

    def add(self, outcome: JobOutcome) -> None:
        self.done += 1
        self.calls += outcome.usage.calls
        self.cost += outcome.usage.total_cost or 0
        self.unpriced += outcome.usage.unpriced_calls
        self.failed += outcome.failure is not None

    def cost_text(self) -> str:
        """The cost so far; unpriced calls are named, never shown as ``$0``."""
        priced = f"${self.cost:.4f}" if self.calls > self.unpriced else ""
        unpriced = f"{self.unpriced:,} unpriced" if self.unpriced else ""
        return " + ".join(part for part in (priced, unpriced) if part) or "$0"


def _run_with_progress(console: Console, run: DemoRun) -> DemoResult:
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn() if run.duration is None else TextColumn("{task.fields[done]} jobs"),
        TextColumn("{task.fields[calls]} calls  {task.fields[cost]}  {task.fields[failed]} failed jobs"),
        TimeElapsedColumn(),
    )
    began = time.monotonic()
    total = float(run.jobs if run.duration is None else run.duration)  # type: ignore[arg-type]
    tally = _Tally()
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("jobs", total=total, done=0, calls=0, cost="$0", failed=0)

        def job_done(outcome: JobOutcome) -> None:
            tally.add(outcome)
            completed = tally.done if run.duration is None else min(time.monotonic() - began, run.duration)
            progress.update(
                task,
                completed=completed,
                done=tally.done,
                calls=tally.calls,
                cost=tally.cost_text(),
                failed=tally.failed,
            )

        run.on_job_done = job_done
        result = run.run()
        progress.update(task, completed=total)
    return result


def _print_report(
    console: Console, result: DemoResult, exporters: DemoExporters, *, still_serving: bool = False
) -> None:
    total = result.total()
    render_tables(console, by_model=result.by_model(), by_class=result.by_class(), total=total)
    jobs = result.jobs
    failures = [o.failure for o in result.outcomes if o.failure is not None]
    cost = f"cost {format_cost(total)} USD" if total.cost is not None else "no priced call"
    console.print(
        f"[bold]Grand total[/]: {jobs:,} jobs ({len(failures):,} failed) in {result.seconds:.1f} s, "
        f"{total.calls:,} calls, {total.input_tokens:,} input tokens ({total.cached_tokens:,} from cache), "
        f"{total.output_tokens:,} output tokens ({total.reasoning_tokens:,} reasoning), "
        f"{cost} + {total.unpriced_calls:,} unpriced calls, {total.failed_calls:,} failed calls."
    )
    if failures:
        # Grouped by model, error class and HTTP status, not by message: messages quote the body.
        kinds: Counter[tuple[str, type, int | None]] = Counter()
        example: dict[tuple[str, type, int | None], JobFailed] = {}
        for failure in failures:
            kind = (failure.model, type(failure.cause), getattr(failure.cause, "status_code", None))
            kinds[kind] += 1
            example.setdefault(kind, failure)
        console.print("Why jobs failed (after statek's retries):")
        for kind, n in kinds.most_common(8):
            failure = example[kind]
            reason = f"{failure.model}: {type(failure.cause).__name__}: {_first_line(failure.cause)}"
            console.print(f"  {n:>4} × {reason}", markup=False, highlight=False)
    _print_budget_stops(console, result)
    if result.simulator_requests is not None:
        statuses = ", ".join(
            f"{status or 'dropped'} ×{n}"
            for status, n in sorted(
                result.simulator_statuses.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)
            )
        )
        console.print(
            f"The simulator answered {result.simulator_requests:,} HTTP requests"
            + (f" ({statuses})" if statuses else "")
            + "; statek retried 429s, 5xx and dropped connections unless attempts ran out."
        )
    served = (
        f"Metrics: {exporters.metrics_url} (still served, see below)"
        if still_serving
        else f"Metrics were served at {exporters.metrics_url} while the demo ran (--keep-serving keeps them up)"
    )
    console.print(f"{served}. Dashboards: dashboards/statek.json (docs/dashboards.md)")


def _print_budget_stops(console: Console, result: DemoResult) -> None:
    """Which job classes ran into their budget: how many jobs, and one job's spend against its limit."""
    stopped = result.budget_stops()
    if not stopped:
        return
    by_class = Counter(o.plan.job_class for o in stopped)
    ran = {name: jobs for name, (jobs, _, _) in result.by_class().items()}
    for job_class, n in by_class.most_common():
        example = next(o for o in stopped if o.plan.job_class == job_class)
        refused = example.stopped
        assert refused is not None
        limit = example.plan.budget
        ledger = example.usage.budget
        console.print(
            f"Budgets: {n:,} of {ran[job_class]:,} {job_class} jobs ran into their budget"
            + (f" ({limit})" if limit is not None else "")
            + " and were stopped before the call that would pass it (nothing sent; "
            "statek_budget_refusals_total counts them). "
            + f"E.g. {example.plan.job_id}: {ledger.status() if ledger is not None else refused}; "
            + f"refused a {refused.model} call estimated at "
            + _estimate_text(refused),
            markup=False,
            highlight=False,
        )


def _estimate_text(refused: BudgetExceededError) -> str:
    estimate = refused.estimate
    if isinstance(estimate, Decimal):
        return f"${estimate.quantize(Decimal('0.000001'))}."
    return f"{estimate} ({refused.reason})."


def _first_line(error: BaseException, limit: int = 240) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
