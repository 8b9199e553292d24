"""Raw exchanges for adapters that read the response body themselves (server-sent events).

:func:`post_raw` sends exactly the bytes :meth:`LLM_API._post_json` would (compact JSON), through the
same retrying :func:`statek._http.post`, but hands back the raw body instead of parsing it as JSON, so
retries and wire-byte accounting stay in one place. :func:`iter_sse_json` then walks the events,
following the WHATWG event-stream rules that matter for LLM APIs: ``event:`` and ``data:`` fields,
multi-line data joined with ``\\n``, comment lines (``:``) ignored, CRLF or LF line endings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .. import telemetry
from .._http import RawResponse, post

if TYPE_CHECKING:
    from ..llm_api import LLM_API

__all__ = ["error_context", "iter_sse_json", "post_raw"]


async def post_raw(
    api: LLM_API,
    payload: Mapping[str, Any],
    *,
    url: str,
    headers: Mapping[str, str],
    params: Mapping[str, str] | None = None,
) -> RawResponse:
    """POST ``payload`` as compact JSON with ``api``'s client and retry policy; return the raw 2xx answer."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return await post(
        api._clients.get(),
        url,
        body=body,
        headers=headers,
        provider=api.provider_key,
        retry=api.retry,
        on_retry=telemetry.current_retry_hook(),
        params=params,
    )


def error_context(api: LLM_API, raw: RawResponse) -> dict[str, Any]:
    """Keyword arguments for a :class:`~statek.exceptions.ProviderError` raised after ``raw`` arrived."""
    return {
        "provider": api.provider_key,
        "attempts": raw.attempts,
        "bytes_sent": raw.bytes_sent,
        "bytes_received": raw.bytes_received,
    }


def iter_sse_json(body: bytes) -> Iterator[tuple[str | None, Any]]:
    """Yield ``(event_name, parsed_data)`` for every event carrying data; ``[DONE]`` markers are skipped.

    Raises ``ValueError`` (from :mod:`json`) for a data field that is not JSON; callers turn it into
    their provider's :class:`~statek.exceptions.ResponseFormatError`.
    """
    event: str | None = None
    data: list[str] = []
    for line in body.decode("utf-8").splitlines():
        if not line:
            if data and data != ["[DONE]"]:
                yield event, json.loads("\n".join(data))
            event, data = None, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if data and data != ["[DONE]"]:
        yield event, json.loads("\n".join(data))
