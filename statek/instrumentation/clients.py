"""``statek.instrument_clients()``: every supported client library, process-wide, in one call.

* httpx and httpx2 (:func:`~.patch.instrument_httpx`): the official OpenAI, Anthropic and Google
  GenAI SDKs and everything built on them;
* botocore / boto3 (:func:`~.bedrock.instrument_botocore`): Amazon Bedrock Runtime;
* aiohttp (:func:`~.aiohttp_hooks.instrument_aiohttp`): LiteLLM's aiohttp transport, DSPy, plain
  aiohttp code.

Libraries that are not installed are skipped. Each hook reports through the same path as every
other call (span, counters, price, job usage, budget).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from .aiohttp_hooks import instrument_aiohttp, uninstrument_aiohttp
from .bedrock import instrument_botocore, uninstrument_botocore
from .patch import instrument_httpx, uninstrument_httpx

__all__ = ["instrument_clients", "uninstrument_clients"]

_log = logging.getLogger("statek.instrumentation")


def instrument_clients(*, endpoints: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Meter the LLM calls of every supported client library in this process, clients created
    before as well as after; returns the libraries instrumented (``("httpx", "botocore", "aiohttp")``
    when all are installed). ``endpoints`` as for :func:`~.patch.instrument_httpx` (httpx and aiohttp).
    Calling it again replaces ``endpoints``. Undo with :func:`uninstrument_clients`."""
    done = ["httpx"]
    instrument_httpx(endpoints=endpoints)
    if instrument_botocore():
        done.append("botocore")
    if instrument_aiohttp(endpoints=endpoints):
        done.append("aiohttp")
    _log.debug("statek instrumented %s", ", ".join(done))
    return tuple(done)


def uninstrument_clients() -> None:
    """Undo :func:`instrument_clients`. Safe to call when not instrumented."""
    uninstrument_httpx()
    uninstrument_botocore()
    uninstrument_aiohttp()
