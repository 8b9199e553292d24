"""Peak RSS a compressed answer costs: the ~250 KB gzip of 256 MiB of zeros, read raw by the caller.

Each mode runs in a fresh child process (peak RSS cannot be reset) reading the answer from an
in-memory transport in 16 KiB pieces with ``iter_raw()`` (the caller does not decompress):
``plain`` through ``httpx.MockTransport`` alone, ``metered`` through the metering transport around it.
Reported: the child's peak RSS growth while reading (``ru_maxrss`` after minus before).
Goal: bounded (the transport used to keep a decompressed copy: +391 MB).

    python -m benchmarks compressed_answer [--mib 256]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

_CHILD = r"""
import gzip, resource, sys, zlib
import httpx
from statek.instrumentation import MeteringTransport
mode, mib = sys.argv[1], int(sys.argv[2])
packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip, made 1 MiB at a time: RSS stays low before
zeros = bytes(1024 * 1024)
packed = b"".join([packer.compress(zeros) for _ in range(mib)] + [packer.flush()])
answer = [gzip.compress(b'{"choices":[]}')]  # the warm-up's: loads every module on the path
def handler(request):
    data = answer[0]
    pieces = (data[i:i + 16384] for i in range(0, len(data), 16384))
    return httpx.Response(200, content=pieces, headers={"content-encoding": "gzip"})
inner = httpx.MockTransport(handler)
transport = MeteringTransport(inner, provider="OPENAI") if mode == "metered" else inner
client = httpx.Client(transport=transport)
body = b'{"model":"m","messages":[]}'
with client.stream("POST", "http://llm.test/v1/chat/completions", content=body) as r:  # warm up
    for _ in r.iter_raw():
        pass
answer[0] = packed
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with client.stream("POST", "http://llm.test/v1/chat/completions", content=body) as r:
    got = sum(len(piece) for piece in r.iter_raw())
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(packed), got, (after - before) / 1024)
"""


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks compressed_answer")
    parser.add_argument("--mib", type=int, default=256, help="MiB of zeros in the gzip answer")
    args = parser.parse_args(argv)
    print(f"gzip of {args.mib} MiB of zeros, read raw in 16 KiB pieces")
    for mode in ("plain", "metered"):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, mode, str(args.mib)], capture_output=True, text=True, check=True
        ).stdout.split()
        packed, got, grown = int(out[0]), int(out[1]), float(out[2])
        assert got == packed
        print(f"  {mode:<8} answer {packed / 1000:.0f} KB  peak RSS +{grown:.1f} MB", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
