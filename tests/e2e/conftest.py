"""Real components for the end-to-end tests, started on loopback and stopped by PID.

- :func:`launch_prometheus`: Debian's ``/usr/bin/prometheus`` scraping given targets every second,
  exemplar storage on; :func:`query` / :func:`values_by` read its HTTP API.
- :func:`launch_rotel`: ``rotel-agent`` (the OpenTelemetry collector in the ``rotel`` wheel)
  receiving OTLP/HTTP and forwarding everything over OTLP/HTTP.
- :class:`Tap` (fixture ``tap``): an ``oteltap`` OTLP/HTTP receiver that keeps every span and metric.
- :class:`GunzipRelay`: a small loopback relay (see its docstring); ``BlackHole`` is ``statek.testing``'s.
- :func:`run_mixed_traffic`: a known set of calls through the provider simulator, with the totals
  every exporter must show.

A missing component fails the test with the command that installs it; nothing here skips.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from statek import LLM_API, ChatHistoryItem
from statek._http import RetryPolicy
from statek.exceptions import ProviderError
from statek.executors.job import Job
from statek.llm_api import LLM_Response
from statek.testing import Failure, ModelBehavior, ProviderSimulator

if TYPE_CHECKING:
    from typing_extensions import Self

PROMETHEUS_INSTALL = "apt-get update && apt-get install -y --no-install-recommends prometheus"
ROTEL_INSTALL = "pip install rotel"
OTELTAP_INSTALL = "pip install oteltap"


# ----------------------------------------------------------------------------- small helpers
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, what: str, *, interval: float = 0.2) -> None:
    """Poll ``check`` until it is truthy; fail the test after ``timeout`` seconds.

    ``httpx.HTTPError`` and ``OSError`` from ``check`` count as "not yet" (a server still starting).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for: {what}")


def stop_process(process: subprocess.Popen[Any]) -> None:
    """SIGTERM the process we started (by its PID), then SIGKILL if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


# ----------------------------------------------------------------------------- Prometheus
def prometheus_binary() -> str:
    """The Prometheus binary; fails (never skips) with the install command when it is missing."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not os.access(binary, os.X_OK):
        pytest.fail(f"the prometheus binary is missing: {PROMETHEUS_INSTALL}")
    return binary


@dataclass(frozen=True)
class Prometheus:
    """A running Prometheus: its base URL (``http://127.0.0.1:PORT``) and process."""

    url: str
    process: subprocess.Popen[Any]


@contextmanager
def launch_prometheus(
    targets: Sequence[str], workdir: Path, *, scrape_interval: str = "1s"
) -> Iterator[Prometheus]:
    """Run Prometheus scraping ``targets`` (``host:port``, job ``statek``) with exemplar storage on,
    its TSDB in ``workdir``; yield once ``/-/ready`` answers, stop it by PID on exit."""
    binary = prometheus_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "prometheus.yml"
    listed = ", ".join(f"'{t}'" for t in targets)
    config.write_text(
        f"global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: {scrape_interval}\n"
        "scrape_configs:\n  - job_name: statek\n    static_configs:\n"
        f"      - targets: [{listed}]\n"
    )
    log_path = workdir / "prometheus.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--enable-feature=exemplar-storage",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            if process.poll() is not None:
                pytest.fail(f"prometheus exited with {process.returncode}:\n{_tail(log_path)}")
            return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200

        wait_for(ready, 30, "Prometheus ready")
        yield Prometheus(url, process)
    finally:
        stop_process(process)


def query(url: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    """The result vector of instant query ``expr`` (at ``at``, default now); asserts success."""
    params = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    response = httpx.get(f"{url}/api/v1/query", params=params, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", f"{expr}\n-> {body}"
    return list(body["data"]["result"])


def values_by(url: str, expr: str, label: str | None = None, at: float | None = None) -> dict[str, float]:
    """``{value of label: sample value}`` of ``expr`` (``label=None``: ``{"": value}`` for one series)."""
    out: dict[str, float] = {}
    for series in query(url, expr, at):
        key = series["metric"].get(label, "") if label else ""
        assert key not in out, f"{expr}: two series for {label}={key!r}"
        out[key] = float(series["value"][1])
    return out


def query_exemplars(url: str, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    """``/api/v1/query_exemplars``: one entry per series, ``seriesLabels`` and ``exemplars``."""
    response = httpx.get(
        f"{url}/api/v1/query_exemplars",
        params={"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}"},
        timeout=10,
    )
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", f"{expr}\n-> {body}"
    return list(body["data"])


# ----------------------------------------------------------------------------- rotel
def rotel_binary() -> Path:
    """``rotel-agent`` from the ``rotel`` wheel; fails with the install command when missing."""
    try:
        import rotel
    except ImportError:
        pytest.fail(f"the rotel collector is missing: {ROTEL_INSTALL}")
    binary = Path(rotel.__file__).parent / "rotel-agent"
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} is missing or not executable: {ROTEL_INSTALL}")
    return binary


@dataclass(frozen=True)
class Rotel:
    """A running ``rotel-agent``: the base URL of its OTLP/HTTP receiver, its process and log."""

    url: str
    process: subprocess.Popen[Any]
    log: Path


@contextmanager
def launch_rotel(forward_to: str, workdir: Path) -> Iterator[Rotel]:
    """Run ``rotel-agent`` receiving OTLP on loopback and exporting everything over OTLP/HTTP to
    ``forward_to`` (a base URL; rotel appends ``/v1/traces`` and ``/v1/metrics``)."""
    binary = rotel_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    http_port, grpc_port = free_port(), free_port()
    log_path = workdir / "rotel.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                str(binary),
                "start",
                "--otlp-http-endpoint",
                f"127.0.0.1:{http_port}",
                "--otlp-grpc-endpoint",
                f"127.0.0.1:{grpc_port}",
                "--exporter",
                "otlp",
                "--otlp-exporter-endpoint",
                forward_to,
                "--otlp-exporter-protocol",
                "http",
                "--batch-timeout",
                "100ms",
                "--pid-file",
                str(workdir / "rotel.pid"),
                "--log-file",
                str(workdir / "rotel-agent.log"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def ready() -> bool:
            if process.poll() is not None:
                pytest.fail(f"rotel-agent exited with {process.returncode}:\n{_tail(log_path)}")
            return _port_open(http_port)

        wait_for(ready, 20, "rotel-agent listening", interval=0.05)
        yield Rotel(f"http://127.0.0.1:{http_port}", process, log_path)
    finally:
        stop_process(process)


class GunzipRelay:
    """A loopback HTTP relay that un-gzips OTLP request bodies and forwards them to ``target``.

    Why: rotel-agent 0.0.1-alpha10 gzips its OTLP/HTTP exports whatever ``--otlp-exporter-compression``
    says, and oteltap 1.0.0 answers gzip bodies with 400 "Failed to decode request body". The relay
    changes nothing but the encoding; it records each request's path and user agent, so a test can
    show the data really came out of rotel.
    """

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.seen: list[tuple[str, str]] = []
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.headers.get("content-encoding", "").lower() == "gzip":
                    body = gzip.decompress(body)
                relay.seen.append((self.path, self.headers.get("user-agent", "")))
                answer = httpx.post(
                    relay.target + self.path,
                    content=body,
                    headers={"content-type": self.headers.get("content-type", "application/x-protobuf")},
                    timeout=10,
                )
                self.send_response(answer.status_code)
                self.send_header("content-type", answer.headers.get("content-type", "application/x-protobuf"))
                self.send_header("content-length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="gunzip-relay", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


# ----------------------------------------------------------------------------- oteltap
def any_value(value: Any) -> Any:
    """A Python value from an OTLP ``AnyValue``."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(any_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind)


def attributes(key_values: Any) -> dict[str, Any]:
    """``{key: value}`` from a repeated OTLP ``KeyValue``."""
    return {kv.key: any_value(kv.value) for kv in key_values}


@dataclass
class Tap:
    """An oteltap OTLP/HTTP receiver and everything it received so far (protobuf ``Span`` and
    ``Metric`` messages, in arrival order). ``url`` is the base URL to export to."""

    url: str
    spans: list[Any] = field(default_factory=list)
    metrics: list[Any] = field(default_factory=list)

    async def wait_until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        """Let the receiver run until ``check()`` holds; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                pytest.fail(
                    f"timed out after {timeout} s waiting for: {what} "
                    f"({len(self.spans)} spans, {len(self.metrics)} metrics received)"
                )
            await asyncio.sleep(0.1)

    def latest_points(self, name: str) -> dict[frozenset[tuple[str, Any]], Any]:
        """The newest data point of metric ``name`` per attribute set: with cumulative temporality,
        the total so far, however many times it was exported."""
        latest: dict[frozenset[tuple[str, Any]], Any] = {}
        for metric in self.metrics:
            if metric.name != name:
                continue
            data = getattr(metric, metric.WhichOneof("data"))
            for point in data.data_points:
                key = frozenset(attributes(point.attributes).items())
                if key not in latest or point.time_unix_nano >= latest[key].time_unix_nano:
                    latest[key] = point
        return latest

    def counter_by(self, name: str, label: str) -> dict[str, float]:
        """Counter ``name`` summed by attribute ``label`` (points without it under ``""``)."""
        out: Counter[str] = Counter()
        for key, point in self.latest_points(name).items():
            value = point.as_int if point.WhichOneof("value") == "as_int" else point.as_double
            out[str(dict(key).get(label, ""))] += value
        return dict(out)


@pytest.fixture
async def tap() -> Any:
    """A started :class:`Tap` on a free loopback port, collecting spans and metrics until the test ends."""
    try:
        from oteltap import OtelTapHttpProtobufReceiver, OtelTapHttpProtobufReceiverSettings
    except ImportError:
        pytest.fail(f"the oteltap receiver is missing: {OTELTAP_INSTALL}")
    port = free_port()
    receiver = OtelTapHttpProtobufReceiver(OtelTapHttpProtobufReceiverSettings(http_port=port))
    await receiver.start()
    found = Tap(f"http://127.0.0.1:{port}")

    # oteltap hands each message only to the streams open at that moment: subscribe before any export.
    async def keep(stream: Any, into: list[Any]) -> None:
        async for message in stream:
            into.append(message)

    tasks = [
        asyncio.create_task(keep(receiver.stream_traces(), found.spans)),
        asyncio.create_task(keep(receiver.stream_metrics(), found.metrics)),
    ]
    for _ in range(3):
        await asyncio.sleep(0)
    try:
        yield found
    finally:
        await receiver.stop()
        await asyncio.gather(*tasks, return_exceptions=True)


# ----------------------------------------------------------------------------- OpenTelemetry env
OTEL_ENV = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_METRIC_EXPORT_TIMEOUT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
)


@pytest.fixture
def clean_statek(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ``OTEL_*`` configuration from the environment and no statek instrumentation, before and after."""
    import statek

    for name in OTEL_ENV:
        monkeypatch.delenv(name, raising=False)
    statek.shutdown()
    yield
    statek.shutdown(timeout=1)


# ----------------------------------------------------------------------------- known traffic
JOB_ID = "e2e-export-job"
RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05, jitter=False)

BEHAVIORS = {
    # priced from the table; the first request gets a 429 (one retry)
    "gpt-4o-mini": ModelBehavior(
        text="Paris.",
        input_tokens=1200,
        cached_tokens=1024,
        output_tokens=30,
        failures=[Failure.rate_limit(first=1, retry_after=0)],
    ),
    # priced; cache reads and writes, reasoning
    "claude-sonnet-4-5": ModelBehavior(
        text="Sure.",
        thinking="Let me think about it.",
        input_tokens=2000,
        cached_tokens=600,
        cache_write_tokens=400,
        output_tokens=300,
        reasoning_tokens=120,
    ),
    # priced; reasoning
    "gemini-2.5-flash": ModelBehavior(text="Fine.", input_tokens=900, output_tokens=50, reasoning_tokens=20),
    # no price row: the provider-reported cost is used
    "meta-llama/llama-3.3-70b-instruct": ModelBehavior(
        text="Hi.", input_tokens=500, output_tokens=40, cost="0.000123"
    ),
    # priced nowhere: unpriced, never $0
    "acme/support-llama-8b-ft": ModelBehavior(text="In-house.", input_tokens=300, output_tokens=20),
    # a hard failure
    "acme/broken": ModelBehavior(failures=[Failure.hard(400)]),
}

PLAN: tuple[tuple[str, str], ...] = (
    ("OPENAI", "gpt-4o-mini"),
    ("ANTHROPIC", "claude-sonnet-4-5"),
    ("GEMINI", "gemini-2.5-flash"),
    ("OPENROUTER", "meta-llama/llama-3.3-70b-instruct"),
    ("VLLM", "acme/support-llama-8b-ft"),
    ("OPENAI", "gpt-4o-mini"),
    ("VLLM", "acme/broken"),
    ("ANTHROPIC", "claude-sonnet-4-5"),
    ("GEMINI", "gemini-2.5-flash"),
    ("OPENROUTER", "meta-llama/llama-3.3-70b-instruct"),
    ("VLLM", "acme/support-llama-8b-ft"),
    ("OPENAI", "gpt-4o-mini"),
)


@dataclass
class Traffic:
    """What :func:`run_mixed_traffic` did, and the totals every exporter must show for it.

    Token and cost totals are the sums of the responses' stats, checked against the job's
    :class:`~statek.executors.llm_usage.LLM_Usage`; bytes and request counts include the failures.
    """

    calls: list[tuple[str, str, LLM_Response]]  # (gen_ai provider name, model, response)
    errors: list[tuple[str, str, ProviderError]]
    job: Job

    @property
    def total(self) -> int:
        return len(self.calls) + len(self.errors)

    def tokens(self) -> dict[str, int]:
        out = dict.fromkeys(("input", "output", "cache_read", "cache_write", "reasoning"), 0)
        for _, _, response in self.calls:
            s = response.detail
            out["input"] += s.input_tokens
            out["output"] += s.output_tokens
            out["cache_read"] += s.cached_tokens
            out["cache_write"] += s.cache_write_tokens
            out["reasoning"] += s.reasoning_tokens
        return out

    def tokens_by_model(self) -> dict[tuple[str, str], int]:
        """``{(model, token type): tokens}``."""
        out: Counter[tuple[str, str]] = Counter()
        for _, model, response in self.calls:
            s = response.detail
            for kind, n in (
                ("input", s.input_tokens),
                ("output", s.output_tokens),
                ("cache_read", s.cached_tokens),
                ("cache_write", s.cache_write_tokens),
                ("reasoning", s.reasoning_tokens),
            ):
                out[(model, kind)] += n
        return dict(out)

    def cost(self) -> Decimal:
        return sum((r.detail.priced_cost or Decimal(0) for _, _, r in self.calls), Decimal(0))

    def cost_by(self, what: str) -> dict[str, Decimal]:
        """Cost summed by ``"status"`` (calculated/reported) or ``"model"``; unpriced calls add nothing."""
        out: dict[str, Decimal] = {}
        for _, model, response in self.calls:
            if response.detail.priced_cost is not None:
                key = response.detail.cost_status if what == "status" else model
                out[key] = out.get(key, Decimal(0)) + response.detail.priced_cost
        return out

    def requests_by_status(self) -> dict[str, int]:
        return dict(Counter(r.detail.cost_status for _, _, r in self.calls))

    def error_types(self) -> dict[str, int]:
        return dict(Counter(str(getattr(e, "status_code", type(e).__qualname__)) for _, _, e in self.errors))

    def bytes(self) -> dict[str, int]:
        sent = sum(r.detail.total_bytes_sent for _, _, r in self.calls)
        received = sum(r.detail.total_bytes_received for _, _, r in self.calls)
        sent += sum(e.bytes_sent for _, _, e in self.errors)
        received += sum(e.bytes_received for _, _, e in self.errors)
        return {"transmit": sent, "receive": received}


def check_against_job(traffic: Traffic) -> None:
    """The responses' stats (and the failures' bytes) and the job's ``LLM_Usage`` agree, so either is
    "the truth" the exporters are checked against."""
    usage = traffic.job.usage
    tokens = traffic.tokens()
    assert usage.calls == len(traffic.calls)
    assert usage.total_input_tokens == tokens["input"]
    assert usage.total_output_tokens == tokens["output"]
    assert usage.total_cached_tokens == tokens["cache_read"]
    assert usage.total_cache_write_tokens == tokens["cache_write"]
    assert usage.total_reasoning_tokens == tokens["reasoning"]
    assert usage.total_cost == traffic.cost()
    assert usage.unpriced_calls == traffic.requests_by_status().get("unpriced", 0)
    assert usage.failed_calls == len(traffic.errors)
    wire = traffic.bytes()
    assert (usage.total_bytes_sent, usage.total_bytes_received) == (wire["transmit"], wire["receive"])


async def run_mixed_traffic(
    sim: ProviderSimulator, plan: Sequence[tuple[str, str]] = PLAN, *, job_id: str = JOB_ID
) -> Traffic:
    """Make the calls of ``plan`` (registry provider, model) through ``sim``, one after the other,
    inside ``Job(job_id)``; failures are kept, not raised."""
    urls: Mapping[str, str] = {
        "OPENAI": sim.openai_url,
        "OPENROUTER": sim.openai_url,
        "VLLM": sim.openai_url,
        "ANTHROPIC": sim.anthropic_url,
        "GEMINI": sim.gemini_url,
    }
    apis = {
        name: LLM_API.get(name, api_url=urls[name], api_key="e2e-key", retry=RETRY)
        for name in {p for p, _ in plan}
    }
    calls: list[tuple[str, str, LLM_Response]] = []
    errors: list[tuple[str, str, ProviderError]] = []
    async with Job(job_id) as job:
        for name, model in plan:
            api = apis[name]
            try:
                response = await api.process_request(
                    "Be brief.",
                    model,
                    chat_history=[ChatHistoryItem.user("What is the capital of France?")],
                    enable_reasoning=name in ("ANTHROPIC", "GEMINI"),
                )
            except ProviderError as error:
                errors.append((api.genai_provider_name, model, error))
            else:
                calls.append((api.genai_provider_name, model, response))
        # One streamed call, so that every instrument (time to first chunk too) has something to show.
        streaming = LLM_API.get("OPENAI", api_url=sim.openai_url, api_key="e2e-key", retry=RETRY, stream=True)
        stream = streaming.stream_request(
            "Be brief.", "gpt-4o-mini", chat_history=[ChatHistoryItem.user("And of Italy?")]
        )
        async for _ in stream:
            pass
        calls.append((streaming.genai_provider_name, "gpt-4o-mini", stream.response))
        apis["OPENAI (streamed)"] = streaming
    for api in apis.values():
        await api.aclose()
    return Traffic(calls, errors, job)


def close_to(found: float, expected: Decimal | float) -> bool:
    """Equal up to float representation (1e-9 relative): Decimal money becomes float only at the exporter."""
    want = float(expected)
    return abs(found - want) <= 1e-9 * max(abs(want), 1e-12)
