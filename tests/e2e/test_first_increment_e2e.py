"""No lost first increment, on a real Prometheus.

A fresh process serves ``/metrics`` (``statek.instrument(prometheus_port=...)``) with no calls made;
once Prometheus has scraped it, the process makes one successful and one failed call. ``increase()``
over a window must see both (before the fix: 0 and 0, because every new series appeared already at
1), and the raw samples must start at 0. The same holds for the cost and token counters and the
duration histogram's count. Fails, never skips, without Prometheus.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import free_port, launch_prometheus, query, stop_process, values_by, wait_for

pytestmark = pytest.mark.e2e

APP = textwrap.dedent(
    """
    import asyncio, sys
    import statek
    from statek import LLM_API, ChatHistoryItem
    from statek.exceptions import ProviderError
    from statek.testing import Failure, ModelBehavior, ProviderSimulator

    statek.instrument("first-increment", prometheus_port=int(sys.argv[1]))
    print("serving", flush=True)
    sys.stdin.readline()

    async def main():
        behaviors = {
            "gpt-4o-mini": ModelBehavior(text="Paris.", input_tokens=100, output_tokens=5),
            "acme/broken": ModelBehavior(failures=[Failure.hard(400)]),
        }
        async with ProviderSimulator(behaviors, seed=1) as sim:
            api = LLM_API.get("OPENAI", api_url=sim.openai_url, api_key="e2e-key")
            question = [ChatHistoryItem.user("Capital of France?")]
            await api.process_request(model="gpt-4o-mini", chat_history=question)
            try:
                await api.process_request(model="acme/broken", chat_history=question)
            except ProviderError:
                pass
            await api.aclose()

    asyncio.run(main())
    print("done", flush=True)
    sys.stdin.readline()
    """
)


def test_increase_sees_the_first_success_and_the_first_failure(tmp_path: Path) -> None:
    port = free_port()
    with launch_prometheus([f"127.0.0.1:{port}"], tmp_path / "prometheus") as prometheus:
        url = prometheus.url
        app = subprocess.Popen(
            [sys.executable, "-c", APP, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=os.environ.copy(),
        )
        try:
            assert app.stdin is not None and app.stdout is not None
            assert app.stdout.readline().strip() == "serving"
            # Prometheus has scraped the fresh process at least once: no statek series exist yet.
            wait_for(lambda: values_by(url, 'up{job="statek"}') == {"": 1.0}, 30, "first scrape")
            assert values_by(url, "count(statek_requests_total)") == {}
            app.stdin.write("go\n")
            app.stdin.flush()
            assert app.stdout.readline().strip() == "done", app.stdout.read()

            def totals() -> dict[str, float]:
                return values_by(url, "sum by (statek_outcome) (statek_requests_total)", "statek_outcome")

            wait_for(lambda: totals() == {"success": 1.0, "error": 1.0}, 30, "both calls scraped")
            time.sleep(2.5)  # a few more scrapes at the final values
            at = time.time()

            increases = values_by(
                url, "sum by (statek_outcome) (increase(statek_requests_total[1m]))", "statek_outcome", at
            )
            assert set(increases) == {"success", "error"}, increases
            for outcome, value in increases.items():
                # exactly 1 call each; Prometheus extrapolates a little toward the window's end
                assert 0.99 <= value <= 1.5, (outcome, value)

            # The mechanism: every new series' first sample was 0.
            for series in query(url, "statek_requests_total[1m]", at):
                first = float(series["values"][0][1])
                assert first == 0.0, series["metric"]

            (tokens,) = values_by(
                url, 'sum(increase(statek_tokens_total{statek_token_type="input"}[1m]))', at=at
            ).values()
            assert 99 <= tokens <= 150, tokens
            (cost,) = values_by(url, "sum(increase(statek_cost_usd_total[1m]))", at=at).values()
            assert cost > 0
            (calls,) = values_by(
                url, "sum(increase(gen_ai_client_operation_duration_seconds_count[1m]))", at=at
            ).values()
            assert 1.98 <= calls <= 3.0, calls  # the histogram's first observations count too
        finally:
            stop_process(app)
