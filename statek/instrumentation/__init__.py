"""Metering for LLM calls statek does not make itself: the official SDKs and any httpx-based code.

* :func:`http_client` / :func:`async_http_client`: an httpx client to hand an SDK
  (``OpenAI(http_client=statek.http_client())``);
* :class:`MeteringTransport` / :class:`AsyncMeteringTransport`: the transports, to wrap one you have;
* :func:`instrument_httpx` / :func:`uninstrument_httpx`: every httpx client created meanwhile is metered.

Each recognised call is read with the same codecs (:mod:`statek.wire`) and reported through the same
wrapper (:mod:`statek.telemetry`) as an ``LLM_API`` call. See ``docs/instrumentation.md``.
"""

from __future__ import annotations

from .patch import instrument_httpx, is_httpx_instrumented, uninstrument_httpx
from .transport import AsyncMeteringTransport, MeteringTransport, async_http_client, http_client

__all__ = [
    "AsyncMeteringTransport",
    "MeteringTransport",
    "async_http_client",
    "http_client",
    "instrument_httpx",
    "is_httpx_instrumented",
    "uninstrument_httpx",
]
