"""The botocore (Bedrock) and aiohttp hooks of ``statek.instrument_clients()``: what they add to a call.

Full telemetry stack as in ``sdk_transport`` (SDK ``TracerProvider`` with a batch processor and a
discarding exporter, SDK ``MeterProvider`` with an in-memory reader, a priced model, an open ``Job``);
metered and unmetered clients side by side, interleaved in blocks, p50 of each within one run:

1. **boto3 Converse, loopback**: a bedrock-runtime client hooked by statek and one that is not,
   against :class:`statek.testing.bedrock.BedrockServer` in a child process (its work does not share
   our GIL);
2. **boto3 Converse, in memory**: the same, answered by a ``before-send`` handler (botocore's own
   seam: every hook of a real call runs, no socket), which isolates statek's hooks (start the call,
   read usage, price, record);
3. **aiohttp POST**: a session created under ``instrument_aiohttp()`` and one created before,
   posting a chat completion to the benchmarks' child-process loopback server and reading the JSON
   answer;
4. **httpx requests that are not LLM calls** with ``instrument_httpx()``'s class-level patches on and
   off (the price every other request of the process pays; goal <= 5 us, as ``sdk_transport``'s).

Goal of 1-3: within the httpx transport's own figure, measured first in the same run (``sdk_transport``'s
"transport alone": <= 50 us added at p50 on a quiet machine).

    python -m benchmarks client_hooks [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import subprocess
import sys
import time
from typing import Any

from statek import Job
from statek.instrumentation.aiohttp_hooks import instrument_aiohttp, uninstrument_aiohttp
from statek.instrumentation.bedrock import instrument_bedrock_client, uninstrument_bedrock_client
from statek.model_pricing import set_model_pricing

from ._loopback import LoopbackServer
from .sdk_transport import discarding_telemetry, interleaved_times

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "Capital of France?"}]}]
CONVERSE = {
    "output": {"message": {"role": "assistant", "content": [{"text": "Paris."}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 176, "outputTokens": 3, "totalTokens": 1203, "cacheReadInputTokens": 1024},
    "metrics": {"latencyMs": 1},
}


def _telemetry() -> None:
    discarding_telemetry()
    set_model_pricing("BEDROCK", MODEL, 2, 10, 1)
    set_model_pricing("openai", "bench-model", 2, 10, 1)
    # The plain aiohttp session exists before instrumentation on purpose: no warning about it.
    logging.getLogger("statek.instrumentation").setLevel(logging.ERROR)


def _report(name: str, times: dict[str, list[float]]) -> None:
    off, on = (statistics.median(times[k]) * 1e6 for k in ("off", "on"))
    print(f"{name:28s} p50 off {off:8.1f} us   on {on:8.1f} us   added {on - off:6.1f} us  (goal <= 50)")


def _bedrock_client(url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def botocore_loopback(calls: int) -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", "from statek.testing.bedrock import serve; serve()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        plain, metered = _bedrock_client(url), _bedrock_client(url)
        instrument_bedrock_client(metered)
        try:
            converse = lambda c: lambda: c.converse(modelId=MODEL, messages=MESSAGES)
            _report(
                "boto3 Converse, loopback:", interleaved_times(calls, 50, converse(plain), converse(metered))
            )
        finally:
            uninstrument_bedrock_client(metered)
    finally:
        server.terminate()
        server.wait(timeout=5)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        return iter([self._body])


def botocore_in_memory(calls: int) -> None:
    """botocore's ``before-send`` event answers in memory: every hook of a real call runs, no socket."""
    from botocore.awsrequest import AWSResponse

    body = json.dumps(CONVERSE).encode()
    headers = {"content-type": "application/json", "content-length": str(len(body))}

    def answer(request: Any, **_: Any) -> Any:
        return AWSResponse(request.url, 200, headers, _Raw(body))

    plain, metered = _bedrock_client("http://127.0.0.1:9"), _bedrock_client("http://127.0.0.1:9")
    for client in (plain, metered):
        client.meta.events.register("before-send.bedrock-runtime", answer)
    instrument_bedrock_client(metered)
    try:
        converse = lambda c: lambda: c.converse(modelId=MODEL, messages=MESSAGES)
        _report(
            "boto3 Converse, in memory:", interleaved_times(calls, 100, converse(plain), converse(metered))
        )
    finally:
        uninstrument_bedrock_client(metered)


def aiohttp_post(calls: int) -> None:
    import aiohttp

    body = {"model": "bench-model", "messages": [{"role": "user", "content": "Capital of France?"}]}

    async def run(url: str) -> dict[str, list[float]]:
        plain = aiohttp.ClientSession()
        instrument_aiohttp()
        try:
            metered = aiohttp.ClientSession()
        finally:
            uninstrument_aiohttp()

        async def post(session: aiohttp.ClientSession) -> None:
            async with session.post(url, json=body) as response:
                await response.json()

        times: dict[str, list[float]] = {"off": [], "on": []}
        for session in (plain, metered):
            for _ in range(20):
                await post(session)
        for start in range(0, calls, 50):
            for name, session in (("off", plain), ("on", metered)):
                for _ in range(min(50, calls - start)):
                    t = time.perf_counter()
                    await post(session)
                    times[name].append(time.perf_counter() - t)
        await plain.close()
        await metered.close()
        return times

    with LoopbackServer() as server:
        _report("aiohttp POST, loopback:", asyncio.run(run(server.url)))


def httpx_class_patches(calls: int) -> None:
    """What ``instrument_httpx()``'s class-level patches add to requests that are not LLM calls: the
    same client, blocks alternating with the patches on and off."""
    import httpx

    from statek.instrumentation import instrument_httpx, uninstrument_httpx

    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=b"{}")))
    for method, url in (("GET", "https://example.com/health"), ("POST", "https://api.example.com/v1/items")):
        times: dict[str, list[float]] = {"off": [], "on": []}
        for start in range(0, calls, 200):
            for name in ("off", "on"):
                (instrument_httpx if name == "on" else uninstrument_httpx)()
                for _ in range(min(200, calls - start)):
                    t = time.perf_counter()
                    client.request(method, url, content=b"{}" if method == "POST" else None)
                    times[name].append(time.perf_counter() - t)
        uninstrument_httpx()
        off, on = (statistics.median(times[k]) * 1e6 for k in ("off", "on"))
        print(
            f"httpx {method:4} (not LLM), patches: p50 off {off:7.1f} us   on {on:7.1f} us   added {on - off:5.1f} us"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks client_hooks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    parser.add_argument("--calls", type=int, default=None, help="calls per client (default 2000, quick 300)")
    args = parser.parse_args(argv)
    calls = args.calls or (300 if args.quick else 2000)
    _telemetry()
    with Job("bench"):
        from .sdk_transport import transport_alone

        print("reference, the httpx metering transport in the same run:")
        transport_alone(calls)
        botocore_loopback(calls)
        botocore_in_memory(calls)
        aiohttp_post(calls)
        httpx_class_patches(calls * 5)


if __name__ == "__main__":
    main()
