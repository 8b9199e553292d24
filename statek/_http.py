"""One HTTP exchange with a provider: pooled clients, retries with backoff, wire-byte accounting.

Retries cover 408, 409, 429, 5xx and transport errors. The delay before attempt ``n + 1`` is the
server's ``Retry-After`` when it sent one, else ``initial_backoff * 2**(n-1)`` with full jitter,
capped by ``max_backoff``; the whole exchange never runs past ``total_timeout``. Every retry is
reported to ``on_retry`` so telemetry can show it, without this module knowing about telemetry.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx
from pydantic import BaseModel, Field

from .exceptions import (
    AuthenticationError,
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderServerError,
    RateLimitError,
)

__all__ = ["ClientPool", "RawResponse", "RetryEvent", "RetryPolicy", "post"]

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 521, 522, 524, 529})


class RetryPolicy(BaseModel):
    """How hard to try: attempts, backoff and an overall deadline (seconds)."""

    max_attempts: int = Field(4, ge=1, le=20)
    initial_backoff: float = Field(0.5, ge=0)
    max_backoff: float = Field(20.0, ge=0)
    total_timeout: float = Field(120.0, gt=0)
    jitter: bool = True

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff)
        ceiling = min(self.initial_backoff * 2 ** (attempt - 1), self.max_backoff)
        return random.uniform(0, ceiling) if self.jitter else ceiling


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """A failed attempt that will be retried after ``delay`` seconds."""

    attempt: int
    status_code: int | None
    error_type: str
    delay: float


@dataclass(frozen=True, slots=True)
class RawResponse:
    """A 2xx answer and what the whole exchange cost on the wire (all attempts added up)."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    attempts: int
    bytes_sent: int
    bytes_received: int


class ClientPool:
    """Pooled ``httpx.AsyncClient`` s, one set per event loop.

    An ``AsyncClient`` is bound to the loop it first ran on; a provider instance cached by the
    application may be used from several ``asyncio.run(...)`` calls in turn, so clients are kept per
    loop and dropped with it. A client passed in by the user is used as-is and never closed here.

    Each loop gets ``shards`` clients of ``connections_per_shard`` connections, used in turn. The
    trap this avoids: httpcore re-scans every queued request against every connection on each state
    change (O(waiting x connections); encode/httpx#3215), so one client with 256 connections under
    heavy concurrency spends its time in that scan (measured: 1,000 concurrent calls took 24 s on one
    such client, and 1.5 s spread over shards of 16 connections).
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        timeout: httpx.Timeout | float = 60.0,
        *,
        shards: int = 16,
        connections_per_shard: int = 16,
    ) -> None:
        self._given = client
        self._timeout = (
            timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout, connect=10.0)
        )
        self._shards = shards
        self._limits = httpx.Limits(
            max_connections=connections_per_shard, max_keepalive_connections=connections_per_shard
        )
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[httpx.AsyncClient]] = (
            weakref.WeakKeyDictionary()
        )
        self._turn = 0

    def get(self) -> httpx.AsyncClient:
        """The client for the next request on the running loop."""
        if self._given is not None:
            return self._given
        loop = asyncio.get_running_loop()
        clients = self._clients.get(loop)
        if clients is None or clients[0].is_closed:
            # One TLS context for all shards: building one costs ~20 ms.
            verify = httpx.create_ssl_context()
            clients = [
                httpx.AsyncClient(timeout=self._timeout, limits=self._limits, verify=verify)
                for _ in range(self._shards)
            ]
            self._clients[loop] = clients
        self._turn = (self._turn + 1) % self._shards
        return clients[self._turn]

    async def aclose(self) -> None:
        """Close the clients of the running loop (a user-supplied client is left open)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for client in self._clients.pop(loop, ()):
            await client.aclose()


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` (seconds or HTTP date) or ``retry-after-ms``, in seconds; ``None`` if absent."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(parsed.timestamp() - time.time(), 0.0) if parsed else None


def _http_error(response: httpx.Response, provider: str, **kwargs: object) -> ProviderHTTPError:
    status = response.status_code
    cls: type[ProviderHTTPError] = ProviderHTTPError
    if status in (401, 403):
        cls = AuthenticationError
    elif status == 429:
        cls = RateLimitError
    elif status >= 500:
        cls = ProviderServerError
    body = response.text
    return cls(
        f"{provider} answered HTTP {status}: {body[:300]}",
        status_code=status,
        body=body,
        headers=dict(response.headers),
        retry_after=parse_retry_after(response.headers),
        request=_bare_request(response.request.url),
        provider=provider,
        **kwargs,
    )


def _bare_request(url: httpx.URL | str) -> httpx.Request:
    """The request as an error may show it: method and URL, no query string (keys hide there), no headers."""
    return httpx.Request("POST", httpx.URL(url).copy_with(query=None, userinfo=b""))


async def post(
    client: httpx.AsyncClient,
    url: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    provider: str,
    retry: RetryPolicy,
    on_retry: Callable[[RetryEvent], None] | None = None,
    params: Mapping[str, str] | None = None,
) -> RawResponse:
    """POST ``body`` to ``url`` until it succeeds, fails for good, or the policy runs out.

    Returns the 2xx response. Raises :class:`ProviderHTTPError` (or a subclass) for a final non-2xx
    answer and :class:`ProviderConnectionError` when no answer came; either carries the attempts made
    and the bytes sent and received so far.
    """
    deadline = time.monotonic() + retry.total_timeout
    sent = received = 0
    attempt = 0
    while True:
        attempt += 1
        sent += len(body)
        try:
            response = await client.post(url, content=body, headers=headers, params=params)
        except httpx.TransportError as exc:
            error: Exception = exc
            status = None
            retry_after = None
            error_type = type(exc).__name__
        else:
            received += len(response.content)
            if response.is_success:
                return RawResponse(
                    response.status_code, response.headers, response.content, attempt, sent, received
                )
            status = response.status_code
            retry_after = parse_retry_after(response.headers)
            error = _http_error(
                response, provider, attempts=attempt, bytes_sent=sent, bytes_received=received
            )
            error_type = str(status)
            if status not in RETRYABLE_STATUS:
                raise error
        delay = retry.delay(attempt, retry_after)
        if attempt >= retry.max_attempts or time.monotonic() + delay >= deadline:
            if isinstance(error, ProviderHTTPError):
                raise error
            raise ProviderConnectionError(
                f"{provider}: no answer from {url} after {attempt} attempt(s): {type(error).__name__}: {error}",
                provider=provider,
                attempts=attempt,
                bytes_sent=sent,
                bytes_received=received,
                request=_bare_request(url),
            ) from error
        if on_retry is not None:
            on_retry(RetryEvent(attempt, status, error_type, delay))
        await asyncio.sleep(delay)
