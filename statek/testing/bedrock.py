"""A loopback Amazon Bedrock Runtime for tests and benchmarks of the botocore hooks.

Answers as Bedrock does, in the shapes of botocore's own service model (``bedrock-runtime``
``service-2.json``) and the AWS API reference: ``Converse`` JSON; ``ConverseStream`` and
``InvokeModelWithResponseStream`` in the AWS event-stream binary framing
(``application/vnd.amazon.eventstream``: a prelude with total and header lengths and its CRC32,
string headers ``:event-type`` / ``:content-type`` / ``:message-type``, the JSON payload, the
message CRC32); ``InvokeModel`` with the model family's own body and the token count headers.
Every answer reports ``USAGE`` (input without the cache, as Bedrock counts it).
"""

from __future__ import annotations

import base64
import json
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

__all__ = ["STREAM_PIECES", "TEXT", "USAGE", "BedrockServer", "frame", "serve"]

from typing_extensions import Self

TEXT = "Paris is mild today."
USAGE = {"inputTokens": 176, "outputTokens": 30, "cacheReadInputTokens": 1024, "cacheWriteInputTokens": 0}
"""Bedrock's own counts: the whole prompt is 176 + 1024 = 1200 tokens, 1024 of them from the cache."""
STREAM_PIECES = ("Paris ", "is mild ", "today.")


def frame(event_type: str, payload: dict[str, Any], message_type: str = "event") -> bytes:
    """One event-stream message."""
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": message_type}
    if message_type == "exception":
        headers = {
            ":exception-type": event_type,
            ":content-type": "application/json",
            ":message-type": message_type,
        }
    encoded = b"".join(
        len(k).to_bytes(1, "big") + k.encode() + b"\x07" + len(v).to_bytes(2, "big") + v.encode()
        for k, v in headers.items()
    )
    body = json.dumps(payload).encode()
    total = 12 + len(encoded) + len(body) + 4
    prelude = total.to_bytes(4, "big") + len(encoded).to_bytes(4, "big")
    message = prelude + zlib.crc32(prelude).to_bytes(4, "big") + encoded + body
    return message + zlib.crc32(message).to_bytes(4, "big")


def converse_stream(usage: dict[str, int]) -> bytes:
    events = [frame("messageStart", {"role": "assistant"})]
    for piece in STREAM_PIECES:
        events.append(frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}))
    events += [
        frame("contentBlockStop", {"contentBlockIndex": 0}),
        frame("messageStop", {"stopReason": "end_turn"}),
        frame(
            "metadata", {"usage": {**usage, "totalTokens": sum(usage.values())}, "metrics": {"latencyMs": 12}}
        ),
    ]
    return b"".join(events)


def anthropic_chunks(usage: dict[str, int]) -> Iterator[dict[str, Any]]:
    """Anthropic's stream events as Bedrock relays them, the invocation metrics on the last one."""
    yield {
        "type": "message_start",
        "message": {"role": "assistant", "usage": {"input_tokens": usage["inputTokens"]}},
    }
    for piece in STREAM_PIECES:
        yield {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn"},
        "usage": {"output_tokens": usage["outputTokens"]},
    }
    yield {
        "type": "message_stop",
        "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": usage["inputTokens"],
            "outputTokenCount": usage["outputTokens"],
            "invocationLatency": 40,
            "firstByteLatency": 10,
            "cacheReadInputTokenCount": usage["cacheReadInputTokens"],
            "cacheWriteInputTokenCount": usage["cacheWriteInputTokens"],
        },
    }


class BedrockServer:
    """``with BedrockServer() as bedrock:`` serves on 127.0.0.1; ``bedrock.url`` is the endpoint URL;
    ``bedrock.requests`` the (operation, model id, body) of each request; ``fail_with`` an HTTP status
    to answer every request with."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.fail_with: int | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed ACK

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                _, _, model, operation = self.path.split("?")[0].split("/", 3)
                server.requests.append((operation, unquote(model), body))
                if server.fail_with:
                    self.answer(
                        server.fail_with,
                        json.dumps({"message": "Too many requests"}).encode(),
                        {
                            "x-amzn-errortype": "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"
                        },
                    )
                elif operation == "converse":
                    answer: dict[str, Any] = {
                        "output": {"message": {"role": "assistant", "content": [{"text": TEXT}]}},
                        "stopReason": "end_turn",
                        "usage": {**USAGE, "totalTokens": sum(USAGE.values())},
                        "metrics": {"latencyMs": 12},
                    }
                    self.answer(200, json.dumps(answer).encode())
                elif operation == "converse-stream":
                    self.answer(
                        200, converse_stream(USAGE), content_type="application/vnd.amazon.eventstream"
                    )
                elif operation == "invoke":
                    answer = {
                        "id": "msg_1",
                        "type": "message",
                        "role": "assistant",
                        "model": "claude-3-haiku-20240307",
                        "content": [{"type": "text", "text": TEXT}],
                        "stop_reason": "end_turn",
                        "usage": {
                            "input_tokens": USAGE["inputTokens"],
                            "output_tokens": USAGE["outputTokens"],
                        },
                    }
                    headers = {
                        "x-amzn-bedrock-input-token-count": str(USAGE["inputTokens"]),
                        "x-amzn-bedrock-output-token-count": str(USAGE["outputTokens"]),
                        "x-amzn-bedrock-cache-read-input-token-count": str(USAGE["cacheReadInputTokens"]),
                        "x-amzn-bedrock-cache-write-input-token-count": str(USAGE["cacheWriteInputTokens"]),
                    }
                    self.answer(200, json.dumps(answer).encode(), headers)
                else:  # invoke-with-response-stream
                    events = b"".join(
                        frame("chunk", {"bytes": base64.b64encode(json.dumps(c).encode()).decode()})
                        for c in anthropic_chunks(USAGE)
                    )
                    self.answer(
                        200,
                        events,
                        {"x-amzn-bedrock-content-type": "application/json"},
                        content_type="application/vnd.amazon.eventstream",
                    )

            def answer(
                self,
                status: int,
                body: bytes,
                headers: dict[str, str] | None = None,
                content_type: str = "application/json",
            ) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve() -> None:
    """Run a :class:`BedrockServer` until stdin closes, printing its URL first (benchmarks run it in a
    child process so that its work does not share the caller's GIL)."""
    import sys

    with BedrockServer() as server:
        print(server.url, flush=True)
        sys.stdin.read()
