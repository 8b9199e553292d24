"""A multiprocess directory on a tiny filesystem that fills up: the worker lives on (issue 22).

prometheus_client's files are mmap'ed and grown with ``truncate``: on a full filesystem the first
write to a page the filesystem cannot back kills the process with SIGBUS. The test mounts a 4 MiB
tmpfs (and unmounts it), leaves 3 MiB free, and runs a worker that creates thousands of series:

- raw prometheus_client on that filesystem dies of SIGBUS (the hazard, shown);
- a statek worker refuses the series that do not fit (logged, counted in
  ``statek_multiprocess_refused_series_total``), keeps counting the others, and exits normally.

Mounting needs privileges (root, or an unprivileged user namespace): without them the test skips.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from statek.exporters import multiprocess

pytestmark = pytest.mark.e2e

RAW_WORKER = """
import os
from prometheus_client import Counter
counter = Counter("flood", "one series per label value", ["model"])
for i in range(100_000):
    counter.labels(f"model-{i:06d}-{'x' * 80}").inc()
print("survived")
"""

STATEK_WORKER = """
import asyncio, json, httpx, statek
from prometheus_client import CollectorRegistry
from statek import LLM_API, ChatHistoryItem

def answer(request):
    body = json.loads(request.content)
    return httpx.Response(200, json={
        "id": "c", "object": "chat.completion", "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}})

active = statek.instrument(service_name="full-disk", registry=CollectorRegistry())
assert active.multiprocess is not None
api = LLM_API.get("OPENAI", api_url="http://127.0.0.1:9/v1", api_key="test-key",
                  http_client=httpx.AsyncClient(transport=httpx.MockTransport(answer)))

async def run():
    for i in range(800):
        await api.process_request(model=f"model-{i:06d}", chat_history=[ChatHistoryItem.user("hi")])
        if i % 100 == 0:
            active.multiprocess.flush()

asyncio.run(run())
statek.shutdown()
print("survived", active.multiprocess.refused)
"""


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    mountpoint = tmp_path / f"tiny-{uuid.uuid4().hex[:8]}"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        free = os.statvfs(mountpoint).f_bavail * os.statvfs(mountpoint).f_frsize
        (mountpoint / "filler").write_bytes(bytes(free - 3 * 2**20))  # leave 3 MiB
        directory = mountpoint / "prom"
        directory.mkdir()
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def _run(script: str, directory: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        multiprocess.ENV: str(directory),
        "STATEK_METRICS_MAX_MODELS": "100000",  # let the flood through the cardinality guard
    }
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_raw_prometheus_client_dies_of_sigbus_on_a_full_filesystem(tiny_filesystem: Path) -> None:
    done = _run(RAW_WORKER, tiny_filesystem)
    assert done.returncode == -signal.SIGBUS, (done.returncode, done.stdout, done.stderr[-2000:])


def test_a_statek_worker_refuses_new_series_instead_of_dying(tiny_filesystem: Path) -> None:
    done = _run(STATEK_WORKER, tiny_filesystem)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr[-2000:])
    survived, refused = done.stdout.split()
    assert survived == "survived" and int(refused) > 0
    assert "full" in done.stderr and "statek_multiprocess_refused_series_total" in done.stderr
    generate_latest(multiprocess.registry(tiny_filesystem))  # new series: zero first
    served = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(
            generate_latest(multiprocess.registry(tiny_filesystem)).decode()
        )
        for s in family.samples
    }
    assert served[("statek_multiprocess_refused_series_total", ())] == int(refused)
    requests = sum(v for (name, _), v in served.items() if name == "statek_requests_total")
    assert 0 < requests < 800  # the series that fit are counted; the refused ones are not in the files
