"""No key is ever shown (issue 10, item 13).

A canary key is set for every provider in the catalogue, in its settings and in its URL (``?key=`` and
``user:key@``). A loopback server echoes every request header back (in error bodies, in response
headers, in a 200 answer's text and in a body that is not JSON), as proxies and gateways do. Every
error path is driven: HTTP errors, retries exhausted, connection refused, timeouts, unreadable answers
(one of them quoting the key where a token count belongs), with DEBUG logging on and content capture on and off. The canary must appear in no exception (message,
repr, traceback, attributes), no repr, no span, no metric, no log line and no CLI output.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hostile_support import Exporters
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from prometheus_client import CollectorRegistry, generate_latest
from typer.testing import CliRunner

import statek
from statek import LLM_API, ChatHistoryItem
from statek._http import RetryPolicy
from statek.cli import app
from statek.exceptions import ConfigurationError, ProviderError
from statek.providers.registry import _custom, _unregister, add_provider, registered_providers
from statek.secrets import REDACTED, redact_url, register_secret, scrub


def canary() -> str:
    return f"sk-canary-{uuid.uuid4().hex}"


class EchoServer:
    """Answers every POST by echoing the request's path and headers back; ``mode`` says how."""

    def __init__(self) -> None:
        self.mode = "401"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                echo = json.dumps({"path": self.path, "headers": dict(self.headers)})
                mode = outer.mode
                if mode == "slow":
                    time.sleep(0.3)
                    mode = "401"
                if mode == "200":
                    status, body = 200, _answer_in_every_format(echo)
                elif mode == "count":  # the key where a number belongs: quoted by the refusal
                    credential = next(
                        (
                            self.headers[h]
                            for h in ("x-api-key", "x-goog-api-key", "api-key", "authorization")
                            if self.headers.get(h)
                        ),
                        self.path,
                    )
                    status, body = 200, _answer_in_every_format("ok", count=credential)
                elif mode == "garbage":
                    status, body = 200, ("not json: " + echo).encode()
                else:
                    status, body = (
                        int(mode),
                        json.dumps({"error": {"message": "bad key", "request": echo}}).encode(),
                    )
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    for name in ("authorization", "x-api-key", "x-goog-api-key", "api-key"):
                        if self.headers.get(name):
                            self.send_header(f"x-echo-{name}", self.headers[name])
                    self.send_header("x-echo-path", self.path)
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _answer_in_every_format(text: str, count: object = 1) -> bytes:
    """One 200 body every wire format reads, with ``text`` as the generated text and ``count`` as
    every token count."""
    return json.dumps(
        {
            "model": "m",
            "choices": [{"index": 0, "message": {"content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": count,
                "completion_tokens": 1,
                "input_tokens": count,
                "output_tokens": 1,
            },
            "content": [{"type": "text", "text": text}],
            "candidates": [{"content": {"parts": [{"text": text}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": count, "candidatesTokenCount": 1},
        }
    ).encode()


@pytest.fixture(name="echo", scope="module")
def echo_fixture() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


def _dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Leaks:
    """Everything statek formatted during a test, searched for the canary."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, text: object) -> None:
        self.texts.append((where, text if isinstance(text, str) else repr(text)))

    def add_exception(self, where: str, exc: BaseException) -> None:
        self.add(f"{where}: str", str(exc))
        self.add(f"{where}: repr", repr(exc))
        self.add(f"{where}: traceback", "".join(traceback.format_exception(exc)))
        self.add(f"{where}: attributes", {k: v for k, v in vars(exc).items() if not k.startswith("__")})

    def found(self) -> list[str]:
        """Where the key, or any 8 characters in a row of its random part, appears: a message cut
        short must not show half a key either."""
        secret = self.key.removeprefix("sk-canary-")
        pieces = {secret[i : i + 8] for i in range(len(secret) - 7)}
        return [where for where, text in self.texts if any(piece in text for piece in pieces)]


def _url(key: str, port: int, path: str, userinfo: bool = False) -> str:
    # With user:key@ httpx sends Basic auth instead of the provider's header: one mode of its own.
    return f"http://{f'user:{key}@' if userinfo else ''}127.0.0.1:{port}{path}?key={key}"


_PATHS = {"ANTHROPIC": "/v1/messages", "VERTEXAI": "/v1beta/models/{model}:generateContent"}


def _providers() -> list[str]:
    return sorted(set(registered_providers().values()))


@pytest.mark.parametrize("capture", [False, True], ids=["capture-off", "capture-on"])
def test_a_canary_key_leaks_nowhere_on_any_error_path_of_any_provider(
    echo: EchoServer, capture: bool, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    key = canary()
    leaks = Leaks(key)
    exporters = Exporters(capture_content=capture)
    caplog.set_level(logging.DEBUG)
    calls = 0
    try:
        for provider in _providers():
            path = _PATHS.get(provider, "/v1/chat/completions")
            for mode in ("401", "400", "503", "200", "count", "garbage", "refused", "slow", "userinfo"):
                port = _dead_port() if mode == "refused" else echo.port
                echo.mode = "401" if mode == "userinfo" else mode
                api = LLM_API.get(
                    provider,
                    model="m",
                    api_url=_url(key, port, path, userinfo=mode == "userinfo"),
                    api_key=key,
                    retry=RetryPolicy(
                        max_attempts=1 if mode == "slow" else 2, initial_backoff=0, max_backoff=0
                    ),
                    timeout=0.1 if mode == "slow" else 10.0,
                )
                leaks.add(f"{provider} repr", repr(api))
                leaks.add(f"{provider} str", str(api))
                try:
                    response = asyncio.run(
                        api.process_request(model="m", chat_history=[ChatHistoryItem.user("hello")])
                    )
                except ProviderError as exc:
                    leaks.add_exception(f"{provider} {mode}", exc)
                else:
                    assert mode == "200", (provider, mode)
                    leaks.add(f"{provider} {mode} detail", response.detail)
                calls += 1
        for span in exporters.spans.get_finished_spans():
            leaks.add(f"span {span.name}", span.to_json())
        leaks.add("otlp spans", encode_spans(exporters.spans.get_finished_spans()).SerializeToString())
        leaks.add("prometheus", generate_latest(exporters.registry).decode())
        leaks.add("otlp metrics", encode_metrics(exporters.reader.get_metrics_data()).SerializeToString())
        leaks.add("log text", caplog.text)
        for record in caplog.records:
            leaks.add(f"log {record.name}", record.getMessage())
    finally:
        exporters.close()
    assert calls == 9 * len(_providers())
    assert any(r.name.startswith("httpcore") for r in caplog.records)  # DEBUG lines were written
    assert any(REDACTED in text for _, text in leaks.texts)  # and the echo did reach them
    assert leaks.found() == []


def test_add_provider_entry_and_instrument_reprs_hide_their_credentials() -> None:
    key, collector = canary(), canary()
    add_provider(
        "LEAKY_CANARY", api_url=f"http://u:{key}@127.0.0.1:9/v1/chat/completions?key={key}", api_key=key
    )
    try:
        assert key not in repr(_custom["LEAKY_CANARY"]) and key not in str(_custom["LEAKY_CANARY"])
        assert key not in repr(LLM_API.get("LEAKY_CANARY", model="m"))
    finally:
        _unregister("LEAKY_CANARY")
    instrumentation = statek.instrument(
        registry=CollectorRegistry(),
        otlp_headers={"authorization": f"Bearer {collector}", "x-tenant": collector},
    )
    try:
        assert collector not in repr(instrumentation) and collector not in str(instrumentation)
        shown = repr(instrumentation.arguments) + str(instrumentation.arguments["otlp_headers"])
        assert collector not in shown and "authorization" in shown  # the names stay, the values go
    finally:
        statek.shutdown(timeout=0.5)


def test_otlp_header_variables_are_secrets_too(monkeypatch: pytest.MonkeyPatch) -> None:
    token = canary()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer%20{token},x-api-key={token}")
    statek.instrument(registry=CollectorRegistry())
    statek.shutdown(timeout=0.5)
    assert scrub(f"echo: {token}") == f"echo: {REDACTED}"


def test_demo_cli_with_a_real_provider_never_prints_its_key(
    echo: EchoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = canary()
    echo.mode = "401"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("OPENAI_API_URL", _url(key, echo.port, "/v1/chat/completions", userinfo=True))
    result = CliRunner().invoke(
        app,
        [
            "demo",
            "--provider",
            "OPENAI",
            "--model",
            "m",
            "--jobs",
            "2",
            "--concurrency",
            "1",
            "--metrics-port",
            "0",
        ],
    )
    assert "401" in result.output  # the failures were reported...
    assert key not in result.output  # ...without the key the server echoed


def test_urls_are_redacted_even_when_their_key_was_never_registered() -> None:
    url = "https://alice:hunter2-password@example.test/v1beta/models/x:generateContent?alt=sse&key=AIzaUNKNOWN123&x=1"
    assert redact_url(url) == (
        f"https://{REDACTED}@example.test/v1beta/models/x:generateContent?alt=sse&key={REDACTED}&x=1"
    )


def test_short_values_are_not_treated_as_secrets() -> None:
    register_secret("abc")
    assert scrub("abc abc") == "abc abc"


def test_bearer_values_register_the_token_alone() -> None:
    token = canary()
    register_secret(f"Bearer {token}")
    assert scrub(f"token={token}") == f"token={REDACTED}"
    assert os.environ.get(token) is None


@pytest.mark.parametrize("wrong", [list, dict.fromkeys, tuple], ids=["list", "dict", "tuple"])
def test_a_wrong_typed_key_is_a_configuration_error_that_carries_no_copy_of_it(wrong: Any) -> None:
    """pydantic's error quotes the value it refused; raised inside its handler, statek's error would
    keep it as ``__context__`` and every traceback would print the key."""
    key = canary()
    for attempt in (
        lambda: LLM_API.get("OPENAI", api_key=wrong([key])),
        lambda: add_provider(
            "WRONG_KEY", api_url="http://127.0.0.1:9/v1/chat/completions", api_key=wrong([key])
        ),
    ):
        with pytest.raises(ConfigurationError) as caught:
            attempt()
        assert caught.value.__context__ is None and caught.value.__cause__ is None
        assert key not in "".join(traceback.format_exception(caught.value))
