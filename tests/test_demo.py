"""``statek demo``: the printed bill is the SDK's own usage, ``/metrics`` agrees with it, bad options fail cleanly.

The demo runs for real here (loopback simulator, real providers, real telemetry and exporters), only
with fewer jobs than the default.
"""

from __future__ import annotations

import asyncio
import io
import re
import socket
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from oteltap import OtelTapHttpProtobufReceiver, OtelTapHttpProtobufReceiverSettings
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from typer.testing import CliRunner

from statek.cli import app
from statek.cli.demo import DEFAULT_JOBS, REAL_PROVIDER_JOBS, _print_report
from statek.demo import DemoResult, DemoRun
from statek.demo.exporters import DemoExporters
from statek.demo.simulated import CacheRule, PromptCache
from statek.demo.traffic import JOB_CLASSES, LONG_CONTEXT_TOKENS, REAL_MAX_TOKENS, Roles, job_plans
from statek.model_pricing import get_model_pricing
from statek.testing import ProviderSimulator

JOBS = 40
SEED = 3

_GRAND_TOTAL = re.compile(
    r"Grand total: (?P<jobs>[\d,]+) jobs \((?P<failed_jobs>[\d,]+) failed\) in [\d.]+ s, (?P<calls>[\d,]+) calls, "
    r"(?P<input>[\d,]+) input tokens \((?P<cached>[\d,]+) from cache\), (?P<output>[\d,]+) output tokens "
    r"\((?P<reasoning>[\d,]+) reasoning\), cost \$(?P<cost>[\d,.]+) USD \+ (?P<unpriced>[\d,]+) unpriced calls, "
    r"(?P<errors>[\d,]+) failed calls\."
)


def _flat(text: str) -> str:
    """``text`` with every run of whitespace (including the console's line wraps) as one space."""
    return " ".join(text.split())


def _number(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.fixture(scope="module")
def demo_run() -> Iterator[tuple[DemoResult, str, str]]:
    """One small demo run: its result, the printed report, and /metrics as scraped after the run."""
    exporters = DemoExporters.start("127.0.0.1", 0)
    try:
        result = DemoRun(jobs=JOBS, concurrency=JOBS, seed=SEED).run()
        console = Console(record=True, width=200, file=io.StringIO())
        _print_report(console, result, exporters)
        httpx.get(exporters.metrics_url, timeout=10)  # the first scrape shows each new series at zero
        metrics = httpx.get(exporters.metrics_url, timeout=10).text
    finally:
        exporters.shutdown()
    yield result, console.export_text(), metrics


def _samples(metrics: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == name
    ]


def _sum(metrics: str, name: str, **labels: str) -> float:
    return sum(v for lab, v in _samples(metrics, name) if all(lab.get(k) == w for k, w in labels.items()))


def test_printed_grand_total_is_the_jobs_own_usage(demo_run: tuple[DemoResult, str, str]) -> None:
    result, printed, _ = demo_run
    match = _GRAND_TOTAL.search(_flat(printed))
    assert match, printed
    usages = [outcome.usage for outcome in result.outcomes]  # every job's own LLM_Usage
    assert _number(match["jobs"]) == len(usages) == JOBS
    assert _number(match["calls"]) == sum(u.calls for u in usages) > JOBS
    assert _number(match["input"]) == sum(u.total_input_tokens for u in usages)
    assert _number(match["cached"]) == sum(u.total_cached_tokens for u in usages) > 0
    assert _number(match["output"]) == sum(u.total_output_tokens for u in usages)
    assert _number(match["reasoning"]) == sum(u.total_reasoning_tokens for u in usages) > 0
    assert _number(match["unpriced"]) == sum(u.unpriced_calls for u in usages) > 0
    cost = sum((u.total_cost for u in usages if u.total_cost is not None), Decimal(0))
    assert Decimal(match["cost"].replace(",", "")) == cost.quantize(Decimal("0.000001"))
    failed = sum(o.failure is not None for o in result.outcomes)
    assert _number(match["errors"]) == _number(match["failed_jobs"]) == failed


def test_the_report_says_why_jobs_failed(demo_run: tuple[DemoResult, str, str]) -> None:
    result, printed, _ = demo_run
    failures = [o.failure for o in result.outcomes if o.failure is not None]
    assert failures, "the demo's traffic includes hard failures"
    assert "Why jobs failed (after statek's retries):" in printed
    for failure in failures:
        assert f"{failure.model}: {type(failure.cause).__name__}: " in printed


def test_tables_show_every_model_and_job_class(demo_run: tuple[DemoResult, str, str]) -> None:
    result, printed, _ = demo_run
    assert "Usage by model" in printed and "Usage by job class" in printed
    rows = {line.split()[1]: line for line in printed.splitlines() if len(line.split()) > 2}
    per_model: Counter[str] = Counter()
    for usage in (o.usage for o in result.outcomes):
        for (_, model), snapshot in usage.by_model().items():
            per_model[model] += snapshot.calls
    assert len(per_model) >= 8  # OpenAI, Anthropic, Gemini, DeepSeek, OpenRouter and vLLM models
    for model, calls in per_model.items():
        assert model in rows, model
        assert f" {calls:,} " in rows[model], (model, rows[model])
    assert (
        "unpriced" in rows["acme/support-llama-8b-ft"] and "$0.000000" not in rows["acme/support-llama-8b-ft"]
    )
    assert "*" in rows["meta-llama/llama-3.3-70b-instruct"] and "* cost reported by the provider" in printed
    jobs_per_class = Counter(o.plan.job_class for o in result.outcomes)
    class_rows = {line.split()[0]: line.split() for line in printed.splitlines() if line.split()}
    for name in JOB_CLASSES:
        assert class_rows[name][1] == f"{jobs_per_class[name]:,}", class_rows[name]


def test_metrics_endpoint_served_the_same_counts(demo_run: tuple[DemoResult, str, str]) -> None:
    result, _, metrics = demo_run
    total = result.total()
    assert _sum(metrics, "statek_requests_total", statek_outcome="success") == total.calls
    assert _sum(
        metrics, "statek_requests_total", statek_outcome="success", statek_cost_status="unpriced"
    ) == (total.unpriced_calls)
    assert _sum(metrics, "statek_requests_total", statek_outcome="error") == total.failed_calls
    for token_type, expected in (
        ("input", total.input_tokens),
        ("output", total.output_tokens),
        ("cache_read", total.cached_tokens),
        ("cache_write", total.cache_write_tokens),
        ("reasoning", total.reasoning_tokens),
    ):
        assert _sum(metrics, "statek_tokens_total", statek_token_type=token_type) == expected, token_type
    assert total.cost is not None
    assert _sum(metrics, "statek_cost_usd_total") == pytest.approx(float(total.cost), rel=1e-9)
    assert _sum(metrics, "statek_bytes_total", network_io_direction="transmit") >= total.bytes_sent > 0
    assert _sum(metrics, "statek_retries_total") > 0  # 429s, 5xx and dropped connections were retried
    providers = {lab["gen_ai_provider_name"] for lab, _ in _samples(metrics, "statek_requests_total")}
    assert {"openai", "anthropic", "gcp.gemini", "deepseek", "openrouter", "vllm"} <= providers


def test_long_context_request_is_priced_at_the_long_context_rate(
    demo_run: tuple[DemoResult, str, str],
) -> None:
    result, _, _ = demo_run
    (long_job,) = [o for o in result.outcomes if o.plan.doc_tokens == LONG_CONTEXT_TOKENS]
    (snapshot,) = long_job.usage.by_model().values()
    assert snapshot.model == "gemini-2.5-pro" and snapshot.input_tokens > 200_000
    base = get_model_pricing("GEMINI", "gemini-2.5-pro", no_create=True)
    assert base is not None and snapshot.cost is not None
    base_cost = (
        snapshot.input_tokens * base.input_price_per_M + snapshot.output_tokens * base.output_price_per_M
    )
    assert snapshot.cost > base_cost / 1_000_000


def test_class_and_run_totals_come_from_parent_jobs(demo_run: tuple[DemoResult, str, str]) -> None:
    result, _, _ = demo_run
    by_class = result.by_class()
    assert set(by_class) == set(JOB_CLASSES)
    assert sum(line.calls for _, _, line in by_class.values()) == result.total().calls
    assert sum(line.cost or 0 for _, _, line in by_class.values()) == result.total().cost
    assert sum(line.calls for line in result.by_model().values()) == result.total().calls


# ----------------------------------------------------------------------------- the traffic itself


def test_job_plan_is_repeatable_and_covers_every_class_early() -> None:
    first = [p for _, p in zip(range(30), job_plans(Roles.simulated(), seed=7))]
    again = [p for _, p in zip(range(30), job_plans(Roles.simulated(), seed=7))]
    assert first == again
    assert [p.job_class for p in first[:4]] == list(JOB_CLASSES)
    assert [p.doc_tokens for p in first if p.doc_tokens > 200_000] == [LONG_CONTEXT_TOKENS]


def test_prompt_cache_reads_seen_prefixes_and_anthropic_writes_first() -> None:
    cache = PromptCache()
    system = "s" * 8000  # 2,000 tokens
    automatic = CacheRule(minimum=1024, increment=128)
    assert cache.lookup("m", [system, "q1"], automatic) == (0, 0)
    assert cache.lookup("m", [system, "q2"], automatic) == (1920, 0)  # 2,000 rounded down to 128s
    assert cache.lookup("other-model", [system, "q2"], automatic) == (0, 0)
    explicit = CacheRule(minimum=1024, explicit=True)
    marked = system + '"cache_control"'
    assert cache.lookup("claude", [marked, "q1"], explicit) == (0, 2005)  # first use writes the prompt
    assert cache.lookup("claude", [marked, "q2"], explicit) == (2004, 1)  # then reads the marked prefix
    assert cache.lookup("claude", [system, "q3"], explicit) == (0, 0)  # unmarked: no caching at all


# ----------------------------------------------------------------------------- the command line


def test_cli_runs_and_prints_the_bill() -> None:
    result = CliRunner().invoke(app, ["demo", "--jobs", "6", "--metrics-port", "0", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "Usage by model" in result.output and "Usage by job class" in result.output
    assert "Grand total: 6 jobs" in _flat(result.output)
    assert "http://127.0.0.1:" in result.output


def _bad(args: list[str], monkeypatch: pytest.MonkeyPatch | None = None) -> str:
    result = CliRunner().invoke(app, ["demo", *args])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    message = result.stderr.strip()
    assert "Traceback" not in result.output and "Traceback" not in message
    assert message.startswith("statek demo: error: ") and "\n" not in message, message
    return message


def test_bad_numbers_are_one_line_errors() -> None:
    assert "--jobs" in _bad(["--jobs", "0"])
    assert "--duration" in _bad(["--duration", "-1"])
    assert "--concurrency" in _bad(["--concurrency", "0"])
    assert "--metrics-port" in _bad(["--metrics-port", "70000"])
    assert "--model" in _bad(["--provider", "OPENAI"])
    assert "--metrics-host" in _bad(["--metrics-host", "256.1.1.1", "--metrics-port", "0"])


def test_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert f"127.0.0.1:{port}" in _bad(["--metrics-port", str(port)])


def test_unknown_provider_is_a_one_line_error() -> None:
    assert "NO_SUCH_PROVIDER" in _bad(
        ["--provider", "NO_SUCH_PROVIDER", "--model", "m", "--metrics-port", "0"]
    )


def test_missing_key_names_the_variable_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("CLAUDE_API_KEY", raising=False)
    message = _bad(["--provider", "CLAUDE", "--model", "claude-haiku-4-5", "--metrics-port", "0"])
    assert "ANTHROPIC_API_KEY" in message or "CLAUDE_API_KEY" in message


def test_duration_bounds_the_run_instead_of_a_job_count() -> None:
    result = CliRunner().invoke(
        app, ["demo", "--duration", "0.5", "--concurrency", "4", "--metrics-port", "0"]
    )
    assert result.exit_code == 0, result.output
    match = _GRAND_TOTAL.search(_flat(result.output))
    assert match and 4 <= _number(match["jobs"]) < DEFAULT_JOBS


async def test_otlp_export_when_an_endpoint_is_given() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    args = ["demo", "--jobs", "4", "--metrics-port", "0", "--otlp-endpoint", endpoint]
    receiver = await OtelTapHttpProtobufReceiver(OtelTapHttpProtobufReceiverSettings(http_port=port)).start()
    try:
        # Wait first: the receiver hands over only what arrives after the wait began.
        cost = asyncio.ensure_future(receiver.await_metric(lambda m: m.name == "statek.cost.usd", timeout=30))
        job = asyncio.ensure_future(receiver.await_trace(lambda s: s.name == "job statek-demo", timeout=30))
        await asyncio.sleep(0)
        result = await asyncio.to_thread(CliRunner().invoke, app, args)
        assert result.exit_code == 0, result.output
        assert f"OTLP: {endpoint}" in result.output
        metric, span = await cost, await job
    finally:
        await receiver.stop()
    assert metric.unit == "{USD}" and any(p.as_double > 0 for p in metric.sum.data_points)
    totals = {a.key: a.value for a in span.attributes}
    assert totals["statek.job.calls"].int_value >= 4


def test_provider_option_uses_that_provider_from_its_env_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # A "real" provider on loopback: the simulator stands in for api.deepseek.com via DEEPSEEK_API_URL.
    with ProviderSimulator(seed=1) as sim:
        monkeypatch.setenv("DEEPSEEK_API_URL", sim.openai_url)
        monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-test-not-printed")
        result = CliRunner().invoke(
            app, ["demo", "--provider", "DEEPSEEK", "--model", "deepseek-chat", "--metrics-port", "0"]
        )
        requests = sim.requests
    assert result.exit_code == 0, result.output
    assert "DEEPSEEK deepseek-chat (real provider)" in _flat(result.output)
    assert f"Grand total: {REAL_PROVIDER_JOBS} jobs" in _flat(result.output)
    assert {r.model for r in requests} == {"deepseek-chat"} and len(requests) >= REAL_PROVIDER_JOBS
    assert {r.body["max_tokens"] for r in requests} == {REAL_MAX_TOKENS}  # real providers bill
    assert "sk-test-not-printed" not in result.output
