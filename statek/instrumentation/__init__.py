"""Metering for LLM calls statek does not make itself: the official SDKs and any httpx-based code.

* :func:`http_client` / :func:`async_http_client`: an httpx client to hand an SDK
  (``OpenAI(http_client=statek.http_client())``);
* :class:`MeteringTransport` / :class:`AsyncMeteringTransport`: the transports, to wrap one you have;
* :func:`instrument_httpx` / :func:`uninstrument_httpx`: every httpx client is metered, whenever created;
* :func:`instrument_clients` / :func:`uninstrument_clients`: httpx, botocore (Bedrock) and aiohttp.

Each recognised call is read with the same codecs (:mod:`statek.wire`) and reported through the same
wrapper (:mod:`statek.telemetry`) as an ``LLM_API`` call. See ``docs/instrumentation.md``.
"""

from __future__ import annotations

from .clients import instrument_clients, uninstrument_clients
from .patch import instrument_httpx, is_httpx_instrumented, uninstrument_httpx
from .transport import AsyncMeteringTransport, MeteringTransport, async_http_client, http_client

__all__ = [
    "AsyncMeteringTransport",
    "MeteringTransport",
    "async_http_client",
    "http_client",
    "instrument_clients",
    "instrument_httpx",
    "is_httpx_instrumented",
    "uninstrument_clients",
    "uninstrument_httpx",
]
