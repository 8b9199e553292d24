"""A flood of 10,000 distinct model names (request ids sent as the model) scraped by a real
Prometheus: the series stay bounded, a real model that comes after keeps its own series, and the
process grows by less than 40 MB (issue 22).

The flooded process is a child (its memory measured alone, ``VmRSS`` after a GC); it serves
``/metrics`` on a free port, Prometheus scrapes it every second. Scrape time is reported (Prometheus'
own ``scrape_duration_seconds``), not asserted: performance is measured by
``python -m benchmarks cardinality``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port, launch_prometheus, values_by, wait_for

pytestmark = pytest.mark.e2e

NAMES = 10_000

FLOODED_APP = """
import asyncio, gc, json, sys, time, httpx, statek
from statek import LLM_API, ChatHistoryItem

def rss():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmRSS:"))

def answer(request):
    body = json.loads(request.content)
    return httpx.Response(200, json={
        "id": "c", "object": "chat.completion", "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}})

statek.instrument(service_name="flood", prometheus_port=int(sys.argv[1]))
api = LLM_API.get("OPENAI", api_url="http://127.0.0.1:9/v1", api_key="test-key",
                  http_client=httpx.AsyncClient(transport=httpx.MockTransport(answer)))
question = [ChatHistoryItem.user("hi")]

async def calls(models):
    for model in models:
        await api.process_request(model=model, chat_history=question)

asyncio.run(calls(["gpt-4o-mini"] * 20))
time.sleep(3)  # a few scrapes of the warm process
gc.collect()
before = rss()
asyncio.run(calls([f"req-{i:06d}-7f3a9c" for i in range(int(sys.argv[2]))]))
asyncio.run(calls(["gpt-4o"] * 3))
time.sleep(3)  # scrapes of the flooded process
gc.collect()
print(json.dumps({"rss_growth": rss() - before}), flush=True)
sys.stdin.read()  # until the test closes stdin
statek.shutdown()
"""


def test_a_flood_of_model_names_stays_bounded_and_gpt_4o_keeps_its_series(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "STATEK_METRICS_"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    child = subprocess.Popen(
        [sys.executable, "-c", FLOODED_APP, str(port), str(NAMES)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with launch_prometheus([f"127.0.0.1:{port}"], tmp_path / "prometheus") as prom:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line, child.stderr.read() if child.stderr else ""
            growth_mb = json.loads(line)["rss_growth"] / 2**20

            def gpt_4o_seen() -> bool:
                found = values_by(prom.url, 'sum(statek_requests_total{gen_ai_request_model="gpt-4o"})')
                return found == {"": 3.0}

            wait_for(gpt_4o_seen, 60, "gpt-4o's own series in Prometheus")
            models = values_by(
                prom.url,
                "count(count by (gen_ai_request_model) (statek_requests_total))",
            )
            overflow = values_by(
                prom.url,
                'sum(statek_metric_label_overflow_total{statek_label="gen_ai.request.model"})',
            )
            other = values_by(prom.url, 'sum(statek_requests_total{gen_ai_request_model="_other_"})')
            scrape = values_by(prom.url, "max(max_over_time(scrape_duration_seconds[1m]))")
            print(f"flood of {NAMES}: RSS +{growth_mb:.1f} MB, slowest scrape {scrape} s, models {models}")
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=60)
    # 50 unknown names + _other_ + gpt-4o + gpt-4o-mini: bounded whatever the flood
    assert models == {"": 53.0}
    assert other == {"": float(NAMES - 50)}
    assert overflow[""] >= NAMES - 50
    assert growth_mb < 40
