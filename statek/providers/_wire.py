"""Server-sent events, shared by the adapters that stream.

Adapters fetch a stream with :meth:`LLM_API._post_raw` (same bytes, retries and wire-byte accounting
as a JSON call); :func:`iter_sse_json` then walks the events, following the WHATWG event-stream rules
that matter for LLM APIs: ``event:`` and ``data:`` fields, multi-line data joined with ``\\n``,
comment lines (``:``) ignored, CR, LF or CRLF line endings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from .._http import RawResponse

if TYPE_CHECKING:
    from ..llm_api import LLM_API

__all__ = ["error_context", "iter_sse_json", "reported_cost"]

_LINE_END = re.compile(r"\r\n|\r|\n")


def error_context(api: LLM_API, raw: RawResponse) -> dict[str, Any]:
    """Keyword arguments for a :class:`~statek.exceptions.ProviderError` raised after ``raw`` arrived."""
    return {
        "provider": api.provider_key,
        "attempts": raw.attempts,
        "bytes_sent": raw.bytes_sent,
        "bytes_received": raw.bytes_received,
    }


_COST_TOTALS = ("total_cost", "total", "amount")


def reported_cost(value: Any) -> Decimal | None:
    """A provider's own cost report as exact USD: a number (``"cost": 0.0012``), or an object carrying a
    total (``"cost": {"total_cost": 0.0012, ...}``). ``None`` for anything else, for a non-finite or
    negative figure, and for booleans. Numbers go through ``str`` so that a float's binary error never
    becomes money."""
    if isinstance(value, Mapping):
        value = next((value[k] for k in _COST_TOTALS if k in value), None)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() and number >= 0 else None


def iter_sse_json(body: bytes) -> Iterator[tuple[str | None, Any]]:
    """Yield ``(event_name, parsed_data)`` for every event carrying data; ``[DONE]`` markers are skipped.

    Raises ``ValueError`` (from :mod:`json`) for a data field that is not JSON; callers turn it into
    their provider's :class:`~statek.exceptions.ResponseFormatError`.
    """
    event: str | None = None
    data: list[str] = []
    # Only CR, LF and CRLF end lines in an event stream; str.splitlines would also split on U+2028
    # and friends, which JSON may carry unescaped inside strings.
    for line in _LINE_END.split(body.decode("utf-8")):
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
