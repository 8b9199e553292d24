"""Gunicorn with 4 uvicorn workers, one exact ``/metrics`` for all of them, on a real Prometheus (issue 16).

A small Starlette app (the set-up ``docs/production.md`` shows, written out below) answers ``/ask`` by
calling the loopback provider simulator through statek, and mounts statek's multiprocess
``/metrics``. A few hundred requests go in over fresh connections (so every worker serves some); the
totals Prometheus scrapes must equal the simulator's record: calls, tokens by type, provider-reported
cost, and the cost the endpoints answered. In the middle one worker that served requests is
SIGKILLed after Prometheus saw its calls; gunicorn starts a new one, more traffic follows, and
nothing already counted is lost (no drop in any total, final totals exact). After a graceful stop
the files left behind still add up to the same totals.

Fails, never skips, when a component is missing (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import free_port, launch_prometheus, query, stop_process, values_by, wait_for
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from statek.exporters import multiprocess
from statek.testing import ModelBehavior, ProviderSimulator

pytestmark = pytest.mark.e2e

WORKERS = 4
REQUESTS_PER_PHASE = 200
CONCURRENCY = 16
REPORTED_COST = Decimal("0.000123")

BEHAVIORS = {
    # no price row: the provider-reported cost is the cost
    "meta-llama/llama-3.3-70b-instruct": ModelBehavior(
        text="Hi.", input_tokens=500, output_tokens=40, cost=str(REPORTED_COST)
    ),
    # priced from statek's table; cache reads
    "gpt-4o-mini": ModelBehavior(text="Paris.", input_tokens=1200, cached_tokens=1024, output_tokens=30),
}
MODELS = tuple(BEHAVIORS)

APP = '''\
"""A Starlette app whose endpoint calls an LLM through statek; /metrics serves every worker's totals."""

import contextlib
import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import statek
from statek import LLM_API, ChatHistoryItem
from statek.exporters.multiprocess import make_asgi_app


@contextlib.asynccontextmanager
async def lifespan(app):
    statek.instrument(service_name="ask-service")  # in each worker; multiprocess from PROMETHEUS_MULTIPROC_DIR
    app.state.llm = LLM_API.get("OPENROUTER", api_url=os.environ["LLM_URL"], api_key=os.environ["LLM_KEY"])
    yield
    await app.state.llm.aclose()
    statek.shutdown()  # writes this worker's final totals


async def ask(request):
    response = await request.app.state.llm.process_request(
        "Be brief.", request.query_params["model"], chat_history=[ChatHistoryItem.user("Capital of France?")]
    )
    cost = response.detail.priced_cost
    return JSONResponse({"pid": os.getpid(), "cost": None if cost is None else str(cost)})


app = Starlette(routes=[Route("/ask", ask), Mount("/metrics", app=make_asgi_app())], lifespan=lifespan)
'''

GUNICORN_CONF = '''\
"""gunicorn -c gunicorn.conf.py app:app  (PROMETHEUS_MULTIPROC_DIR set in the environment)"""

import os

from statek.exporters import multiprocess
from statek.exporters.multiprocess import child_exit, prepare_directory  # noqa: F401 - child_exit is a hook

workers = 4
worker_class = "uvicorn_worker.UvicornWorker"


def on_starting(server):
    prepare_directory()  # delete the *.db files an earlier run left: no stale totals


def when_ready(server):
    multiprocess.start_http_server(int(os.environ["MASTER_METRICS_PORT"]))  # all workers, from the master
'''


def worker_pids(master: int) -> set[int]:
    """The gunicorn master's current children (its workers)."""
    with open(f"/proc/{master}/task/{master}/children") as children:
        return {int(pid) for pid in children.read().split()}


@contextmanager
def launch_gunicorn(workdir: Path, env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[Any]]]:
    """Run the app under gunicorn with :data:`WORKERS` uvicorn workers; yield its base URL and process
    once every worker answers; stop it gracefully (SIGTERM) on exit."""
    (workdir / "app.py").write_text(APP)
    (workdir / "gunicorn.conf.py").write_text(GUNICORN_CONF)
    port = free_port()
    log_path = workdir / "gunicorn.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{port}",
                "--graceful-timeout",
                "10",
                "app:app",
            ],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            return (
                len(worker_pids(process.pid)) == WORKERS
                and httpx.get(f"{url}/metrics/", timeout=2).is_success
            )

        wait_for(ready, 60, f"gunicorn with {WORKERS} workers answering")
        yield url, process
    finally:
        stop_process(process)


async def drive(url: str, count: int) -> list[dict[str, Any]]:
    """``count`` requests to ``/ask`` (models alternating), :data:`CONCURRENCY` at a time, each on a
    new connection so the kernel spreads them over the workers."""
    limits = httpx.Limits(max_keepalive_connections=0)
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def one(index: int) -> dict[str, Any]:
            async with gate:
                response = await client.get("/ask", params={"model": MODELS[index % len(MODELS)]})
                response.raise_for_status()
                return dict(response.json())

        return list(await asyncio.gather(*(one(i) for i in range(count))))


def expected(sim: ProviderSimulator, answers: list[dict[str, Any]]) -> dict[str, float]:
    """The truth: the simulator's record of what it answered, and the cost the endpoints returned."""
    recorded = [r for r in sim.requests if r.status == 200 and r.usage is not None]
    assert len(recorded) == len(answers) == len(sim.requests)
    return {
        "calls": len(recorded),
        "input": sum(r.usage.input_tokens for r in recorded),
        "output": sum(r.usage.output_tokens for r in recorded),
        "cache_read": sum(r.usage.cached_tokens for r in recorded),
        "reported": float(sum((r.usage.cost for r in recorded if r.usage.cost is not None), Decimal(0))),
        "cost": float(sum((Decimal(a["cost"]) for a in answers if a["cost"] is not None), Decimal(0))),
    }


def scraped(url: str) -> dict[str, float]:
    """The same totals, as the real Prometheus has them (summed over all series and workers)."""
    tokens = values_by(url, "sum by (statek_token_type) (statek_tokens_total)", "statek_token_type")
    costs = values_by(url, "sum by (statek_cost_status) (statek_cost_usd_total)", "statek_cost_status")
    return {
        "calls": values_by(url, "sum(statek_requests_total)").get("", 0.0),
        "input": tokens.get("input", 0.0),
        "output": tokens.get("output", 0.0),
        "cache_read": tokens.get("cache_read", 0.0),
        "reported": costs.get("reported", 0.0),
        "cost": sum(costs.values()),
    }


def requests_total(exposition: str) -> float:
    """``statek_requests_total`` summed over the series of one exposition."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "statek_requests_total"
    )


def same(found: dict[str, float], want: dict[str, float]) -> bool:
    return all(abs(found[k] - want[k]) <= 1e-9 * max(abs(want[k]), 1e-12) for k in want)


def test_four_gunicorn_workers_one_exact_metrics_endpoint_and_a_killed_worker_loses_nothing(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "multiproc"
    directory.mkdir()
    root = str(Path(multiprocess.__file__).resolve().parents[2])  # this checkout's statek
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
        "LLM_KEY": "e2e-key",
        "MASTER_METRICS_PORT": str(free_port()),
    }
    with ProviderSimulator(BEHAVIORS) as sim:
        env["LLM_URL"] = sim.openai_url
        app_dir = tmp_path / "app"
        app_dir.mkdir()
        with launch_gunicorn(app_dir, env) as (url, gunicorn):
            host = url.removeprefix("http://")
            with launch_prometheus([host], tmp_path / "prometheus") as prom:
                # phase 1: every worker serves; Prometheus sees exactly the simulator's totals
                answers = asyncio.run(drive(url, REQUESTS_PER_PHASE))
                served_by = Counter(a["pid"] for a in answers)
                assert len(served_by) >= 2, f"one worker served everything: {served_by}"
                want = expected(sim, answers)
                wait_for(lambda: same(scraped(prom.url), want), 30, f"Prometheus totals {want}")
                # the series are the single-process ones: provider, model, token type (and the target's)
                series = query(prom.url, "statek_tokens_total")
                assert {frozenset(s["metric"]) for s in series} == {
                    frozenset(
                        {
                            "__name__",
                            "gen_ai_provider_name",
                            "gen_ai_request_model",
                            "statek_token_type",
                            "instance",
                            "job",
                        }
                    )
                }

                # SIGKILL the busiest worker (no shutdown, no final write): what it wrote is counted
                victim = served_by.most_common(1)[0][0]
                assert (directory / f"counter_{victim}.db").exists()
                before_kill = worker_pids(gunicorn.pid)
                os.kill(victim, signal.SIGKILL)
                wait_for(
                    lambda: (
                        victim not in worker_pids(gunicorn.pid) and len(worker_pids(gunicorn.pid)) == WORKERS
                    ),
                    60,
                    "gunicorn replacing the killed worker",
                )
                (replacement,) = worker_pids(gunicorn.pid) - before_kill
                after_kill = scraped(prom.url)
                assert same(after_kill, want), f"lost counts of the killed worker: {after_kill} != {want}"

                # hostile files beside the live workers (issue 22): skipped and counted, never failing
                # or hanging a scrape, so the totals below still arrive exactly
                entry = (19).to_bytes(4, "little") + b"not a json key, no!" + bytes(17)
                (directory / "counter_999999.db").write_bytes(
                    (8 + len(entry)).to_bytes(4, "little") + bytes(4) + entry
                )
                (directory / "histogram_999998.db").write_bytes(b"")
                os.mkfifo(directory / "counter_999997.db")
                (directory / "notes.db").write_bytes(b"SQLite format 3\x00" + bytes(64))
                (directory / "counter_999996.db").symlink_to(directory / "counter_0.db")

                # phase 2: more traffic, until the replacement worker has served some; totals stay exact
                answers += asyncio.run(drive(url, REQUESTS_PER_PHASE))
                for _ in range(20):
                    if replacement in {a["pid"] for a in answers[REQUESTS_PER_PHASE:]}:
                        break
                    answers += asyncio.run(drive(url, 2 * CONCURRENCY))
                later = Counter(a["pid"] for a in answers[REQUESTS_PER_PHASE:])
                assert replacement in later and victim not in later, later
                want = expected(sim, answers)
                assert want["calls"] == len(answers) >= 2 * REQUESTS_PER_PHASE
                # the models alternate: half the calls carry the provider-reported cost
                reported = REPORTED_COST * (len(answers) // 2)
                assert want["reported"] == pytest.approx(float(reported), rel=1e-12)
                wait_for(lambda: same(scraped(prom.url), want), 30, f"Prometheus totals {want}")
                # a counter that dropped would show as a reset: none happened through the kill
                resets = values_by(prom.url, "sum(resets(statek_requests_total[5m]))")
                assert resets == {"": 0.0}, resets
                # histograms: one token-usage observation per call and token type (input, output)
                counts = values_by(prom.url, "sum(gen_ai_client_token_usage_count)")
                assert counts == {"": 2 * want["calls"]}
                durations = values_by(prom.url, "sum(gen_ai_client_operation_duration_seconds_count)")
                assert durations == {"": want["calls"]}
                skipped = values_by(
                    prom.url, "sum by (reason) (statek_multiprocess_skipped_files_total)", "reason"
                )
                assert {"corrupt", "empty", "not_a_file", "foreign", "symlink"} <= set(skipped), skipped
                up = values_by(prom.url, "min(min_over_time(up[1m]))")
                assert up == {"": 1.0}, up  # no scrape failed
                # the master serves the same sum on its own port (no worker involved in answering)
                master = httpx.get(f"http://127.0.0.1:{env['MASTER_METRICS_PORT']}/metrics", timeout=10)
                assert requests_total(master.text) == want["calls"]
        # a graceful stop writes every worker's final totals; the files still add up exactly
        left = generate_latest(multiprocess.registry(directory)).decode()
        assert requests_total(left) == want["calls"]
        # the killed worker's file was compacted into the archive by child_exit (its totals stay served)
        assert f"counter_{victim}.db" not in os.listdir(directory) and "counter_0.db" in os.listdir(directory)
