"""Amazon Bedrock through botocore (and boto3): ``Converse``, ``ConverseStream``, ``InvokeModel`` and
``InvokeModelWithResponseStream`` of ``bedrock-runtime`` clients, metered through botocore's own
event hooks, like any other call (:class:`statek.telemetry.WireCall`).

* ``before-call.bedrock-runtime`` starts the call (model id from the request path, bytes sent, the
  budget's reservation: a refused call raises before anything is sent);
* ``after-call.bedrock-runtime`` reads the answer: ``Converse``'s ``usage``; ``InvokeModel``'s token
  count headers (``X-Amzn-Bedrock-Input-Token-Count``, ...: the same for every model family, the
  body stays unread); for the two streams, the event stream object is handed to the caller wrapped,
  each event passing through unchanged, and usage is read from the ``metadata`` event
  (``ConverseStream``) or the ``amazon-bedrock-invocationMetrics`` Bedrock adds to the last chunk
  (``InvokeModelWithResponseStream``, every model family);
* ``after-call-error.bedrock-runtime`` records a call that never got an answer.

Bedrock reports input tokens without the cache (``inputTokens`` excludes ``cacheReadInputTokens`` and
``cacheWriteInputTokens``); statek's input count is the whole prompt, so they are added back.

Hooks are registered on every bedrock-runtime client: those that exist when :func:`instrument_botocore`
runs (found once, by walking the garbage collector's objects) and those made afterwards
(``botocore.session.Session.create_client`` is wrapped). :func:`uninstrument_botocore` unregisters
them all.
"""

from __future__ import annotations

import base64
import functools
import gc
import json
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from ..telemetry import WireCall, WireEndpoint
from ..types import CallDetail
from .endpoints import route_for
from .unmetered import count_unmetered

__all__ = [
    "instrument_bedrock_client",
    "instrument_botocore",
    "is_botocore_instrumented",
    "uninstrument_bedrock_client",
    "uninstrument_botocore",
]

_log = logging.getLogger("statek.instrumentation")

_SERVICE = "bedrock-runtime"
_STREAMED = {
    "Converse": False,
    "ConverseStream": True,
    "InvokeModel": False,
    "InvokeModelWithResponseStream": True,
}
_UNREAD = frozenset({"InvokeModelWithBidirectionalStream", "StartAsyncInvoke"})
"""Billed model calls statek cannot read yet: counted in ``statek.unmetered_requests``."""
_KEY = "statek.bedrock_call"
_NUMBERS = "statek.bedrock_numbers"

_lock = threading.Lock()
_clients: weakref.WeakSet[Any] = weakref.WeakSet()
_original_create_client: Callable[..., Any] | None = None


class _Call:
    """One Bedrock call between ``before-call`` and the end of its answer."""

    __slots__ = ("call", "done", "finish", "operation", "received", "seen", "sent", "usage")

    def __init__(self, call: WireCall, operation: str, sent: int) -> None:
        self.call, self.operation, self.sent = call, operation, sent
        self.received = 0
        self.done = self.seen = False
        self.usage: dict[str, Any] | None = None
        self.finish: str | None = None

    def succeed(self) -> None:
        if self.done:
            return
        self.done = True
        if self.usage is None:
            self.call.succeed(CallDetail(self.sent, self.received, None, has_usage=False))
        else:
            self.call.succeed(_detail(self.usage, self.sent, self.received, self.finish))

    def fail(self, exc: BaseException | None, error_type: str) -> None:
        if not self.done:
            self.done = True
            self.call.fail(exc, error_type, self.sent, self.received)


def _count(usage: dict[str, Any], *names: str) -> int:
    for name in names:
        value = usage.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return 0


def _detail(usage: dict[str, Any], sent: int, received: int, finish: str | None) -> CallDetail:
    """Converse ``usage`` (``inputTokens``, ...) or invocation metrics (``inputTokenCount``, ...)."""
    cache_read = _count(usage, "cacheReadInputTokens", "cacheReadInputTokenCount")
    cache_write = _count(usage, "cacheWriteInputTokens", "cacheWriteInputTokenCount")
    return CallDetail(
        sent,
        received,
        None,
        input_tokens=_count(usage, "inputTokens", "inputTokenCount") + cache_read + cache_write,
        output_tokens=_count(usage, "outputTokens", "outputTokenCount"),
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
        finish_reason=finish,
    )


def _request_numbers(body: bytes) -> tuple[int | None, float | None]:
    """(max output tokens, temperature) from a Converse or model-native request body."""
    try:
        fields = json.loads(body) if body else {}
    except ValueError:
        return None, None
    if not isinstance(fields, dict):
        return None, None
    config = fields.get("inferenceConfig")
    config = config if isinstance(config, dict) else {}
    max_tokens = next(
        (
            v
            for v in (
                config.get("maxTokens"),
                config.get("max_new_tokens"),
                fields.get("max_tokens"),
                fields.get("max_gen_len"),
            )
            if isinstance(v, int) and not isinstance(v, bool)
        ),
        None,
    )
    temperature = config.get("temperature", fields.get("temperature"))
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool):
        temperature = None
    return max_tokens, None if temperature is None else float(temperature)


def _before_parameter_build(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
    """Converse's numbers from the caller's own parameters (no need to parse the body again)."""
    if model.name in ("Converse", "ConverseStream"):
        config = params.get("inferenceConfig")
        config = config if isinstance(config, dict) else {}
        max_tokens, temperature = config.get("maxTokens"), config.get("temperature")
        context[_NUMBERS] = (
            max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) else None,
            float(temperature)
            if isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
            else None,
        )


_endpoints: dict[str, WireEndpoint] = {}


def _endpoint(url: str) -> WireEndpoint:
    host = url.split("://", 1)[-1].split("/", 1)[0]
    found = _endpoints.get(host)
    if found is None:
        where = urlsplit(url)
        found = route_for("BEDROCK").endpoint(where.hostname, where.port or 443)
        if len(_endpoints) < 256:
            _endpoints[host] = found
    return found


def _before_call(model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    operation = model.name
    url = params.get("url") or ""
    if operation in _UNREAD:
        count_unmetered(urlsplit(url).hostname, "unsupported_operation", f"bedrock-runtime {operation}")
        return
    if operation not in _STREAMED:
        return
    from ..exceptions import BudgetExceededError

    try:
        path = params.get("url_path") or urlsplit(url).path
        model_id = unquote(path.split("/model/", 1)[1].rsplit("/", 1)[0]) if "/model/" in path else "unknown"
        body = params.get("body")
        body = body if isinstance(body, bytes) else b""
        numbers = context.pop(_NUMBERS, None)
        max_tokens, temperature = numbers if numbers is not None else _request_numbers(body)
        call = WireCall(  # may refuse (BudgetExceededError): it propagates and nothing is sent
            _endpoint(url),
            "chat",
            model_id,
            stream=_STREAMED[operation],
            temperature=temperature,
            max_tokens=max_tokens,
            body=body,
        )
        context[_KEY] = _Call(call, operation, len(body))
    except BudgetExceededError:
        raise
    except Exception as exc:  # noqa: BLE001 - metering never breaks the call
        _log.exception("statek could not inspect a Bedrock request; it goes out unmetered")
        count_unmetered(urlsplit(url).hostname, "inspection_failed", type(exc).__qualname__)


def _after_call(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    state: _Call | None = context.pop(_KEY, None)
    if state is None:
        return
    try:
        headers = http_response.headers
        length = headers.get("content-length")
        state.received = int(length) if length and length.isdigit() else 0
        if http_response.status_code >= 300:
            state.fail(None, str(http_response.status_code))
        elif state.operation == "Converse":
            state.received = state.received or _body_length(http_response)
            usage = parsed.get("usage")
            state.usage = usage if isinstance(usage, dict) else None
            state.finish = parsed.get("stopReason")
            state.succeed()
        elif state.operation == "InvokeModel":
            if "x-amzn-bedrock-input-token-count" in headers:
                state.usage = {
                    "inputTokenCount": int(headers["x-amzn-bedrock-input-token-count"]),
                    "outputTokenCount": int(headers.get("x-amzn-bedrock-output-token-count", 0)),
                    "cacheReadInputTokenCount": int(
                        headers.get("x-amzn-bedrock-cache-read-input-token-count", 0)
                    ),
                    "cacheWriteInputTokenCount": int(
                        headers.get("x-amzn-bedrock-cache-write-input-token-count", 0)
                    ),
                }
            state.succeed()
        elif state.operation == "ConverseStream" and parsed.get("stream") is not None:
            parsed["stream"] = MeteredEventStream(parsed["stream"], state, _converse_event)
        elif state.operation == "InvokeModelWithResponseStream" and parsed.get("body") is not None:
            parsed["body"] = MeteredEventStream(parsed["body"], state, _invoke_event)
        else:
            state.succeed()
    except Exception:  # noqa: BLE001
        _log.exception("statek could not read a Bedrock answer; the call is recorded as not metered")
        state.usage = None
        state.succeed()


def _body_length(http_response: Any) -> int:
    try:
        return len(http_response.content or b"")
    except Exception:  # noqa: BLE001 - an answer made in memory (botocore's Stubber) has no body
        return 0


def _after_call_error(exception: BaseException, context: dict[str, Any], **_: Any) -> None:
    state: _Call | None = context.pop(_KEY, None)
    if state is not None:
        state.fail(exception, type(exception).__qualname__)


def _converse_event(state: _Call, event: dict[str, Any]) -> None:
    if "metadata" in event:
        usage = event["metadata"].get("usage")
        if isinstance(usage, dict):
            state.usage = usage
    elif "messageStop" in event:
        state.finish = event["messageStop"].get("stopReason")


def _invoke_event(state: _Call, event: dict[str, Any]) -> None:
    raw = event.get("chunk", {}).get("bytes")
    if not raw:
        return
    if isinstance(raw, str):  # some test doubles hand the base64 text through
        raw = base64.b64decode(raw)
    chunk = json.loads(raw)
    if not isinstance(chunk, dict):
        return
    metrics = chunk.get("amazon-bedrock-invocationMetrics")
    if isinstance(metrics, dict):
        state.usage = metrics
    delta = chunk.get("delta")
    stop = chunk.get("messageStop")
    outputs = chunk.get("outputs")
    for reason in (
        delta.get("stop_reason") if isinstance(delta, dict) else None,  # Anthropic
        stop.get("stopReason") if isinstance(stop, dict) else None,  # Nova
        chunk.get("stop_reason"),  # Llama
        outputs[0].get("stop_reason")
        if isinstance(outputs, list) and outputs and isinstance(outputs[0], dict)
        else None,
    ):
        if isinstance(reason, str) and reason:
            state.finish = reason


class MeteredEventStream:
    """A Bedrock event stream as the caller gets it: the same events, unchanged and when they come;
    the call is recorded when the stream ends, breaks or is closed. Everything else is the wrapped
    stream's (``close``, ``get_initial_response``, ...)."""

    def __init__(self, inner: Any, state: _Call, read: Callable[[_Call, dict[str, Any]], None]) -> None:
        self._inner, self._state, self._read = inner, state, read

    def __iter__(self) -> Iterator[Any]:
        state = self._state
        try:
            for event in self._inner:
                if not state.seen:
                    state.seen = True
                    state.call.first_chunk()
                try:
                    if isinstance(event, dict):
                        self._read(state, event)
                except Exception:  # noqa: BLE001
                    _log.warning("statek could not read a Bedrock stream event", exc_info=True)
                yield event
        except GeneratorExit:
            state.succeed()  # abandoned: whatever usage was seen (usually none: no_usage)
            raise
        except BaseException as exc:
            state.fail(exc, type(exc).__qualname__)
            raise
        state.succeed()

    def close(self) -> None:
        """Close the stream; the call is recorded with what was seen."""
        try:
            self._inner.close()
        finally:
            self._state.succeed()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


_HANDLERS: tuple[tuple[str, Callable[..., None]], ...] = (
    (f"before-parameter-build.{_SERVICE}", _before_parameter_build),
    (f"before-call.{_SERVICE}", _before_call),
    (f"after-call.{_SERVICE}", _after_call),
    (f"after-call-error.{_SERVICE}", _after_call_error),
)


def _register(client: Any) -> None:
    try:
        if client.meta.service_model.service_name != _SERVICE or client in _clients:
            return
        for event, handler in _HANDLERS:
            client.meta.events.register(event, handler, unique_id=f"statek-{event}")
        _clients.add(client)
    except Exception:  # noqa: BLE001
        _log.warning(
            "statek could not hook a botocore client; its Bedrock calls are not metered", exc_info=True
        )


def _unregister(client: Any) -> None:
    for event, _handler in _HANDLERS:
        try:
            client.meta.events.unregister(event, unique_id=f"statek-{event}")
        except Exception:  # noqa: BLE001
            _log.debug("could not unregister a statek hook", exc_info=True)


def instrument_bedrock_client(client: Any) -> None:
    """Meter the calls of this one bedrock-runtime ``client`` (any other client is left alone)."""
    with _lock:
        _register(client)


def uninstrument_bedrock_client(client: Any) -> None:
    """Stop metering ``client``."""
    with _lock:
        _unregister(client)
        _clients.discard(client)


def instrument_botocore() -> bool:
    """Meter the Bedrock Runtime calls of every botocore / boto3 client, those that exist and those
    created later. Returns ``False`` (and does nothing) when botocore is not installed."""
    global _original_create_client
    try:
        from botocore.client import BaseClient
        from botocore.session import Session
    except ImportError:
        return False
    with _lock:
        if _original_create_client is None:
            original = Session.create_client

            @functools.wraps(original)
            def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
                client = original(self, *args, **kwargs)
                _register(client)
                return client

            _original_create_client = original
            Session.create_client = create_client  # type: ignore[method-assign]
        # The clients that exist already, hooked through their public events. type(), not isinstance():
        # isinstance() asks lazy proxies for their __class__, which imports whole libraries.
        for obj in gc.get_objects():
            if issubclass(type(obj), BaseClient):
                _register(obj)
    return True


def uninstrument_botocore() -> None:
    """Unregister every hook and restore ``Session.create_client``. Safe when not instrumented."""
    global _original_create_client
    with _lock:
        if _original_create_client is not None:
            from botocore.session import Session

            Session.create_client = _original_create_client  # type: ignore[method-assign]
            _original_create_client = None
        for client in list(_clients):
            _unregister(client)
        _clients.clear()


def is_botocore_instrumented() -> bool:
    """Whether :func:`instrument_botocore` is in force."""
    return _original_create_client is not None
