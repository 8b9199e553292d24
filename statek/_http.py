"""One HTTP exchange with a provider: pooled clients, retries with backoff, wire-byte accounting.

Retries cover 408, 409, 429, 5xx and transport errors. The delay before attempt ``n + 1`` is the
server's hint when it gave a usable one (``Retry-After`` seconds or date, ``retry-after-ms``, or
Gemini's ``RetryInfo.retryDelay`` in a 429 body), else ``initial_backoff * 2**(n-1)`` with full
jitter, capped by ``max_backoff``. A hint that is not a finite, non-negative number (``abc``, blank,
a bad date, ``nan``, ``inf``, ``-1``) counts as no hint. ``total_timeout`` bounds the whole exchange,
attempts included: a server trickling its answer one byte at a time is cut off at the deadline.

Every retry is reported to ``on_retry`` so telemetry can show it, without this module knowing about
telemetry. A call cancelled mid-exchange (``task.cancel()``, ``asyncio.wait_for``) keeps what it
already put on the wire: :func:`wire_tally` reads it from the cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import json
import math
import random
import re
import ssl
import sys
import time
import urllib.request
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import httpx
from pydantic import BaseModel, Field

from .exceptions import (
    AuthenticationError,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderServerError,
    RateLimitError,
)
from .secrets import clip, redact_url

__all__ = [
    "ClientPool",
    "RawResponse",
    "RetryEvent",
    "RetryPolicy",
    "WireBytes",
    "json_body",
    "note_wire_bytes",
    "parse_retry_after",
    "post",
    "read_whole",
    "retry_hint",
    "wire_tally",
]

MAX_RETRY_HINT = 86_400.0
"""Largest server retry hint taken (seconds); a larger one is read as this (the policy caps it anyway)."""

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
        if retry_after is not None and math.isfinite(retry_after):
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
class WireBytes:
    """What an exchange put on the wire before it ended without an answer (cancelled)."""

    attempts: int
    bytes_sent: int
    bytes_received: int


_WIRE_NOTE = "_statek_wire_bytes"


def note_wire_bytes(exc: BaseException, attempts: int, sent: int, received: int) -> None:
    """Note on ``exc`` (a cancellation passing through) what the exchange had put on the wire, for
    :func:`wire_tally`. The first note wins: it is made where the numbers are most complete."""
    if getattr(exc, _WIRE_NOTE, None) is None:
        setattr(exc, _WIRE_NOTE, WireBytes(attempts, sent, received))


def wire_tally(exc: BaseException) -> WireBytes:
    """The attempts and bytes of the exchange ``exc`` ended: a :class:`ProviderError`'s own, those
    :func:`post` noted on a cancellation, else zeros."""
    if isinstance(exc, ProviderError):
        return WireBytes(exc.attempts, exc.bytes_sent, exc.bytes_received)
    noted = getattr(exc, _WIRE_NOTE, None)
    return noted if isinstance(noted, WireBytes) else WireBytes(0, 0, 0)


class RawResponse(NamedTuple):
    """A 2xx answer and what the whole exchange cost on the wire (all attempts added up). A tuple: one
    is made per call, and a tuple is made in one step where a frozen dataclass sets field by field."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    attempts: int
    bytes_sent: int
    bytes_received: int


class ClientPool:
    """Pooled ``httpx.AsyncClient`` s, one set per event loop, released with that loop.

    An ``AsyncClient`` is bound to the loop it first ran on; a provider instance cached by the
    application may be used from several ``asyncio.run(...)`` calls in turn, so clients are kept per
    loop. A client passed in by the user is used as-is and never closed here.

    Release: the clients hold their loop (through their connections), so a weak key alone never
    dies. Each loop's clients are therefore tied to a small async generator started on that loop:
    ``asyncio.run`` (and any runner calling ``loop.shutdown_asyncgens()``) closes it before closing the
    loop, and closing it closes the clients and forgets the loop. A loop closed without that step is
    forgotten the next time the pool is used. :meth:`aclose` closes the running loop's clients at once.

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
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = (
            weakref.WeakKeyDictionary()
        )
        self._turn = 0

    def get(self) -> httpx.AsyncClient:
        """The client for the next request on the running loop."""
        if self._given is not None:
            return self._given
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None:
            entry = self._open(loop)
        self._turn = turn = (self._turn + 1) % self._shards
        client = entry.clients[turn]
        if client is None or client.is_closed:
            # Shards are opened on first use: a loop that makes one call (asyncio.run per request)
            # pays for one client, not sixteen.
            client = entry.clients[turn] = _PoolClient(self._timeout, self._limits)
        return client

    def _open(self, loop: asyncio.AbstractEventLoop) -> _LoopClients:
        for stale in [other for other in list(self._clients) if other.is_closed()]:
            self._clients.pop(stale, None)  # closed without shutdown_asyncgens: just let it go
        clients: list[httpx.AsyncClient | None] = [None] * self._shards
        entry = self._clients[loop] = _LoopClients(clients, _close_with_loop(self, loop, clients))
        _start(entry.closer)
        return entry

    def _forget(self, loop: asyncio.AbstractEventLoop, clients: list[httpx.AsyncClient | None]) -> None:
        entry = self._clients.get(loop)
        if entry is not None and entry.clients is clients:
            del self._clients[loop]

    def loops(self) -> int:
        """How many event loops this pool holds clients for (for tests and diagnostics)."""
        return len(self._clients)

    async def aclose(self) -> None:
        """Close the clients of the running loop (a user-supplied client is left open)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        entry = self._clients.pop(loop, None)
        if entry is not None:
            await entry.closer.aclose()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One default TLS context for every pool, shard and loop: building one loads the CA bundle, which
    costs 20-130 ms, and a context may be shared by any number of clients."""
    return httpx.create_ssl_context()


class _PoolClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` the pool made, which :func:`exchange` may pass by: ``direct`` sends its
    requests straight to its network transport. ``direct`` is ``None`` when the environment names a
    proxy: the client then keeps httpx's own transport and proxy mounts, and every request goes
    through ``client.send``."""

    def __init__(self, timeout: httpx.Timeout, limits: httpx.Limits) -> None:
        verify = _tls_context()
        if urllib.request.getproxies():
            # httpx mounts the environment's proxies only on a client given no transport of its own.
            super().__init__(timeout=timeout, limits=limits, verify=verify)
            self.direct: _Direct | None = None
            return
        # The transport AsyncClient would make itself (http1, trust_env, no retries), held here too.
        transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
        super().__init__(timeout=timeout, limits=limits, verify=verify, transport=transport)
        self.direct = _Direct(transport, self.headers, self.cookies, self.timeout)


_CACHED = 64
"""Entries a :class:`_Direct` keeps of URLs and of merged headers (each); a full cache starts over."""


class _Direct:
    """Sends a pool client's POSTs straight to its transport: what the client layer does on the way
    (URL parse, auth and redirect flows, event hooks, cookie jar, logging) costs more than the
    exchange's own work, and a pool client has no hooks, auth, base URL, params or redirects to apply.

    :meth:`request` builds the request ``client.build_request("POST", url, content=body,
    headers=headers, params=params)`` would: the same URL, the client's default headers then
    ``headers`` in the same order, ``Host`` and ``Content-Length``, its cookies, its timeout. The
    URL and merged headers are made once per distinct value (bounded caches), not per call.
    :meth:`answered` does to the answer what ``client.send`` does that statek's callers rely on:
    ``response.request`` set, and ``Set-Cookie`` kept in the client's jar. Given up: httpx's INFO
    log line per request and ``response.elapsed`` (statek reads neither).
    """

    __slots__ = ("_defaults", "_extensions", "_headers", "_urls", "jar", "transport")

    def __init__(
        self,
        transport: httpx.AsyncHTTPTransport,
        defaults: httpx.Headers,
        jar: httpx.Cookies,
        timeout: httpx.Timeout,
    ) -> None:
        self.transport = transport
        self.jar = jar
        self._defaults = defaults
        self._extensions = {"timeout": timeout.as_dict()}  # httpx.Request copies it
        self._urls: dict[tuple[str, tuple[tuple[str, str], ...] | None], httpx.URL] = {}
        self._headers: dict[tuple[tuple[str, str], ...], httpx.Headers] = {}

    def request(
        self, url: str, body: bytes, headers: Mapping[str, str], params: Mapping[str, str] | None
    ) -> httpx.Request | None:
        """The request ``client.build_request`` would make, or ``None`` when its URL needs the client
        (not absolute ``http(s)``, or with user info, which the client turns into basic auth)."""
        target = self._url(url, params)
        if target is None:
            return None
        jar = self.jar
        return httpx.Request(
            "POST",
            target,
            content=body,
            headers=self._merged(headers),
            cookies=jar if jar else None,  # before Content-Length, as build_request adds it
            extensions=self._extensions,
        )

    def _url(self, url: str, params: Mapping[str, str] | None) -> httpx.URL | None:
        """:func:`_direct_url`, cached for ``params`` ``None`` or a plain ``dict`` (a URL the client must
        send itself is not: it is rare, and goes the slow way anyway)."""
        if params is None:
            key: tuple[str, tuple[tuple[str, str], ...] | None] = (url, None)
        elif type(params) is dict:
            key = (url, tuple(params.items()))
        else:
            return _direct_url(url, params)
        target = self._urls.get(key)
        if target is None:
            target = _direct_url(url, params)
            if target is not None:
                _cache(self._urls, key, target)
        return target

    def _merged(self, headers: Mapping[str, str]) -> httpx.Headers:
        """The client's default headers updated with ``headers`` (cached for a plain ``dict``: its
        items are the whole of it, where a ``Headers`` may repeat a name)."""
        if type(headers) is not dict:
            return _merge_headers(self._defaults, headers)
        key = tuple(headers.items())
        merged = self._headers.get(key)
        if merged is None:
            merged = _cache(self._headers, key, _merge_headers(self._defaults, headers))
        return merged

    def answered(self, request: httpx.Request, response: httpx.Response) -> None:
        """What ``client.send`` does to a fresh ``response`` that statek relies on."""
        response.request = request
        if "set-cookie" in response.headers:  # the jar's own look costs a urllib round trip per answer
            self.jar.extract_cookies(response)


K = TypeVar("K")
V = TypeVar("V")


def _cache(cache: dict[K, V], key: K, value: V) -> V:
    """Keep ``value`` under ``key`` in ``cache`` (emptied first when it holds :data:`_CACHED`)."""
    if len(cache) >= _CACHED:
        cache.clear()
    cache[key] = value
    return value


def _direct_url(url: str, params: Mapping[str, str] | None) -> httpx.URL | None:
    """The URL ``build_request`` makes of ``url`` and ``params`` for a client with neither base URL
    nor params of its own; ``None`` when that client would do more than send it (see
    :meth:`_Direct.request`). Parses ``url``: raises as ``build_request`` would."""
    merged = httpx.QueryParams(params) if params else params
    target = httpx.URL(url) if merged is None else httpx.URL(url, params=merged)
    if target.scheme not in ("http", "https") or target.is_relative_url or target.userinfo:
        return None
    return target


def _merge_headers(defaults: httpx.Headers, headers: Mapping[str, str]) -> httpx.Headers:
    merged = httpx.Headers(defaults)
    merged.update(headers)
    return merged


@dataclass(slots=True)
class _LoopClients:
    clients: list[httpx.AsyncClient | None]
    closer: AsyncGenerator[None, None]


async def _close_with_loop(
    pool: ClientPool, loop: asyncio.AbstractEventLoop, clients: list[httpx.AsyncClient | None]
) -> AsyncGenerator[None, None]:
    """Parked at its ``yield`` until the loop shuts its async generators down (or :meth:`aclose`)."""
    try:
        yield
    finally:
        pool._forget(loop, clients)
        for client in clients:
            if client is not None:
                with contextlib.suppress(Exception):  # closing the others matters more
                    await client.aclose()


def _start(generator: AsyncGenerator[None, None]) -> None:
    """Run ``generator`` to its first ``yield`` now, synchronously: that registers it with the running
    loop (which will close it at shutdown). Its body before the ``yield`` awaits nothing."""
    step = generator.__anext__()
    try:
        step.send(None)  # type: ignore[attr-defined]
    except StopIteration:
        return
    raise RuntimeError("the loop-closer generator awaited before its first yield")


_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)s\s*")


def _seconds(value: float) -> float | None:
    """``value`` as a usable delay: finite and non-negative (capped at :data:`MAX_RETRY_HINT`), else ``None``."""
    if not math.isfinite(value) or value < 0:
        return None
    return min(value, MAX_RETRY_HINT)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date) in seconds; ``None`` when absent or
    unusable (not a number or date, not finite, negative). Never raises."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            hint = _seconds(float(millis) / 1000)
        except ValueError:
            hint = None
        if hint is not None:
            return hint
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        return _seconds(float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return _seconds(max(when.timestamp() - time.time(), 0.0))
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def gemini_retry_delay(body: bytes) -> float | None:
    """The ``retryDelay`` of a ``google.rpc.RetryInfo`` detail in a Google error body (``"37s"``,
    ``"0.5s"``), in seconds; ``None`` when there is none or it is unusable. Never raises."""
    if b"retryDelay" not in body:
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    error = document.get("error") if isinstance(document, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else ():
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str):
            match = _DURATION.fullmatch(delay)
            if match:
                return _seconds(float(match.group(1)))
    return None


def retry_hint(response: httpx.Response) -> float | None:
    """How long the server asked us to wait: its headers first, then Gemini's ``RetryInfo`` body."""
    hint = parse_retry_after(response.headers)
    if hint is None and response.status_code == 429:
        hint = gemini_retry_delay(response.content)
    return hint


def _http_error(
    response: httpx.Response, provider: str, hint: float | None = None, **kwargs: Any
) -> ProviderHTTPError:
    """The error for a final non-2xx ``response``; ``hint`` is its retry hint (read here when not given)."""
    if hint is None:
        hint = retry_hint(response)
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
        f"{provider} answered HTTP {status}: {clip(body, 300)}",
        status_code=status,
        body=body,
        headers=dict(response.headers),
        retry_after=hint,
        request=_bare_request(response.request.url),
        provider=provider,
        **kwargs,
    )


def _bare_request(url: httpx.URL | str) -> httpx.Request:
    """The request as an error may show it: method and URL, no query string (keys hide there), no headers."""
    return httpx.Request("POST", httpx.URL(url).copy_with(query=None, userinfo=b""))


_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def json_body(payload: Any) -> bytes:
    """``payload`` as a request body: compact UTF-8 JSON (``json.dumps(payload, separators=(",",
    ":"), ensure_ascii=False)``, with the encoder made once rather than per call)."""
    return _COMPACT_JSON.encode(payload).encode()


T = TypeVar("T")

if sys.version_info >= (3, 11):

    def _cancelling(task: asyncio.Task[Any]) -> int:
        return task.cancelling()

    def _uncancel(task: asyncio.Task[Any]) -> int:
        return task.uncancel()

else:  # pragma: no cover - Python 3.10: tasks do not count cancellations

    def _cancelling(task: asyncio.Task[Any]) -> int:
        return 0

    def _uncancel(task: asyncio.Task[Any]) -> int:
        return 0


class _Deadlines:
    """The ``total_timeout`` of every exchange running on one event loop, kept by one timer.

    ``asyncio.timeout`` arms a timer per call and cancels it afterwards (about a third of an
    exchange's own Python work). Here one timer waits for the earliest deadline of the exchanges in
    flight: an exchange that ends first only leaves the set, and the timer, when it fires, cancels the
    tasks whose deadlines passed and waits for the next one. Calls in turn with the same policy arm it
    once per ``total_timeout``. The same semantics as ``asyncio.timeout``: the task is cancelled, and
    :meth:`expired` tells the exchange that the cancellation is its deadline's and no one else's (then
    it is undone and becomes a timeout).

    Lives as long as its timer is armed or an exchange holds it: the loop holds it through the timer,
    and the per-loop registry (:data:`_deadlines`) only weakly, so that loop and deadlines go together
    (the armed timer refers to its loop: held strongly, the registry would keep every loop alive).
    """

    __slots__ = ("__weakref__", "_due", "_expired", "_timer", "_timer_at")

    def __init__(self) -> None:
        self._due: dict[asyncio.Task[Any], tuple[float, int]] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def watch(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any], when: float) -> None:
        """Cancel ``task`` at loop time ``when`` unless :meth:`release` comes first."""
        self._due[task] = (when, _cancelling(task))
        if when < self._timer_at:
            self._arm(loop, when)

    def release(self, task: asyncio.Task[Any]) -> None:
        """Stop watching ``task`` (its exchange ended, however)."""
        self._due.pop(task, None)
        self._expired.discard(task)

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Whether the cancellation passing through ``task`` is its deadline's, and no other is
        pending: then the cancellation is undone (the exchange raises its timeout instead)."""
        if task not in self._expired:
            return False
        self._expired.discard(task)
        due = self._due.get(task)
        return _uncancel(task) <= (due[1] if due is not None else 0)

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._fire, loop)
        self._timer_at = when

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        # Due: every deadline up to the one this timer was set for (the loop may run a timer a clock
        # tick early, so its own time is not the measure).
        fired_at = self._timer_at
        self._timer, self._timer_at = None, math.inf
        later = math.inf
        for task, (when, _) in list(self._due.items()):
            if task in self._expired:
                continue
            if when <= fired_at:
                self._expired.add(task)
                task.cancel()
            else:
                later = min(later, when)
        if later < math.inf:
            self._arm(loop, later)


_deadlines: dict[int, weakref.ref[_Deadlines]] = {}
"""Each loop's deadlines, by the loop's ``id``, held weakly (see :class:`_Deadlines`). An entry goes
when its deadlines are collected, which is no later than their loop's collection (an armed timer
holds the loop), so a reused ``id`` never finds another loop's deadlines."""


def _deadlines_of(loop: asyncio.AbstractEventLoop) -> _Deadlines:
    """``loop``'s deadlines; made on the first exchange, and again when they were let go idle."""
    key = id(loop)
    held = _deadlines.get(key)
    deadlines = held() if held is not None else None
    if deadlines is None:
        deadlines = _Deadlines()
        _deadlines[key] = weakref.ref(deadlines, lambda ref: _forget_deadlines(key, ref))
    return deadlines


def _forget_deadlines(key: int, ref: weakref.ref[_Deadlines]) -> None:
    if _deadlines.get(key) is ref:  # not a newer entry for the same loop
        del _deadlines[key]


def _timed_out(cancelled: asyncio.CancelledError) -> asyncio.TimeoutError:
    """The timeout a deadline's cancellation becomes (chained to it, as ``asyncio.timeout`` does)."""
    timeout = asyncio.TimeoutError()
    timeout.__cause__ = cancelled
    return timeout


async def exchange(
    client: httpx.AsyncClient,
    url: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    provider: str,
    retry: RetryPolicy,
    read: Callable[[httpx.Response, WireBytes], Awaitable[T]],
    on_retry: Callable[[RetryEvent], None] | None = None,
    params: Mapping[str, str] | None = None,
) -> T:
    """POST ``body`` to ``url`` until a 2xx answer starts, the call fails for good, or the policy runs
    out; return what ``read`` makes of the 2xx answer (still unread when it gets it, with the
    attempts and bytes so far).

    Retried: the statuses of :data:`RETRYABLE_STATUS` and transport errors, also one raised while
    ``read`` reads (a :class:`ProviderError` that ``read`` raises is final). ``total_timeout`` bounds
    everything, ``read`` included. Raises :class:`ProviderHTTPError` (or a subclass) for a final non-2xx
    answer and :class:`ProviderConnectionError` when no answer came or the deadline passed; either
    carries the attempts made and the bytes sent and received. A cancellation propagates unchanged,
    with those numbers noted on it (:func:`wire_tally`).
    """
    # One coroutine frame between the caller and httpx: every extra ``async def`` layer here is
    # resumed at each of the exchange's suspensions (about seven a call), which costs more than the
    # work it would hold (benchmarks/instructions.py).
    loop = asyncio.get_running_loop()
    task = asyncio.current_task(loop)
    if task is None:
        raise RuntimeError("an exchange runs inside a task (its total_timeout cancels the task)")
    # A pool client's requests go straight to its transport (see _Direct); any other client's through
    # its send(), with everything it was configured with.
    direct = client.direct if isinstance(client, _PoolClient) else None
    deadline = loop.time() + retry.total_timeout
    deadlines = _deadlines_of(loop)
    deadlines.watch(loop, task, deadline)
    sent = received = 0
    attempt = 0
    try:
        while True:
            attempt += 1
            sent += len(body)
            try:
                if (
                    direct is not None
                    and not client.is_closed  # else send() raises its error for a closed client
                    and (request := direct.request(url, body, headers, params)) is not None
                ):
                    try:
                        response = await direct.transport.handle_async_request(request)
                    except httpx.RequestError as failed:
                        failed.request = request  # as client.send does: the error names its request
                        raise
                    try:
                        direct.answered(request, response)
                    except BaseException:
                        await response.aclose()
                        raise
                else:
                    request = client.build_request("POST", url, content=body, headers=headers, params=params)
                    response = await client.send(request, stream=True)
                if read is read_whole:  # the common case, without a streamed response's extra work
                    if response.is_success:
                        # Read here, not by send(): a body cut by total_timeout keeps the bytes it had.
                        pieces: list[bytes] = []
                        try:
                            async for piece in response.aiter_bytes():
                                pieces.append(piece)
                        except asyncio.CancelledError as cancelled:
                            note_wire_bytes(cancelled, attempt, sent, received + sum(map(len, pieces)))
                            raise
                        finally:
                            await response.aclose()
                        content = b"".join(pieces)
                        return RawResponse(  # type: ignore[return-value]
                            response.status_code,
                            response.headers,
                            content,
                            attempt,
                            sent,
                            received + len(content),
                        )
                    try:
                        await response.aread()
                    except BaseException:
                        await response.aclose()  # as send() does: the connection goes back either way
                        raise
                else:
                    try:
                        if response.is_success:
                            return await read(response, WireBytes(attempt, sent, received))
                        await response.aread()
                    finally:
                        await response.aclose()
            except asyncio.CancelledError as cancelled:
                if not deadlines.expired(task):
                    raise
                # total_timeout ran out inside the attempt. The cancellation carries what the attempt
                # had read, when read() noted it.
                got = max(received, wire_tally(cancelled).bytes_received)
                exc = _timed_out(cancelled)
                raise _no_answer(provider, url, attempt, sent, got, exc, retry.total_timeout) from exc
            except ProviderError:
                raise  # from read(): final (a ProviderConnectionError is also an httpx.TransportError)
            except httpx.TransportError as exc:
                error: Exception = exc
                status = None
                hint = None
                error_type = type(exc).__name__
            else:
                received += len(response.content)
                status = response.status_code
                hint = retry_hint(response)
                error = _http_error(
                    response, provider, hint, attempts=attempt, bytes_sent=sent, bytes_received=received
                )
                error_type = str(status)
                if status not in RETRYABLE_STATUS:
                    raise error
            delay = retry.delay(attempt, hint)
            if attempt >= retry.max_attempts or loop.time() + delay >= deadline:
                if isinstance(error, ProviderHTTPError):
                    raise error
                raise _no_answer(provider, url, attempt, sent, received, error, None) from error
            if on_retry is not None:
                on_retry(RetryEvent(attempt, status, error_type, delay))
            await asyncio.sleep(delay)
    except asyncio.CancelledError as exc:
        if deadlines.expired(task):  # in the backoff, which ends before the deadline unless the loop lags
            raise _no_answer(
                provider, url, attempt, sent, received, _timed_out(exc), retry.total_timeout
            ) from exc
        note_wire_bytes(exc, attempt, sent, received)
        raise
    finally:
        deadlines.release(task)


async def read_whole(response: httpx.Response, so_far: WireBytes) -> RawResponse:
    """The whole 2xx answer: :func:`exchange`'s ``read`` for a call answered at once (what :func:`post`
    passes; :func:`exchange` inlines it on its hot path)."""
    content = await response.aread()
    return RawResponse(
        response.status_code,
        response.headers,
        content,
        so_far.attempts,
        so_far.bytes_sent,
        so_far.bytes_received + len(content),
    )


def post(
    client: httpx.AsyncClient,
    url: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    provider: str,
    retry: RetryPolicy,
    on_retry: Callable[[RetryEvent], None] | None = None,
    params: Mapping[str, str] | None = None,
) -> Coroutine[Any, Any, RawResponse]:
    """:func:`exchange` reading the whole 2xx answer: its status, headers, body and wire bytes.

    A plain function returning :func:`exchange`'s coroutine, so that awaiting it adds no coroutine
    layer (see :func:`exchange`)."""
    return exchange(
        client,
        url,
        body=body,
        headers=headers,
        provider=provider,
        retry=retry,
        read=read_whole,
        on_retry=on_retry,
        params=params,
    )


def _no_answer(
    provider: str,
    url: str,
    attempt: int,
    sent: int,
    received: int,
    error: BaseException,
    timeout: float | None,
) -> ProviderConnectionError:
    why = f"no answer within total_timeout={timeout:g} s" if timeout is not None else "no answer"
    detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return ProviderConnectionError(
        f"{provider}: {why} from {redact_url(url)} after {attempt} attempt(s): {detail}",
        provider=provider,
        attempts=attempt,
        bytes_sent=sent,
        bytes_received=received,
        request=_bare_request(url),
    )
