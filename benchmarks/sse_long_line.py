"""CPU to read one long SSE line (a Gemini image, a hostile server): statek against plain httpx.

A loopback server (a child process, so its CPU is not ours) answers ``POST .../s{N}/v1/chat/completions``
with a chat-completions stream whose one content event is a single line of ``N`` bytes, written in
16 KiB pieces, then a usage event. Four readers, interleaved, in this process:

- ``httpx async``: ``httpx.AsyncClient.stream(...)`` reading ``aiter_bytes()`` (the baseline of LLM_API);
- ``LLM_API.stream_request``: the OpenAI adapter streaming the same answer (text kept, usage read);
- ``httpx sync``: ``httpx.Client.stream(...)`` reading ``iter_bytes()`` (the baseline of the transport);
- ``statek.http_client()``: the same through the metering transport (usage read from the passing bytes).

Reported: the best process CPU time (``time.process_time``) of ``--rounds`` runs each, and the ratio to
its baseline. Goal: within 2x of plain httpx at 8 MiB and 64 MiB (the decoder used to be quadratic:
8 MiB took 6 s of CPU, 64 MiB 268 s).

    python -m benchmarks sse_long_line [--sizes 8,64] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

import statek
from statek import LLM_API, ChatHistoryItem

from ._loopback import free_port, telemetry_on

_SERVER = r"""
import asyncio, os, sys
PIECE = 16 * 1024
def body(size):
    head = b'data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"'
    tail = b'"},"finish_reason":null}]}\n\n'
    usage = (b'data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{},'
             b'"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}\n\n'
             b'data: [DONE]\n\n')
    return head + b"A" * (size - len(head) - len(tail) + 2) + tail + usage
CACHE = {}
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1]
            size = int(path.split(b"/")[1][1:])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            data = CACHE.get(size) or CACHE.setdefault(size, body(size))
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n" % len(data))
            view = memoryview(data)
            for start in range(0, len(data), PIECE):
                writer.write(view[start:start + PIECE])
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()
async def main():
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.read() or os._exit(0))
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""

MODEL = "bench-model"
BODY = b'{"model":"bench-model","stream":true,"stream_options":{"include_usage":true},"messages":[]}'
HEADERS = {"content-type": "application/json", "authorization": "Bearer bench-key"}


def _cpu(run: Callable[[], Any]) -> float:
    gc.collect()
    started = time.process_time()
    run()
    return time.process_time() - started


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks sse_long_line")
    parser.add_argument("--sizes", default="8,64", help="line sizes in MiB, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="8 MiB only, one round")
    args = parser.parse_args(argv)
    sizes = [8] if args.quick else [int(s) for s in args.sizes.split(",")]
    rounds = 1 if args.quick else args.rounds

    telemetry_on()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError("loopback server did not start")
        base = f"http://127.0.0.1:{port}"
        print(f"{'line':>8}  {'reader':<26}{'CPU s (best)':>14}{'x baseline':>12}")
        for mib in sizes:
            _measure(base, mib, rounds)
    finally:
        server.terminate()
        server.wait(timeout=5)


def _measure(base: str, mib: int, rounds: int) -> None:
    size = mib * 1024 * 1024
    url = f"{base}/s{size}/v1/chat/completions"
    api = LLM_API.get("OPENAI", api_key="bench-key", api_url=url)
    history = [ChatHistoryItem.user("draw")]
    sync_plain = httpx.Client(timeout=600)
    sync_metered = statek.http_client(provider="OPENAI", backend="httpx", timeout=600)

    def plain_sync() -> None:
        with sync_plain.stream("POST", url, content=BODY, headers=HEADERS) as response:
            got = sum(len(chunk) for chunk in response.iter_bytes())
        assert got >= size, got

    def metered_sync() -> None:
        with sync_metered.stream("POST", url, content=BODY, headers=HEADERS) as response:
            got = sum(len(chunk) for chunk in response.iter_bytes())
        assert got >= size, got

    async def plain_async() -> None:
        got = 0
        async with (
            httpx.AsyncClient(timeout=600) as client,
            client.stream("POST", url, content=BODY, headers=HEADERS) as response,
        ):
            async for chunk in response.aiter_bytes():
                got += len(chunk)
        assert got >= size, got

    async def llm_api() -> None:
        stream = api.stream_request(model=MODEL, chat_history=history)
        text = "".join([piece async for piece in stream])
        assert len(text) >= size - 200 and stream.response.detail.has_usage

    runs: dict[str, tuple[Callable[[], Any], str | None]] = {
        "httpx async": (lambda: asyncio.run(plain_async()), None),
        "LLM_API.stream_request": (lambda: asyncio.run(llm_api()), "httpx async"),
        "httpx sync": (plain_sync, None),
        "statek.http_client()": (metered_sync, "httpx sync"),
    }
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, (run, _baseline) in runs.items():
            best[name] = min(best[name], _cpu(run))
    for name, (_run, baseline) in runs.items():
        ratio = f"{best[name] / best[baseline]:.2f}x" if baseline else ""
        print(f"{mib:>5} MiB  {name:<26}{best[name]:>14.3f}{ratio:>12}", flush=True)
    sync_plain.close()
    sync_metered.close()


if __name__ == "__main__":
    main(sys.argv[1:])
