"""statek beside the peers a user would pick instead, on the same official SDK calls, in one
interleaved run.

Every client runs in its own worker process (instrumentations patch the ``openai`` module, so they
cannot share one), with the same OpenTelemetry SDK stack (a ``TracerProvider`` with a
``BatchSpanProcessor`` and a ``MeterProvider`` with a periodic reader, both exporting to a discarding
exporter: no network), against one loopback :class:`statek.testing.ProviderSimulator` in a process
of its own. In each round the parent asks every worker in turn, in a freshly shuffled order, for a
block of sequential calls, and each worker answers with the CPU its whole process spent (all threads:
exporters included) and each call's wall time. Ratios are taken per round against the uninstrumented
call made in the same environment, and their median and range over the rounds are printed.

The peers cannot share one environment (OpenLIT and OpenTelemetry's instrumentation pin
different OpenTelemetry releases), so each peer runs in a virtual environment of its own, next to
its own uninstrumented baseline, and statek in the environment this command runs in:

- ``openai``: ``OpenAI(...).chat.completions.create``, nothing instrumented (the baseline);
- ``openai + statek``: the same with ``http_client=statek.http_client(provider="OPENAI")``, priced model;
- ``openai + OTel GenAI``: OpenTelemetry's GenAI instrumentation for openai
  (``opentelemetry-instrumentation-openai-v2``), content capture off (its default);
- ``openai + OpenLIT``: ``openlit.init`` with the same providers, a local price file, content capture off;
- ``AsyncOpenAI``: ``await AsyncOpenAI(...).chat.completions.create``, nothing instrumented (the
  baseline of the two ``LLM_API``-style clients below);
- ``statek LLM_API``: ``api.process_request`` in a new ``Job`` per call;
- ``LiteLLM``: ``await litellm.acompletion(model="openai/...")`` (its own cost tracking on, priced
  model, no callbacks).

The peers' environments are made by ``--setup`` (``python -m venv`` and ``pip install`` of the
``bench-otel``, ``bench-openlit`` and ``bench-litellm`` extras of this checkout, under ``--venvs``);
a peer whose environment is missing is reported as such and skipped. Workers import statek from
this checkout (``PYTHONPATH``).

    python -m benchmarks peers --setup                 # once: make the peers' environments
    python -m benchmarks peers [--quick] [--rounds N] [--calls N] [--seed S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent
MODEL = "bench-model"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
PEERS = {"otel": "bench-otel", "openlit": "bench-openlit", "litellm": "bench-litellm"}
"""Peer environment -> the extra of pyproject.toml it installs."""


@dataclass(frozen=True)
class Client:
    name: str
    env: str
    """``main`` (the environment running this command) or a key of :data:`PEERS`."""
    baseline: str
    """The client whose CPU per call this one's is divided by (same environment)."""
    package: str
    """The distribution whose version is reported."""


CLIENTS = (
    Client("openai", "main", "openai", "openai"),
    Client("openai + statek", "main", "openai", "statek"),
    Client("AsyncOpenAI", "main", "AsyncOpenAI", "openai"),
    Client("statek LLM_API", "main", "AsyncOpenAI", "statek"),
    Client("openai [otel env]", "otel", "openai [otel env]", "openai"),
    Client("openai + OTel GenAI", "otel", "openai [otel env]", "opentelemetry-instrumentation-openai-v2"),
    Client("openai [openlit env]", "openlit", "openai [openlit env]", "openai"),
    Client("openai + OpenLIT", "openlit", "openai [openlit env]", "openlit"),
    Client("AsyncOpenAI [litellm env]", "litellm", "AsyncOpenAI [litellm env]", "openai"),
    Client("LiteLLM", "litellm", "AsyncOpenAI [litellm env]", "litellm"),
)


# ----------------------------------------------------------------------------- the simulator process
def _server() -> None:
    """Serve the simulator until stdin closes; print its base URL first."""
    from statek.testing import ModelBehavior, ProviderSimulator

    behavior = ModelBehavior(text="Paris.", input_tokens=1200, cached_tokens=1024, output_tokens=3)
    with ProviderSimulator(default=behavior, max_recorded=16) as sim:
        print(sim.base_url, flush=True)
        sys.stdin.read()


# ----------------------------------------------------------------------------- the worker process
def _providers() -> tuple[Any, Any]:
    """The OpenTelemetry SDK stack every client gets, set as the global providers; exports discard."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    class DiscardMetrics(MetricExporter):
        def export(
            self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            pass

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Discard()))
    meter_provider = MeterProvider(
        metric_readers=[PeriodicExportingMetricReader(DiscardMetrics(), export_interval_millis=5000)]
    )
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    return tracer_provider, meter_provider


def _openlit_prices(folder: str) -> str:
    """A local price file for OpenLIT (so it fetches none), pricing the benchmark's model."""
    path = Path(folder) / "openlit-prices.json"
    path.write_text(json.dumps({"chat": {MODEL: {"promptPrice": 0.00015, "completionPrice": 0.0006}}}))
    return str(path)


def _make_call(name: str, base: str, folder: str) -> Callable[[], Any] | Callable[[], Awaitable[Any]]:
    """The call ``name`` makes, set up as its user would set it up."""
    tracer_provider, meter_provider = _providers()
    if name.startswith("AsyncOpenAI"):
        from openai import AsyncOpenAI

        async_client = AsyncOpenAI(base_url=base + "/v1", api_key="bench-key", max_retries=0)
        return lambda: async_client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    if name == "statek LLM_API":
        from statek import LLM_API, ChatHistoryItem, Job
        from statek.model_pricing import set_model_pricing
        from statek.telemetry import configure_telemetry

        configure_telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)
        set_model_pricing("OPENAI", MODEL, "0.15", "0.60", "0.075")
        api = LLM_API.get("OPENAI", model=MODEL, api_url=base + "/v1/chat/completions", api_key="bench-key")
        history = [ChatHistoryItem.user(MESSAGES[0]["content"])]

        async def statek_call() -> Any:
            async with Job("bench-request"):
                return await api.process_request(model=MODEL, chat_history=history)

        return statek_call
    if name == "LiteLLM":
        os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # never fetch the price map
        import litellm

        litellm.telemetry = False
        litellm.register_model(
            {
                f"openai/{MODEL}": {
                    "input_cost_per_token": 0.15e-6,
                    "output_cost_per_token": 0.6e-6,
                    "cache_read_input_token_cost": 0.075e-6,
                    "litellm_provider": "openai",
                    "mode": "chat",
                }
            }
        )
        return lambda: litellm.acompletion(
            model=f"openai/{MODEL}", messages=MESSAGES, api_base=base + "/v1", api_key="bench-key"
        )
    # the official sync SDK, instrumented as each peer documents
    from openai import OpenAI

    kwargs: dict[str, Any] = {}
    if name == "openai + statek":
        import statek
        from statek.model_pricing import set_model_pricing
        from statek.telemetry import configure_telemetry

        configure_telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)
        set_model_pricing("OPENAI", MODEL, "0.15", "0.60", "0.075")
        kwargs["http_client"] = statek.http_client(provider="OPENAI")
    elif name == "openai + OTel GenAI":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    elif name == "openai + OpenLIT":
        import inspect

        import openlit

        options: dict[str, Any] = {
            "capture_message_content": False,
            "pricing_json": _openlit_prices(folder),
            "collect_gpu_stats": False,
        }
        if "tracer" in inspect.signature(openlit.init).parameters:
            options.update(
                tracer=tracer_provider.get_tracer("openlit"), meter=meter_provider.get_meter("openlit")
            )
        else:  # newer releases take the global providers (this worker process has no others)
            from opentelemetry import metrics, trace

            trace.set_tracer_provider(tracer_provider)
            metrics.set_meter_provider(meter_provider)
            # Its log events, off like statek's content capture (else a console exporter prints them).
            options["disable_events"] = True
        openlit.init(**options)
    client = OpenAI(base_url=base + "/v1", api_key="bench-key", max_retries=0, **kwargs)
    return lambda: client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]


def _worker(name: str, base: str, warmup: int) -> None:
    """Serve ``run N`` / ``stop`` lines on stdin; answer each with one JSON line on stdout."""
    with tempfile.TemporaryDirectory(prefix="statek-peers-") as folder:
        call = _make_call(name, base, folder)
        is_async = name.startswith("AsyncOpenAI") or name in ("statek LLM_API", "LiteLLM")
        loop = asyncio.new_event_loop()

        async def async_block(calls: int) -> list[int]:
            samples = []
            for _ in range(calls):
                started = time.perf_counter_ns()
                await call()  # type: ignore[misc]
                samples.append(time.perf_counter_ns() - started)
            return samples

        def block(calls: int) -> list[int]:
            if is_async:
                return loop.run_until_complete(async_block(calls))
            samples = []
            for _ in range(calls):
                started = time.perf_counter_ns()
                call()
                samples.append(time.perf_counter_ns() - started)
            return samples

        block(warmup)
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            command = line.split()
            if command[0] != "run":
                break
            cpu = time.process_time_ns()
            samples = block(int(command[1]))
            cpu = time.process_time_ns() - cpu
            print(json.dumps({"ns": samples, "cpu_ns": cpu}), flush=True)
        loop.close()


# ----------------------------------------------------------------------------- the parent
def venv_python(venvs: Path, env: str) -> Path | None:
    """The interpreter of environment ``env`` (``None`` for a peer environment not made yet)."""
    if env == "main":
        return Path(sys.executable)
    python = venvs / env / "bin" / "python"
    return python if python.exists() else None


def setup(venvs: Path) -> None:
    """Make each peer's environment: a venv with this checkout's ``bench-PEER`` extra."""
    for env, extra in PEERS.items():
        folder = venvs / env
        print(f"making {folder} ({extra})", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        done = subprocess.run(
            [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", f"{REPO}[{extra}]"], check=False
        )
        if done.returncode != 0:  # a peer that does not install is reported missing, the others still run
            print(f"{extra} did not install (pip exit {done.returncode}); {env} will be skipped", flush=True)
            shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Worker:
    client: Client
    python: Path
    base: str
    warmup: int
    cpu_us: list[float] = field(default_factory=list)
    """CPU per call of each block (µs)."""
    wall_p50_us: list[float] = field(default_factory=list)
    version: str = "?"

    def start(self) -> None:
        self.stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "0"}
        self.process = subprocess.Popen(
            [
                str(self.python),
                "-m",
                "benchmarks.peers",
                "--worker",
                self.client.name,
                self.base,
                str(self.warmup),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            cwd=REPO,
            env=env,
        )
        self.version = (
            subprocess.run(
                [
                    str(self.python),
                    "-c",
                    f"import importlib.metadata as m; print(m.version({self.client.package!r}))",
                ],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            or "?"
        )

    def _ask(self, line: str | None) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        if line is not None:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            self.stderr.seek(0)
            raise RuntimeError(f"worker {self.client.name!r} exited early:\n{self.stderr.read()[-4000:]}")
        result: dict[str, Any] = json.loads(answer)
        return result

    def ready(self) -> None:
        self._ask(None)

    def run(self, calls: int) -> None:
        answer = self._ask(f"run {calls}")
        self.cpu_us.append(answer["cpu_ns"] / calls / 1000)
        self.wall_p50_us.append(statistics.median(answer["ns"]) / 1000)

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.stderr.close()


def _ratios(worker: Worker, base: Worker) -> list[float]:
    return [a / b for a, b in zip(worker.cpu_us, base.cpu_us)]


def _report(workers: dict[str, Worker], missing: list[str]) -> None:
    print(
        f"\n{'client':<27}{'version':>10}{'CPU us/call':>13}{'x baseline':>12}{'  (range)':<16}"
        f"{'p50 wall us':>12}{'x baseline':>11}"
    )
    overheads: dict[str, float] = {}
    for client in CLIENTS:
        worker = workers.get(client.name)
        if worker is None:
            continue
        base = workers[client.baseline]
        ratios = _ratios(worker, base)
        ratio = statistics.median(ratios)
        wall = statistics.median(worker.wall_p50_us)
        wall_ratio = statistics.median(a / b for a, b in zip(worker.wall_p50_us, base.wall_p50_us))
        span = f"({min(ratios):.2f}..{max(ratios):.2f})"
        print(
            f"{client.name:<27}{worker.version:>10}{statistics.median(worker.cpu_us):13,.0f}{ratio:12.3f}  "
            f"{span:<14}{wall:12,.0f}{wall_ratio:11.3f}"
        )
        if client.name != client.baseline:
            overheads[client.name] = ratio - 1
    for name in missing:
        print(f"{name:<27} not run: its environment is missing (python -m benchmarks peers --setup)")
    sdk_peers = {n: o for n, o in overheads.items() if n in ("openai + OTel GenAI", "openai + OpenLIT")}
    if "openai + statek" in overheads and sdk_peers:
        best = min(sdk_peers, key=lambda n: sdk_peers[n])
        ours = overheads["openai + statek"]
        print(
            f"\nofficial SDK call: statek's CPU overhead {ours:+.1%} of the uninstrumented call, the best peer's "
            f"({best}) {sdk_peers[best]:+.1%}: statek / best peer = {ours / sdk_peers[best]:.2f} (goal <= 0.5)"
        )
    if "statek LLM_API" in overheads and "LiteLLM" in overheads:
        print(
            f"LLM_API-style call: statek LLM_API {overheads['statek LLM_API']:+.1%}, "
            f"LiteLLM {overheads['LiteLLM']:+.1%} over the uninstrumented AsyncOpenAI call"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks peers", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 100 calls (noisier)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--calls", type=int, default=None, help="calls per block")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--venvs",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "statek-bench-peers",
        help="folder of the peers' environments (default: %(default)s)",
    )
    parser.add_argument("--setup", action="store_true", help="make the peers' environments, then stop")
    parser.add_argument(
        "--only", nargs="*", help="run only these environments (main, otel, openlit, litellm)"
    )
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.server:
        _server()
        return
    if args.worker:
        _worker(args.worker[0], args.worker[1], int(args.worker[2]))
        return
    if args.setup:
        setup(args.venvs)
        return
    rounds = args.rounds or (3 if args.quick else 7)
    calls = args.calls or (100 if args.quick else 300)
    rng = random.Random(args.seed)
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.peers", "--server"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert server.stdout is not None
    base = server.stdout.readline().strip()
    workers: dict[str, Worker] = {}
    missing: list[str] = []
    try:
        for client in CLIENTS:
            python = venv_python(args.venvs, client.env)
            if python is None or (args.only and client.env not in args.only):
                if python is None:
                    missing.append(client.name)
                continue
            workers[client.name] = Worker(client, python, base, args.warmup)
        for worker in workers.values():
            worker.start()
        for worker in workers.values():
            worker.ready()
        print(
            f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; {rounds} rounds of {calls} "
            f"sequential calls per client, shuffled each round; simulator at {base}",
            flush=True,
        )
        order = list(workers.values())
        for number in range(rounds):
            rng.shuffle(order)
            started = time.perf_counter()
            for worker in order:
                worker.run(calls)
            print(f"round {number + 1}/{rounds}: {time.perf_counter() - started:.1f} s", flush=True)
    finally:
        for worker in workers.values():
            worker.stop()
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)
    _report(workers, missing)


if __name__ == "__main__":
    main()
