"""A pool client's requests go straight to its transport (``statek._http._Direct``), past the client
layer, and nothing on the wire or in the answer tells the two paths apart.

The loopback server here records each request's raw bytes; the same call made through a client of
the user's own (which always goes through ``client.send``) is the reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_telemetry_support import Captured, captured_fixture, prices_fixture  # noqa: F401 - fixtures

import statek
from statek import ChatHistoryItem, Job
from statek._http import ClientPool, RetryPolicy, _PoolClient, exchange, post
from statek.exceptions import ProviderConnectionError
from statek.providers.openai_compat import OpenAICompatible_API
from statek.settings import ProviderSettings
from statek.testing import ModelBehavior, ProviderSimulator

ONCE = RetryPolicy(max_attempts=1)
ANSWER = b'{"ok":true}'
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


class Loopback:
    """An HTTP/1.1 server on 127.0.0.1 (keep-alive): records each request's raw bytes and answers
    ``status`` with ``ANSWER`` and ``extra`` header lines."""

    def __init__(self, status: int = 200, extra: bytes = b"") -> None:
        self.status, self.extra = status, extra
        self.requests: list[bytes] = []
        self.url = ""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Cancelled: the test's loop ends with the connection still open.
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                self.requests.append(head + await reader.readexactly(length))
                writer.write(
                    b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s"
                    % (self.status, len(ANSWER), self.extra, ANSWER)
                )
                await writer.drain()
        writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Loopback]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"
        try:
            yield self
        finally:
            server.close()


@pytest.fixture(name="sends")
def sends_fixture(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    """The requests that went through ``AsyncClient.send`` (the client layer) during the test."""
    seen: list[httpx.Request] = []
    send = httpx.AsyncClient.send

    async def counted(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        seen.append(request)
        return await send(self, request, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "send", counted)
    return seen


def _pool_client() -> _PoolClient:
    client = ClientPool(timeout=7.0).get()
    assert isinstance(client, _PoolClient)
    return client


HEADERS = {"content-type": "application/json", "authorization": "Bearer k", "X-Mixed-Case": "v"}


async def _both(
    server: Loopback, call: Callable[[httpx.AsyncClient], Any], sends: list[httpx.Request]
) -> tuple[list[bytes], list[bytes]]:
    """The raw requests ``call`` puts on the wire through a pool client and through a user's client."""
    pool_client = _pool_client()
    await call(pool_client)
    assert sends == []  # the pool client's requests went past send()
    direct = server.requests[:]
    server.requests.clear()
    async with httpx.AsyncClient(timeout=7.0) as user_client:
        await call(user_client)
    assert sends  # the reference went through send()
    await pool_client.aclose()
    return direct, server.requests[:]


@pytest.mark.parametrize("params", [None, {}, {"key": "k/1 ?&=", "alt": "sse"}])
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
async def test_the_request_on_the_wire_is_the_same_on_both_paths(
    sends: list[httpx.Request], params: dict[str, str] | None, streamed: bool
) -> None:
    async def read(response: httpx.Response, so_far: Any) -> bytes:
        return await response.aread()

    async def call(client: httpx.AsyncClient) -> None:
        url = server.url + "?existing=1"
        if streamed:
            got = await exchange(
                client,
                url,
                body=b'{"a":1}',
                headers=HEADERS,
                provider="P",
                retry=ONCE,
                read=read,
                params=params,
            )
        else:
            got = (
                await post(
                    client, url, body=b'{"a":1}', headers=HEADERS, provider="P", retry=ONCE, params=params
                )
            ).content
        assert got == ANSWER

    async with Loopback().running() as server:
        direct, reference = await _both(server, call, sends)
    assert direct == reference and len(direct) == 1
    assert b"\r\nx-mixed-case: v\r\n" in direct[0].lower() and b"\r\nContent-Length: 7\r\n\r\n" in direct[0]


async def test_a_cookie_the_server_sets_is_kept_and_sent_back_on_both_paths(
    sends: list[httpx.Request],
) -> None:
    async def call(client: httpx.AsyncClient) -> None:
        for _ in range(2):
            await post(client, server.url, body=b"{}", headers=HEADERS, provider="P", retry=ONCE)
        assert client.cookies.get("sid") == "s1"

    async with Loopback(extra=b"set-cookie: sid=s1; Path=/\r\n").running() as server:
        direct, reference = await _both(server, call, sends)
    assert direct == reference
    assert b"cookie: sid=s1" not in direct[0].lower() and b"\r\nCookie: sid=s1\r\n" in direct[1]


async def test_the_answer_carries_its_request_and_the_client_timeout(sends: list[httpx.Request]) -> None:
    client = _pool_client()
    seen: list[httpx.Response] = []

    async def read(response: httpx.Response, so_far: Any) -> None:
        seen.append(response)
        await response.aread()

    async with Loopback().running() as server:
        await exchange(client, server.url, body=b"{}", headers={}, provider="P", retry=ONCE, read=read)
    [response] = seen
    assert response.request.url == server.url and response.is_closed
    assert response.request.extensions["timeout"] == httpx.Timeout(7.0, connect=10.0).as_dict()
    assert sends == []
    await client.aclose()


async def test_an_error_answer_is_read_and_raised_as_on_the_client_path(sends: list[httpx.Request]) -> None:
    client = _pool_client()
    async with Loopback(status=400).running() as server:
        with pytest.raises(statek.exceptions.ProviderHTTPError, match="HTTP 400") as caught:
            await post(client, server.url, body=b"{}", headers={}, provider="P", retry=ONCE)
    assert caught.value.body == ANSWER.decode() and caught.value.bytes_received == len(ANSWER)
    assert sends == []
    await client.aclose()


async def test_a_connection_error_names_its_request_as_on_the_client_path() -> None:
    async with Loopback().running() as server:
        dead = server.url
    client = _pool_client()
    with pytest.raises(ProviderConnectionError, match="ConnectError") as caught:
        await post(client, dead, body=b"{}", headers={}, provider="P", retry=ONCE)
    cause = caught.value.__cause__
    assert isinstance(cause, httpx.ConnectError) and cause.request.url == dead
    await client.aclose()


async def test_no_client_log_line_on_the_direct_path(caplog: pytest.LogCaptureFixture) -> None:
    """What is given up: httpx's INFO line per request (statek's own telemetry records the call)."""
    client = _pool_client()
    with caplog.at_level(logging.INFO, logger="httpx"):
        async with Loopback().running() as server:
            await post(client, server.url, body=b"{}", headers={}, provider="P", retry=ONCE)
    assert not [r for r in caplog.records if r.getMessage().startswith("HTTP Request")]
    await client.aclose()


async def test_a_url_with_user_info_goes_through_the_client_for_its_basic_auth(
    sends: list[httpx.Request],
) -> None:
    client = _pool_client()
    async with Loopback().running() as server:
        url = server.url.replace("http://", "http://user:pw@")
        await post(client, url, body=b"{}", headers={}, provider="P", retry=ONCE)
    assert len(sends) == 1 and b"\r\nAuthorization: Basic " in server.requests[0]
    await client.aclose()


async def test_a_closed_pool_client_raises_as_the_client_does() -> None:
    client = _pool_client()
    await client.aclose()
    with pytest.raises(RuntimeError, match="client has been closed"):
        await post(client, "http://127.0.0.1:9/x", body=b"{}", headers={}, provider="P", retry=ONCE)


# ----------------------------------------------------------------------------- proxies
@pytest.mark.parametrize("variable", ["HTTP_PROXY", "ALL_PROXY", "http_proxy"])
async def test_an_environment_proxy_keeps_the_client_path_and_is_used(
    monkeypatch: pytest.MonkeyPatch, sends: list[httpx.Request], variable: str
) -> None:
    async with Loopback().running() as proxy:
        monkeypatch.setenv(variable, proxy.url.rsplit("/v1", 1)[0])
        client = _pool_client()
        assert client.direct is None
        await post(
            client, "http://llm.invalid/v1/chat/completions", body=b"{}", headers={}, provider="P", retry=ONCE
        )
        await client.aclose()
    assert len(sends) == 1
    assert proxy.requests[0].startswith(b"POST http://llm.invalid/v1/chat/completions HTTP/1.1\r\n")


# ----------------------------------------------------------------------------- the request, built
_TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=12)
_VALUE = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)
_NAMES = _TOKEN | st.sampled_from(["User-Agent", "accept", "Accept-Encoding", "connection", "Cookie", "host"])


@settings(max_examples=150, deadline=None)
@given(
    headers=st.dictionaries(_NAMES, _VALUE, max_size=6),
    params=st.none() | st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3),
    url=st.sampled_from(
        [
            "http://127.0.0.1:8080/v1/chat/completions",
            "https://example.com/v1beta/models/m:generateContent?alt=sse",
            "https://EXAMPLE.com:443/a%20b/c?x=1&x=2",
            "http://[::1]:9/x",
        ]
    ),
    body=st.binary(max_size=40),
    cookie=st.booleans(),
)
def test_the_direct_request_is_the_one_build_request_makes(
    headers: dict[str, str], params: dict[str, str] | None, url: str, body: bytes, cookie: bool
) -> None:
    client = _PoolClient(httpx.Timeout(7.0), httpx.Limits())
    if cookie:
        client.cookies.set("sid", "s1", domain="example.com")
    assert client.direct is not None
    for _ in range(2):  # built, then from the caches
        direct = client.direct.request(url, body, headers, params)
        built = client.build_request("POST", url, content=body, headers=headers, params=params)
        assert direct is not None
        assert (direct.method, direct.url, direct.headers.raw, direct.content, direct.extensions) == (
            built.method,
            built.url,
            built.headers.raw,
            built.content,
            built.extensions,
        )


# ----------------------------------------------------------------------------- instrumentation
@pytest.fixture(name="simulator")
def simulator_fixture() -> Iterator[ProviderSimulator]:
    with ProviderSimulator({"m": ModelBehavior(text="ok")}) as sim:
        yield sim
    statek.uninstrument_httpx()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_an_llm_api_call_under_instrument_httpx_is_metered_once_and_not_unmetered(
    captured: Captured, simulator: ProviderSimulator, stream: bool
) -> None:
    api = OpenAICompatible_API(ProviderSettings(api_url=simulator.openai_url, api_key="k"), stream=stream)
    await api.process_request(model="m", chat_history=[ChatHistoryItem.user("warm")])  # client made before
    statek.instrument_httpx()
    async with Job("instrumented") as job:
        for _ in range(2):
            response = await api.process_request(model="m", chat_history=[ChatHistoryItem.user("hi")])
            assert response.text == "ok"
    await api.aclose()
    assert len(captured.finished("chat m")) == 3  # the warm-up and the two calls, each once
    assert job.usage.calls == 2
    assert captured.values("statek.unmetered_requests") == {}
