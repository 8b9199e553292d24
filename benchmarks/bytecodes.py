"""Python bytecodes executed per call, counted by the interpreter's own tracing: by package and by function.

A second count that does not move with the machine's load, next to ``benchmarks instructions``: no
valgrind, seconds instead of minutes, and it says *where* the Python work goes (which the
instruction count of one interpreter loop cannot). It misses work done in C (JSON, ``Decimal``,
system calls), so read it beside the instruction counts. Calls go to an in-memory transport (no
sockets), with the telemetry stack of :func:`benchmarks._loopback.telemetry_on` and a priced model;
each client makes a warm-up, then ``--calls`` traced calls (``sys.settrace`` with opcode events).

Clients: ``raw`` (httpx posting the body and parsing the JSON answer), ``statek`` (``process_request``
in a new ``Job`` per call), ``statek, no Job``, ``statek, no-op tracer`` (tracing off: its difference
to ``raw`` is statek's own Python work; a span that does not record gets no answer attributes, so
statek's work for a recording span's attributes counts with the SDK's span), ``metering path alone,
no-op tracer`` (a ``Job`` and ``observe_call`` around a provider step that returns an answer read
once: the record, its consumers and pricing without HTTP or request building) beside ``an event loop
turn`` (running one empty coroutine, to subtract), ``statek, ledger on`` (the usage ledger's consumer attached: its share on
the calling thread), ``raw streamed`` and ``statek, streamed`` (the same answer as server-sent
events: raw httpx reading lines and parsing each event, ``stream_request`` in a ``Job`` per call), ``openai SDK`` and ``openai SDK + statek`` (the official sync client,
plain and with ``http_client=statek.http_client(...)``) and ``openai SDK + statek, no-op tracer``.
Each client runs in a fresh process.

    python -m benchmarks bytecodes [--calls N] [--top N] [--only CLIENT...]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import subprocess
import sys
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

from benchmarks._loopback import MODEL, QUESTION, SYSTEM, telemetry_on

__all__ = ["main"]

CLIENTS = (
    "raw",
    "statek",
    "statek, no Job",
    "statek, no-op tracer",
    "metering path alone, no-op tracer",
    "an event loop turn",
    "statek, ledger on",
    "raw streamed",
    "statek, streamed",
    "openai SDK",
    "openai SDK + statek",
    "openai SDK + statek, no-op tracer",
)
DIFFERENCES = (
    # (what, client, minus client)
    ("statek (a Job per call) over raw", "statek", "raw"),
    ("statek's own Python work (no-op tracer) over raw", "statek, no-op tracer", "raw"),
    (
        "the SDK's span and its answer attributes (statek minus no-op tracer)",
        "statek",
        "statek, no-op tracer",
    ),
    ("a Job per call", "statek", "statek, no Job"),
    (
        "the metering path alone (a Job, the record, its consumers, pricing; no HTTP, no-op tracer)",
        "metering path alone, no-op tracer",
        "an event loop turn",
    ),
    (
        "streamed: statek (a Job per call) over raw httpx reading the stream",
        "statek, streamed",
        "raw streamed",
    ),
    ("the usage ledger, on the calling thread", "statek, ledger on", "statek"),
    ("openai SDK: statek's transport over the plain SDK", "openai SDK + statek", "openai SDK"),
    ("openai SDK: statek's own part of it", "openai SDK + statek, no-op tracer", "openai SDK"),
)
ANSWER = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"bench-model-2025",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":1200,"completion_tokens":3,"total_tokens":1203,'
    b'"prompt_tokens_details":{"cached_tokens":1024}}}'
)
STREAMED_ANSWER = (
    b"".join(
        b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"
        for event in (
            *(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": "bench-model-2025",
                    "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
                }
                for word in ("The ", "capital ", "is ", "Paris.")
            ),
            {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "bench-model-2025",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1200, "completion_tokens": 4, "total_tokens": 1204},
            },
        )
    )
    + b"data: [DONE]\n\n"
)
"""The same answer as six server-sent events (four text deltas, the finish with usage, ``[DONE]``)."""
URL = "http://127.0.0.1:1/v1/chat/completions"
WARM_UP = 300


def _where(code: CodeType) -> str:
    """The package (site-packages), the statek module, or the standard library file of ``code``."""
    path = code.co_filename
    if "site-packages/" in path:
        return path.split("site-packages/")[-1].split("/")[0]
    if "/statek/" in path:
        return "statek/" + path.split("/statek/")[-1]
    return path.rsplit("/", 1)[-1]


def call_of(client: str) -> Callable[[], Any]:
    """A function making one call as ``client`` (one of :data:`CLIENTS`), its telemetry set up."""
    telemetry_on(sdk_tracer="no-op" not in client)
    if "ledger" in client:  # the ledger consumer attached, its writer thread writing Parquet files
        import tempfile

        from benchmarks.ledger import _ledger_on

        _ledger_on(tempfile.mkdtemp(prefix="statek-bytecodes-ledger-"))
    if client.startswith("openai SDK"):
        import httpx2
        from openai import OpenAI

        import statek

        def transport() -> Any:
            headers = {"content-type": "application/json"}
            return httpx2.MockTransport(
                lambda r: httpx2.Response(200, content=iter([ANSWER]), headers=headers)
            )

        http = (
            statek.http_client(provider="OPENAI", transport=transport())
            if "statek" in client
            else httpx2.Client(transport=transport())
        )
        sdk = OpenAI(
            base_url=URL.removesuffix("/chat/completions"), api_key="k", http_client=http, max_retries=0
        )
        messages: Any = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
        return lambda: sdk.chat.completions.create(model=MODEL, messages=messages)

    import httpx

    from statek import LLM_API, ChatHistoryItem, Job

    if "streamed" in client:
        mock = httpx.MockTransport(
            lambda r: httpx.Response(
                200, content=STREAMED_ANSWER, headers={"content-type": "text/event-stream"}
            )
        )
    else:
        mock = httpx.MockTransport(
            lambda r: httpx.Response(200, content=ANSWER, headers={"content-type": "application/json"})
        )
    client_ = httpx.AsyncClient(transport=mock)
    api = LLM_API.get("OPENAI", model=MODEL, api_url=URL, api_key="bench-key", http_client=client_)
    history = [ChatHistoryItem.user(QUESTION)]
    body = json.dumps(api.preview_request(SYSTEM, MODEL, chat_history=history), separators=(",", ":"))
    headers = {"content-type": "application/json", "authorization": "Bearer bench-key"}
    loop = asyncio.new_event_loop()

    async def raw() -> Any:
        response = await client_.post(URL, content=body.encode(), headers=headers)
        return json.loads(response.content)

    async def in_job() -> Any:
        async with Job("bench-request"):
            return await api.process_request(SYSTEM, MODEL, chat_history=history)

    async def no_job() -> Any:
        return await api.process_request(SYSTEM, MODEL, chat_history=history)

    async def metering_path() -> Any:
        async with Job("bench-request"):
            return await telemetry.observe_call(api, request, answer, payload=payload)

    if client == "metering path alone, no-op tracer":
        # A Job and observe_call around a provider step that returns an answer read once (what the
        # codec makes of ANSWER, unpriced): the record, its consumers and pricing, no HTTP.
        from statek import LLM_Response, telemetry
        from statek.wire.openai_chat import read_whole

        request = api._prepare(SYSTEM, MODEL, None, None, history, None, None, False)
        payload = api._payload(request)
        read = read_whole(json.loads(ANSWER), api.profile, len(body), len(ANSWER))  # type: ignore[attr-defined]
        answered = LLM_Response._of_detail(read.text, read.tool_calls, read.detail)

        async def answer() -> Any:
            return answered

    async def nothing() -> Any:  # what running one coroutine to its end costs, to subtract
        return None

    stream_body = json.dumps(
        {**json.loads(body), "stream": True, "stream_options": {"include_usage": True}}, separators=(",", ":")
    ).encode()

    async def raw_streamed() -> Any:  # as a raw streaming client reads it: lines, each event's JSON
        events = []
        async with client_.stream("POST", URL, content=stream_body, headers=headers) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    events.append(json.loads(line[6:]))
        return events

    async def streamed_in_job() -> Any:
        async with Job("bench-request"):
            stream = api.stream_request(SYSTEM, MODEL, chat_history=history)
            async for _ in stream:
                pass
            return stream.response

    one = {
        "raw": raw,
        "statek, no Job": no_job,
        "metering path alone, no-op tracer": metering_path,
        "an event loop turn": nothing,
        "raw streamed": raw_streamed,
        "statek, streamed": streamed_in_job,
    }.get(client, in_job)
    return lambda: loop.run_until_complete(one())


def child(client: str, calls: int) -> None:
    """Count ``client``'s bytecodes over ``calls`` calls; print them as JSON (by code location)."""
    call = call_of(client)
    for _ in range(WARM_UP):
        call()
    counts: collections.Counter[CodeType] = collections.Counter()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "call":
            frame.f_trace_opcodes = True
        elif event == "opcode":
            counts[frame.f_code] += 1
        return tracer

    sys.settrace(tracer)
    for _ in range(calls):
        call()
    sys.settrace(None)
    out = {f"{_where(code)}:{code.co_firstlineno} {code.co_name}": n / calls for code, n in counts.items()}
    print(json.dumps(out))


def count(client: str, calls: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bytecodes", "--child", client, str(calls)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{client!r} failed:\n{done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks bytecodes", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--top", type=int, default=12, help="packages / statek functions listed per client")
    parser.add_argument("--only", nargs="+", metavar="CLIENT")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    totals: dict[str, float] = {}
    for client in CLIENTS:
        if args.only and client not in args.only:
            continue
        functions = count(client, args.calls)
        totals[client] = total = sum(functions.values())
        packages: collections.Counter[str] = collections.Counter()
        for where, n in functions.items():
            packages[
                where.split(":")[0] if where.startswith("statek/") else where.split("/")[0].split(":")[0]
            ] += n
        print(f"\n{client}: {total:,.0f} bytecodes per call")
        print("  " + ", ".join(f"{name} {n:,.0f}" for name, n in packages.most_common(args.top)))
        own = sorted(((n, w) for w, n in functions.items() if w.startswith("statek/")), reverse=True)
        print(
            "  statek's largest: " + ", ".join(f"{w.split('/', 1)[1]} {n:,.0f}" for n, w in own[: args.top])
        )
    print()
    for label, a, b in DIFFERENCES:
        if a in totals and b in totals:
            print(f"{label}: {totals[a] - totals[b]:+,.0f} bytecodes")


if __name__ == "__main__":
    main()
