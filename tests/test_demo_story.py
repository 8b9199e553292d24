"""The demo tells one story per seed: the same calls and cost every run, whatever the interleaving."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statek.demo import DemoRun
from statek.demo.session import DemoResult
from statek.testing import Failure, ModelBehavior, ProviderSimulator


def _fingerprint(result: DemoResult) -> dict[str, tuple[int, int, int, Decimal | None, bool]]:
    return {
        o.plan.job_id: (
            o.usage.calls,
            o.usage.total_input_tokens,
            o.usage.total_output_tokens,
            o.usage.total_cost,
            o.failure is not None,
        )
        for o in result.outcomes
    }


def test_the_same_seed_gives_the_same_calls_and_cost_at_any_concurrency() -> None:
    first = DemoRun(jobs=24, concurrency=24, seed=11).run()
    again = DemoRun(jobs=24, concurrency=5, seed=11).run()
    assert first.total().calls == again.total().calls
    assert first.total().cost == again.total().cost is not None
    assert _fingerprint(first) == _fingerprint(again)
    assert any(o.failure is not None for o in first.outcomes)  # the injected failures happened, the same way


@settings(max_examples=15, deadline=None)
@given(order=st.permutations(range(12)))
def test_content_indexed_answers_do_not_depend_on_arrival_order(order: list[int]) -> None:
    behavior = ModelBehavior(failures=[Failure.server_error(every=3)])

    async def ask(sim: ProviderSimulator, numbers: list[int]) -> dict[int, tuple[int, str]]:
        async with httpx.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
            answers = {}
            for n in numbers:
                body = {"model": "m", "messages": [{"role": "user", "content": f"question {n}"}]}
                response = await client.post("/v1/chat/completions", json=body)
                answers[n] = (response.status_code, response.text if response.status_code >= 400 else "")
            return answers

    in_order = asyncio.run(
        ask(ProviderSimulator({"m": behavior}, seed=3, index_by="content"), list(range(12)))
    )
    shuffled = asyncio.run(ask(ProviderSimulator({"m": behavior}, seed=3, index_by="content"), order))
    assert in_order == shuffled
    assert 0 < sum(status == 503 for status, _ in in_order.values()) < 12


def test_a_cut_off_body_is_quoted_by_its_end_and_the_reason() -> None:
    from statek import LLM_API, ChatHistoryItem
    from statek.exceptions import ResponseFormatError

    async def ask() -> ResponseFormatError:
        behavior = ModelBehavior(failures=[Failure.malformed()])
        with ProviderSimulator({"m": behavior}) as sim:
            api = LLM_API.get("VLLM", api_url=sim.openai_url)
            try:
                await api.process_request(model="m", chat_history=[ChatHistoryItem.user("hi")])
            except ResponseFormatError as exc:
                return exc
            finally:
                await api.aclose()
        raise AssertionError("a cut-off body was read as an answer")

    message = str(asyncio.run(ask()))
    assert "body that is not JSON:" in message and "bytes ending " in message
    assert "at character" in message  # why it is not JSON, and where


def test_the_demo_announces_each_injected_failure_and_why() -> None:
    from typer.testing import CliRunner

    from statek.cli import app
    from statek.demo.simulated import simulated_models

    result = CliRunner().invoke(app, ["demo", "--jobs", "2", "--metrics-port", "0"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Injected failures (deliberate, seeded" in text
    for m in simulated_models():
        for failure in m.behavior.failures:
            assert f"{m.model}: about 1 in {failure.every} requests" in text
    assert "not retryable, the job fails" in text and "statek retries" in text
    assert "Metrics were served at http://127.0.0.1:" in text


def test_a_long_run_keeps_counts_not_every_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    from statek.demo import runner

    monkeypatch.setattr(runner, "KEEP_OUTCOMES", 5)
    result = DemoRun(jobs=20, concurrency=8, seed=2).run()
    kept_failures = [o for o in result.outcomes[5:] if o.failure is None and o.stopped is None]
    assert result.jobs == 20 and not kept_failures
    assert len(result.outcomes) < 20
    assert sum(ran for ran, _, _ in result.by_class().values()) == 20
    failed = sum(f for _, f, _ in result.by_class().values())
    assert failed == sum(o.failure is not None for o in result.outcomes)  # every failure is still kept
    for o in result.outcomes:
        for error in (o.failure, o.stopped):
            assert error is None or error.__traceback__ is None  # no frames (prompts, documents) kept


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_ctrl_c_ends_the_demo_with_a_clear_line() -> None:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(
        [sys.executable, "-c", "from statek.cli import main; main()", "demo", "--duration", "60"]
        + ["--metrics-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    assert child.stdout is not None
    for line in child.stdout:  # wait until the fleet runs
        if b"Prometheus metrics, served while the demo runs" in line:
            break
    time.sleep(1.5)
    child.send_signal(signal.SIGINT)
    rest = child.communicate(timeout=60)[0].decode()
    assert child.returncode == 130
    assert "Interrupted (Ctrl+C): the demo stopped before the end" in rest and "Traceback" not in rest
