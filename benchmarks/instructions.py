"""CPU instructions per call, counted by valgrind: the overhead figures a noisy machine cannot blur.

Timings on a shared machine swing by tens of percent between runs and even between blocks of one
run; instruction counts do not. Each client below makes calls to the loopback chat-completions
server of :mod:`benchmarks._loopback` inside ``valgrind --tool=callgrind`` (the server runs
natively, in its own process), once with ``--calls`` and once with ``4 x --calls`` calls after the
same warm-up; the difference divided by the extra calls is the instructions of one call, start-up
and warm-up cancelled out. Only the calling (main) thread is counted: the exporter threads run on
timers, whose firings under valgrind depend on the machine's load. ``PYTHONHASHSEED=0`` keeps dict
layouts the same from run to run.

Clients (all with the telemetry stack of :func:`benchmarks._loopback.telemetry_on`, priced model):

- ``raw sharded``: raw ``httpx`` posting the same body through statek's pool layout and parsing
  the JSON answer - the baseline (issue 25's);
- ``raw transport``: the same, sent straight to httpx's transports past the client layer, as
  statek's own pool clients send since issue 25's sixth pass: the like-for-like baseline, whose
  difference to ``statek, no-op tracer`` is statek's own work alone (the difference to ``raw
  sharded`` also holds the client layer statek no longer runs);
- ``statek``: ``api.process_request`` in a new ``Job`` per call (as a server uses it);
- ``statek, no Job``: the same call outside any job;
- ``statek, no-op tracer``: a ``Job`` per call with OpenTelemetry's no-op tracer instead of the
  SDK's (tracing off): the difference to ``statek`` is what the SDK's own span costs a call (start
  with the call's attributes, make current, end, hand to the ``BatchSpanProcessor``) - a floor for
  any wrapper that keeps a span per call - plus statek's building of the answer attributes, which
  it skips for a span that does not record;
- ``statek, USD budget``: a ``Job`` with a USD budget per call (a budget per request);
- ``statek, one long Job`` and ``statek, long budgeted Job``: every call in one ``Job``, without and
  with a USD budget: the difference is the budget check of one call alone (issue 14: estimate,
  reserve, settle).
- ``raw streamed`` and ``statek, streamed``: the same answer as a stream of server-sent events, read
  by raw httpx (lines, each event's JSON parsed) and by ``api.stream_request`` in a ``Job`` per call;
- ``openai SDK`` and ``openai SDK + statek``: the official ``openai`` client's
  ``chat.completions.create`` (sync), as it comes and with ``http_client=statek.http_client(...)``
  (the metering transport: recognise, read, price, record, outside any ``Job``).

Printed: instructions per call, the difference to raw, and raw / client (the throughput a
CPU-bound client keeps, x raw). Needs ``valgrind`` (Debian: ``apt-get install valgrind``).

``--in-memory`` counts the clients of ``benchmarks bytecodes`` instead (an ``httpx.MockTransport``
answers in process: no server, no sockets, no event-loop waits). Their differences hold statek's
work alone, and they barely move with the machine's load, which the loopback runs do (a slower
server answer lets the exporter threads and timers run more often per call).

    python -m benchmarks instructions [--quick] [--calls N] [--in-memory] [--only CLIENT...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks import bytecodes
from benchmarks._loopback import MODEL, QUESTION, SYSTEM

CLIENTS = (
    "raw sharded",
    "raw transport",
    "statek",
    "statek, no Job",
    "statek, no-op tracer",
    "statek, USD budget",
    "statek, one long Job",
    "statek, long budgeted Job",
    "raw streamed",
    "statek, streamed",
    "openai SDK",
    "openai SDK + statek",
)
DIFFERENCES = (
    # (what, client, minus client)
    (
        "statek's own part (no-op tracer) over raw httpx, the issue's measure",
        "statek, no-op tracer",
        "raw sharded",
    ),
    (
        "statek's own part (no-op tracer) over raw httpx sent straight to its transport, like for like",
        "statek, no-op tracer",
        "raw transport",
    ),
    ("httpx's client layer (raw sharded minus raw transport)", "raw sharded", "raw transport"),
    ("the SDK's span and its answer attributes", "statek", "statek, no-op tracer"),
    ("a Job per call", "statek", "statek, no Job"),
    ("a Job with a USD budget per call instead of a plain Job", "statek, USD budget", "statek"),
    (
        "the budget check of a call in a long budgeted Job",
        "statek, long budgeted Job",
        "statek, one long Job",
    ),
    ("streamed: statek over raw httpx", "statek, streamed", "raw streamed"),
    ("the official openai SDK: statek's transport over the plain SDK", "openai SDK + statek", "openai SDK"),
)
WARM_UP = 100
_SUMMARY = re.compile(rb"^summary: (\d+)", re.MULTILINE)


# ----------------------------------------------------------------------------- in the child
async def _calls(client: str, url: str, calls: int) -> None:
    from benchmarks.overhead import Clients
    from statek import Budget, Job

    clients = Clients(url)
    if client.startswith("openai SDK"):
        await clients.aclose()
        _sdk_calls(client, url, calls)
        return
    if client == "raw streamed":
        stream_body = json.dumps(
            clients.api.preview_request(SYSTEM, MODEL, chat_history=clients.history) | _STREAMED,
            separators=(",", ":"),
        ).encode()

        async def call() -> object:
            return await clients.sharded.stream_call(stream_body)

    elif client == "statek, streamed":

        async def call() -> object:
            async with Job("bench-request"):
                stream = clients.api.stream_request(SYSTEM, MODEL, chat_history=clients.history)
                async for _ in stream:
                    pass
                return stream.response

    elif client == "raw sharded":
        call = clients.sharded.call
    elif client == "raw transport":
        call = clients.transport.call
    elif client == "statek, no Job":
        call = clients.statek_call
    elif client == "statek, USD budget":

        async def call() -> object:
            async with Job("bench-budget", budget=Budget(usd=10**9)):
                return await clients.statek_call()

    else:
        call = clients.statek_job_call
    long_job = None
    if client == "statek, one long Job":
        long_job, call = Job("bench-long"), clients.statek_call
    elif client == "statek, long budgeted Job":
        long_job, call = Job("bench-long", budget=Budget(usd=10**9)), clients.statek_call
    if long_job is not None:
        long_job.__enter__()
    for _ in range(WARM_UP + calls):
        await call()
    if long_job is not None:
        long_job.__exit__(None, None, None)
    await clients.aclose()


_STREAMED = {"stream": True, "stream_options": {"include_usage": True}}


def _sdk_calls(client: str, url: str, calls: int) -> None:
    """The official sync SDK's calls, plain or through statek's metering transport."""
    from openai import OpenAI

    import statek

    kwargs = {"http_client": statek.http_client(provider="OPENAI")} if client.endswith("statek") else {}
    sdk = OpenAI(base_url=url.removesuffix("/chat/completions"), api_key="bench-key", max_retries=0, **kwargs)
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    for _ in range(WARM_UP + calls):
        sdk.chat.completions.create(model=MODEL, messages=messages)
    sdk.close()


def child(client: str, calls: int, in_memory: bool) -> None:
    """Make ``calls`` calls (after the warm-up) as ``client``; run under valgrind by the parent."""
    from benchmarks._loopback import LoopbackServer, telemetry_on

    if in_memory:
        from benchmarks.bytecodes import call_of

        call = call_of(client)
        for _ in range(WARM_UP + calls):
            call()
    else:
        telemetry_on(sdk_tracer=client != "statek, no-op tracer")
        with LoopbackServer() as server:
            asyncio.run(_calls(client, server.url, calls))
    # No exit-time flush on this thread: it is no call's work, and what it finds waiting (histogram
    # deltas, deferred calls) depends on the number of calls modulo the collection and backlog
    # rhythms, which the differencing would charge to the calls.
    sys.stdout.flush()
    os._exit(0)


# ----------------------------------------------------------------------------- in the parent
def instructions(client: str, calls: int, in_memory: bool = False) -> int:
    """Instructions the child's main thread executed in all (start-up included), counted by
    callgrind. The exporter threads are left out: they run on a timer, so under valgrind's slowdown
    how often they run depends on the machine's load, not on the calls."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    with tempfile.TemporaryDirectory(prefix="statek-callgrind-") as folder:
        out = Path(folder) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--separate-threads=yes",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "benchmarks.instructions",
            "--child",
            client,
            str(calls),
            *(["--in-memory"] if in_memory else []),
        ]
        done = subprocess.run(command, env=env, capture_output=True, check=False)
        main_thread = out.with_name(out.name + "-01")
        found = _SUMMARY.search(main_thread.read_bytes()) if main_thread.exists() else None
    if done.returncode != 0 or found is None:
        tail = done.stderr.decode(errors="replace")[-600:]
        raise SystemExit(f"valgrind run of {client!r} failed (exit {done.returncode}):\n{tail}")
    return int(found.group(1))


def per_call(client: str, calls: int, in_memory: bool = False) -> float:
    """Instructions of one call: the runs with ``calls`` and ``4 * calls`` calls, differenced (also
    printed at once, so a run cut short keeps what it counted)."""
    low, high = instructions(client, calls, in_memory), instructions(client, 4 * calls, in_memory)
    count = (high - low) / (3 * calls)
    print(f"  counted {client}: {count:,.0f} instructions/call", flush=True)
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks instructions", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--calls", type=int, default=100, help="calls in the short run (the long one makes 4x)"
    )
    parser.add_argument("--quick", action="store_true", help="40 calls in the short run")
    parser.add_argument(
        "--only", nargs="+", metavar="CLIENT", help="count only these clients (and the raw baseline)"
    )
    parser.add_argument(
        "--in-memory",
        action="store_true",
        help="the clients of `benchmarks bytecodes`, answered in process (see the module docstring)",
    )
    parser.add_argument("--child", nargs=2, metavar=("CLIENT", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]), args.in_memory)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind (Debian), then run this again")
    calls = 40 if args.quick else args.calls
    print(
        f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; instructions counted by callgrind, "
        f"runs of {calls} and {4 * calls} calls after {WARM_UP} warm-up calls",
        flush=True,
    )
    clients, baseline, differences = (
        (bytecodes.CLIENTS, "raw", bytecodes.DIFFERENCES)
        if args.in_memory
        else (CLIENTS, "raw sharded", DIFFERENCES)
    )
    chosen = [c for c in clients if not args.only or c in args.only or c == baseline]
    with ThreadPoolExecutor(max_workers=max(1, min(len(chosen), os.cpu_count() or 1))) as pool:
        counts = dict(zip(chosen, pool.map(lambda client: per_call(client, calls, args.in_memory), chosen)))
    raw = counts[baseline]
    print(f"\n{'client':<36}{'instructions/call':>18}{'+ over raw':>12}{'raw / client':>14}")
    for client in chosen:
        count = counts[client]
        print(f"{client:<36}{count:18,.0f}{count - raw:+12,.0f}{raw / count:14.2f}")
    print()
    for label, minuend, subtrahend in differences:
        if minuend in counts and subtrahend in counts:
            print(f"{label}: {counts[minuend] - counts[subtrahend]:+,.0f} instructions")
    if "openai SDK + statek" in counts and "openai SDK" in counts:
        print(
            f"official openai SDK with statek's transport: x{counts['openai SDK + statek'] / counts['openai SDK']:.3f}"
        )


if __name__ == "__main__":
    main()
