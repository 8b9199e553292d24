"""The usage ledger across a fleet of worker processes: a real PostgreSQL, one ledger directory, OTLP log
records to a real OTLP receiver, and the Grafana usage dashboard's SQL (issue 27).

Four gunicorn (uvicorn) workers serve ``/ask?tenant=T``: each request is a ``Job`` with the tenant as
attribute, making one call to the loopback provider simulator through statek; every worker runs
``statek.instrument()`` with ``STATEK_LEDGER_DIR``, ``STATEK_LEDGER_URL`` and OTLP logs to an
``oteltap`` receiver. Under load, Postgres is stopped (``immediate``: a crash) and started again; later
one worker is SIGKILLed. Then, on the directory and on Postgres alike:

- no record is counted twice (record ids unique) and none is invented (every one is a call the
  simulator answered);
- nothing is lost except what the killed worker had not yet written: the calls it answered in its last
  two seconds (one second of writer interval, plus the write) and those in flight when it died;
- per tenant, calls, tokens and cost equal the simulator's record of the calls kept, exactly;
- every panel of ``dashboards/statek-usage.json`` runs against the real Postgres, and its "Cost per
  tenant" table equals ``statek usage report --db URL --by tenant``.

Fails, never skips, when a component is missing (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import OTEL_ENV, free_port, stop_process, wait_for
from postgres_support import Postgres
from typer.testing import CliRunner

from statek.cli import app as cli
from statek.ledger import scan
from statek.ledger.postgres import read_calls
from statek.testing import ModelBehavior, ProviderSimulator

pytestmark = pytest.mark.e2e

WORKERS = 4
TENANTS = ("acme", "globex", "initech", "umbrella")
DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "statek-usage.json"

BEHAVIORS = {
    "gpt-4o-mini": ModelBehavior(text="Paris.", input_tokens=1200, cached_tokens=1024, output_tokens=30),
    "meta-llama/llama-3.3-70b-instruct": ModelBehavior(
        text="Hi.", input_tokens=500, output_tokens=40, cost="0.000123", latency=0.01
    ),
}
MODELS = tuple(BEHAVIORS)

APP = """\
import contextlib, os, time, uuid

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

import statek
from statek import LLM_API, ChatHistoryItem, Job


@contextlib.asynccontextmanager
async def lifespan(app):
    statek.instrument(service_name="ask-service")  # the ledger from STATEK_LEDGER_DIR / _URL, OTLP logs
    app.state.llm = LLM_API.get("OPENROUTER", api_url=os.environ["LLM_URL"], api_key="e2e-key")
    yield
    await app.state.llm.aclose()
    statek.shutdown()  # writes what the ledger still holds


async def ask(request):
    tenant, model = request.query_params["tenant"], request.query_params["model"]
    job_id = f"{tenant}-{uuid.uuid4().hex}"
    async with Job(job_id, attributes={"tenant": tenant, "feature": "ask"}) as job:
        await request.app.state.llm.process_request(
            "Be brief.", model, chat_history=[ChatHistoryItem.user(f"job {job_id}: capital of France?")]
        )
    return JSONResponse({"pid": os.getpid(), "job": job_id, "at": time.time(), "cost": str(job.usage.total_cost)})


app = Starlette(routes=[Route("/ask", ask)], lifespan=lifespan)
"""

GUNICORN_CONF = """\
workers = 4
worker_class = "uvicorn_worker.UvicornWorker"
graceful_timeout = 20
"""


def worker_pids(master: int) -> set[int]:
    with open(f"/proc/{master}/task/{master}/children") as children:
        return {int(pid) for pid in children.read().split()}


async def drive(url: str, count: int, concurrency: int = 8) -> list[dict[str, Any]]:
    """``count`` requests over fresh connections (tenants and models in turn); a request that fails
    (its worker was killed) is returned as ``{"error": ...}``."""
    limits = httpx.Limits(max_keepalive_connections=0)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def one(index: int) -> dict[str, Any]:
            tenant, model = TENANTS[index % len(TENANTS)], MODELS[(index // len(TENANTS)) % len(MODELS)]
            params = {"tenant": tenant, "model": model}
            async with gate:
                try:
                    response = await client.get("/ask", params=params)
                    response.raise_for_status()
                except httpx.HTTPError as error:
                    return {"error": type(error).__name__}
                return dict(response.json())

        return list(await asyncio.gather(*(one(i) for i in range(count))))


def truth(sim: ProviderSimulator) -> dict[str, Any]:
    """What the simulator answered, by job id (each job makes one call; its id is in the prompt)."""
    out: dict[str, Any] = {}
    for request in sim.requests:
        if request.status != 200 or request.usage is None:
            continue
        text = json.dumps(request.body)
        found = re.search(r"job ((\w+)-[0-9a-f]{32})", text)
        assert found, text[:300]
        assert found.group(1) not in out
        out[found.group(1)] = request.usage
    return out


def totals(rows: list[dict[str, Any]]) -> dict[str, tuple[int, int, int, Decimal]]:
    by: dict[str, list[Any]] = defaultdict(lambda: [0, 0, 0, Decimal(0)])
    for row in rows:
        entry = by[row["tenant"]]
        entry[0] += 1
        entry[1] += row["input_tokens"]
        entry[2] += row["output_tokens"]
        entry[3] += row["cost_usd"] if row["cost_usd"] is not None else Decimal(0)
    return {k: (v[0], v[1], v[2], v[3]) for k, v in by.items()}


def expand_macros(sql: str, since: datetime, until: datetime) -> str:
    """Grafana's PostgreSQL macros and the tenant variable (all values), as Grafana expands them."""
    sql = re.sub(
        r"\$__timeFilter\((\w+)\)",
        lambda m: f"{m.group(1)} BETWEEN '{since.isoformat()}' AND '{until.isoformat()}'",
        sql,
    )
    sql = re.sub(
        r"\$__timeGroupAlias\((\w+), *'1d'\)",
        lambda m: f'floor(extract(epoch from {m.group(1)})/86400)*86400 AS "time"',
        sql,
    )
    return sql.replace("$tenant", ", ".join(f"'{t}'" for t in TENANTS))


def test_a_fleet_writes_one_ledger_exactly_through_a_postgres_crash_and_a_killed_worker(
    tmp_path: Path,
) -> None:
    import psycopg

    pg = Postgres(free_port())
    pg.init()
    pg.start()
    ledger = tmp_path / "ledger"
    try:
        out = CliRunner().invoke(cli, ["usage", "init-db", "--db", pg.url])
        assert out.exit_code == 0, out.output
        logs: list[Any] = []
        with ProviderSimulator(BEHAVIORS) as sim, _tap(logs) as tap_url:
            env = {
                **{k: v for k, v in os.environ.items() if k not in OTEL_ENV and not k.startswith("OTEL_")},
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")) if p
                ),
                "LLM_URL": sim.openai_url,
                "STATEK_LEDGER_DIR": str(ledger),
                "STATEK_LEDGER_URL": pg.url,
                "OTEL_EXPORTER_OTLP_ENDPOINT": tap_url,
                "OTEL_TRACES_EXPORTER": "none",
                "OTEL_METRICS_EXPORTER": "none",
                "OTEL_BLRP_SCHEDULE_DELAY": "200",
            }
            app_dir = tmp_path / "app"
            app_dir.mkdir()
            (app_dir / "app.py").write_text(APP)
            (app_dir / "gunicorn.conf.py").write_text(GUNICORN_CONF)
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            log_path = tmp_path / "gunicorn.log"
            with log_path.open("w") as log:
                gunicorn = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "gunicorn",
                        "-c",
                        "gunicorn.conf.py",
                        "--bind",
                        f"127.0.0.1:{port}",
                        "app:app",
                    ],
                    cwd=app_dir,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                wait_for(
                    lambda: (
                        len(worker_pids(gunicorn.pid)) == WORKERS
                        and httpx.get(
                            f"{url}/ask", params={"tenant": "acme", "model": MODELS[0]}, timeout=5
                        ).is_success
                    ),
                    60,
                    "gunicorn with 4 workers answering",
                )
                answers = asyncio.run(drive(url, 200))

                # Postgres crashes under load and comes back: its rows wait in each worker's spool
                def crash_and_restart() -> None:
                    time.sleep(0.5)
                    pg.stop("immediate")
                    time.sleep(2.5)
                    pg.start()

                restart = threading.Thread(target=crash_and_restart)
                restart.start()
                answers += asyncio.run(drive(url, 400, concurrency=4))
                restart.join()
                assert not [a for a in answers if "error" in a], Counter(a.get("error") for a in answers)

                # a worker is SIGKILLed under load
                served = Counter(a["pid"] for a in answers)
                victim = served.most_common(1)[0][0]
                killed_at: list[float] = []

                def kill_soon() -> None:
                    time.sleep(1.0)
                    killed_at.append(time.time())
                    os.kill(victim, signal.SIGKILL)

                killer = threading.Thread(target=kill_soon)
                killer.start()
                answers += asyncio.run(drive(url, 300, concurrency=4))
                killer.join()
                wait_for(lambda: len(worker_pids(gunicorn.pid)) == WORKERS, 60, "a replacement worker")
                answers += asyncio.run(drive(url, 100))
            finally:
                stop_process(gunicorn)  # graceful: every live worker's shutdown writes the rest
            assert gunicorn.returncode == 0, log_path.read_text()[-3000:]
            worker_log = log_path.read_text()
            # the crash was seen and survived: rows waited in the spools, then went out
            assert "Postgres unreachable" in worker_log and "Postgres is back" in worker_log, worker_log[
                -3000:
            ]
            time.sleep(0.5)

        answered = truth(sim)
        ok = [a for a in answers if "error" not in a]
        # the killed worker may lose what it answered in its last 2 s, and what it had in flight
        may_lose = {a["job"] for a in ok if a["pid"] == victim and a["at"] >= killed_at[0] - 2.0}
        may_lose |= set(answered) - {a["job"] for a in ok}
        must_keep = set(answered) - may_lose
        assert len(must_keep) > 800

        sources = {
            "directory": scan(ledger).collect(),
            "postgres": read_calls(pg.url),
        }
        for name, frame in sources.items():
            ids = frame["record_id"].to_list()
            assert len(ids) == len(set(ids)), f"{name}: a record counted twice"
            jobs = set(frame["job_id"].to_list())
            assert jobs <= set(answered), f"{name}: records of calls never answered"
            missing = must_keep - jobs
            assert not missing, f"{name}: lost {len(missing)} records, e.g. {sorted(missing)[:3]}"
            rows = [
                {
                    "tenant": r["attr.tenant"],
                    "input_tokens": r["input_tokens"],
                    "output_tokens": r["output_tokens"],
                    "cost_usd": r["cost_usd"],
                    "job": r["job_id"],
                }
                for r in frame.iter_rows(named=True)
            ]
            want_rows = [
                {
                    "tenant": job.split("-")[0],
                    "input_tokens": answered[job].input_tokens,
                    "output_tokens": answered[job].output_tokens,
                    "cost_usd": None,
                }
                for job in jobs
            ]
            got, want = totals(rows), totals(want_rows)
            assert {t: v[:3] for t, v in got.items()} == {t: v[:3] for t, v in want.items()}, name
            answered_cost = {a["job"]: Decimal(a["cost"]) if a["cost"] != "None" else Decimal(0) for a in ok}
            # the cost each endpoint answered (its job's usage.total_cost) is the cost on the record
            for tenant in TENANTS:
                known = [r for r in rows if r["tenant"] == tenant and r["job"] in answered_cost]
                assert len(known) > 100
                cost = sum((r["cost_usd"] or 0 for r in known), Decimal(0))
                assert cost == sum((answered_cost[r["job"]] for r in known), Decimal(0)), (name, tenant)

        # OTLP: every record the surviving workers wrote arrived as a statek.usage.call log record
        logged = {
            _attribute(record, "statek.usage.record_id")
            for record in logs
            if record.event_name == "statek.usage.call"
        }
        directory = sources["directory"]
        survivors = set(directory.filter(directory["job_id"].is_in(list(must_keep)))["record_id"].to_list())
        assert survivors - logged == set(), f"{len(survivors - logged)} records never arrived over OTLP"

        # the dashboard's SQL, run on the real Postgres
        dashboard = json.loads(DASHBOARD.read_text())
        since, until = (
            datetime.now(timezone.utc) - timedelta(days=1),
            datetime.now(timezone.utc) + timedelta(minutes=1),
        )
        results = {}
        with psycopg.connect(pg.url) as connection:
            for panel in dashboard["panels"]:
                for target in panel["targets"]:
                    rows_ = connection.execute(expand_macros(target["rawSql"], since, until)).fetchall()
                    assert rows_, panel["title"]
                    results[panel["title"]] = rows_
            variable = dashboard["templating"]["list"][1]["query"]
            assert {r[0] for r in connection.execute(expand_macros(variable, since, until))} == set(TENANTS)
        report = CliRunner().invoke(cli, ["usage", "report", "--db", pg.url, "--by", "tenant", "--json"])
        by_tenant = {row["tenant"]: row for row in json.loads(report.output)}
        for tenant, calls, _failed, _unpriced, _in, _out, cost in results["Cost per tenant"]:
            assert (calls, cost) == (by_tenant[tenant]["calls"], Decimal(by_tenant[tenant]["cost_usd"]))
        unpriced = sum(row["unpriced_calls"] for row in by_tenant.values())
        assert unpriced > 0  # gpt-4o-mini has no OpenRouter price: the panel has something to show
        assert results["Unpriced calls"] == [(unpriced,)] and results["Failed calls"] == [(0,)]
        assert results["Calls"] == [(sum(row["calls"] for row in by_tenant.values()),)]
    finally:
        pg.remove()


def _attribute(record: Any, key: str) -> Any:
    for each in record.attributes:
        if each.key == key:
            return each.value.string_value
    return None


class _tap:
    """An oteltap OTLP/HTTP receiver on its own thread and event loop, keeping every log record."""

    def __init__(self, into: list[Any]) -> None:
        self.into = into
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        from oteltap import OtelTapHttpProtobufReceiver, OtelTapHttpProtobufReceiverSettings

        self.receiver = OtelTapHttpProtobufReceiver(OtelTapHttpProtobufReceiverSettings(http_port=self.port))
        await self.receiver.start()
        self.stopped = asyncio.Event()

        async def keep() -> None:
            async for message in self.receiver.stream_logs():
                self.into.append(message)

        task = asyncio.create_task(keep())
        for _ in range(3):
            await asyncio.sleep(0)
        self.ready.set()
        await self.stopped.wait()
        await self.receiver.stop()
        task.cancel()

    def __enter__(self) -> str:
        self.thread.start()
        assert self.ready.wait(10), "oteltap did not start"
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stopped.set)
        self.thread.join(10)
