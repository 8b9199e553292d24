"""The OpenAI Responses API wire format (``POST /v1/responses``): answers, streams, usage.

Pure functions over parsed JSON. A response's ``output`` is a list of items: ``message`` items carry
``output_text`` parts, ``function_call`` items a tool call (``call_id``, ``name``, JSON ``arguments``),
``reasoning`` items the model's thinking (not text). Its ``usage`` already has statek's meaning:
``input_tokens`` includes ``input_tokens_details.cached_tokens``, ``output_tokens`` includes
``output_tokens_details.reasoning_tokens``. The finish reason is the response ``status``
(``completed``, ``incomplete``, ``failed``), or the incomplete reason when there is one.

A stream is a sequence of typed events; text arrives in ``response.output_text.delta`` events and
the whole response, usage included, in the closing ``response.completed`` (or ``response.incomplete``
/ ``response.failed``) event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..types import CallDetail, CallParams
from .answer import Answer
from .billing import tier_label
from .errors import StreamFailure, ToolCallFormatError, WireFormatError
from .numbers import count, dig, reported_cost, text_id
from .sse import SSEDecoder
from .validation import guarded

__all__ = ["ResponsesStreamReader", "read_response", "usage_detail"]

_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


@guarded
def usage_detail(
    usage: Any, bytes_sent: int, bytes_received: int, model: Any = None, finish: Any = None
) -> CallDetail:
    """A Responses ``usage`` object in statek's meaning (``has_usage`` False when it is absent)."""
    has_usage = isinstance(usage, Mapping)
    usage = usage if has_usage else {}
    return CallDetail(
        total_bytes_sent=bytes_sent,
        total_bytes_received=bytes_received,
        cost=reported_cost(usage.get("cost")),
        input_tokens=count(usage.get("input_tokens")) or 0,
        output_tokens=count(usage.get("output_tokens")) or 0,
        cached_tokens=count(dig(usage, ("input_tokens_details", "cached_tokens"))) or 0,
        reasoning_tokens=count(dig(usage, ("output_tokens_details", "reasoning_tokens"))) or 0,
        response_model=model if isinstance(model, str) and model else None,
        finish_reason=finish if isinstance(finish, str) else None,
        has_usage=has_usage,
    )


@guarded
def read_response(body: Any, bytes_sent: int, bytes_received: int) -> Answer:
    """Text, tool calls and detail of a whole ``response`` object.

    Raises :class:`WireFormatError` for a body that is not an object or is an error object, and
    :class:`ToolCallFormatError` for a ``function_call`` without a name or with non-object arguments.
    """
    if not isinstance(body, Mapping):
        raise WireFormatError(f"expected a JSON object, got {type(body).__name__}")
    if body.get("error") and not body.get("output"):
        raise WireFormatError(f"the answer is an error: {json.dumps(body['error'])[:300]}")
    items = [i for i in body.get("output") or () if isinstance(i, Mapping)]
    text = "".join(
        part["text"]
        for item in items
        if item.get("type") == "message"
        for part in item.get("content") or ()
        if isinstance(part, Mapping)
        and part.get("type") == "output_text"
        and isinstance(part.get("text"), str)
    )
    calls: list[CallParams] = [
        _tool_call(item, n) for n, item in enumerate(i for i in items if i.get("type") == "function_call")
    ]
    finish = dig(body, ("incomplete_details", "reason")) or body.get("status")
    detail = usage_detail(body.get("usage"), bytes_sent, bytes_received, body.get("model"), finish)
    searches = sum(1 for item in items if item.get("type") == "web_search_call")  # billed per call
    return Answer(
        text,
        calls or None,
        detail._replace(
            response_id=text_id(body.get("id")),
            service_tier=tier_label(body.get("service_tier")),
            web_search_requests=searches,
        ),
    )


def _tool_call(item: Mapping[str, Any], position: int) -> CallParams:
    name, arguments = item.get("name"), item.get("arguments")
    try:
        kwargs = json.loads(arguments) if isinstance(arguments, str) and arguments.strip() else {}
    except ValueError:
        kwargs = None
    if not isinstance(name, str) or not name or not isinstance(kwargs, dict):
        raise ToolCallFormatError(
            f"function_call #{position} needs a name and JSON-object arguments, got {json.dumps(item)[:300]}"
        )
    call_id = item.get("call_id") or item.get("id") or f"call_{position}"
    return CallParams(call_id=str(call_id), name=name, args=[], kwargs=kwargs)


def _not_delta(event: str | None, data: str) -> bool:
    """Events other than text and argument deltas (all a usage-only reader needs)."""
    return event is None or not event.endswith(".delta")


class ResponsesStreamReader:
    """A :class:`~statek.wire.answer.StreamReader` for a Responses event stream.

    Holds the text seen and the last ``response`` object any event carried (``response.created``
    carries the model; the closing event the output and usage). An ``error`` event or a
    ``response.failed`` event raises :class:`StreamFailure` after the response it carried is kept.
    """

    __slots__ = ("_decoder", "_final", "_keep", "_response", "_text")

    def __init__(self, *, keep_content: bool = True) -> None:
        self._keep = keep_content
        self._decoder = SSEDecoder(None if keep_content else _not_delta)
        self._text: list[str] = []
        self._response: Mapping[str, Any] = {}
        self._final = False

    @guarded
    def feed(self, data: bytes) -> list[str]:
        """The text generated in ``data``."""
        return self._take(self._decoder.feed(data))

    def _take(self, events: list[tuple[str | None, Any]]) -> list[str]:
        pieces: list[str] = []
        for name, event in events:
            if not isinstance(event, Mapping):
                continue
            kind = event.get("type", name)
            if kind == "response.output_text.delta" and isinstance(event.get("delta"), str):
                pieces.append(event["delta"])
                if self._keep:
                    self._text.append(event["delta"])
            response = event.get("response")
            if isinstance(response, Mapping):
                self._response = response
                self._final = self._final or kind in _FINAL_EVENTS
            if kind == "error":
                raise StreamFailure(f"{event.get('code')}: {event.get('message')}")
            if kind == "response.failed":
                error = self._response.get("error") or {}
                raise StreamFailure(f"{dig(error, ('code',))}: {dig(error, ('message',))}")
        return pieces

    @guarded
    def finish(self, bytes_sent: int, bytes_received: int) -> Answer:
        """The answer so far; ``has_usage`` False unless the closing event with usage arrived."""
        try:
            self._take(self._decoder.close())
        except ValueError:
            pass  # a cut-off last event: keep what was read before it
        if self._final:
            return read_response(self._response, bytes_sent, bytes_received)
        detail = usage_detail(None, bytes_sent, bytes_received, self._response.get("model"))
        detail = detail._replace(response_id=text_id(self._response.get("id")))
        return Answer("".join(self._text), None, detail)
