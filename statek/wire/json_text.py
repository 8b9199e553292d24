"""JSON documents read exactly as :func:`json.loads` reads them, with less Python work for the common one.

``json.loads`` of bytes runs three Python-level steps before the C scanner (it detects the encoding,
decodes, and strips whitespace with regular expressions): about a hundred bytecodes per document,
paid for every request body the transport recognises and every answer it reads. The common document
(UTF-8, an object or array with no whitespace around it) needs none of them.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["parse_json"]

_raw_decode = json.JSONDecoder().raw_decode  # json.loads's own decoder settings
_OPENERS = (b"{", b"[")


def parse_json(data: bytes | bytearray | str) -> Any:
    """``json.loads(data)``: the same value, and the same exception for what is not JSON (a
    ``ValueError``: ``JSONDecodeError`` or ``UnicodeDecodeError``; ``RecursionError`` when nested
    deeper than the stack).

    A document that starts with ``{`` or ``[`` and (bytes) whose second byte is not NUL is UTF-8 to
    ``json.loads`` too (no BOM, not UTF-16/32), so it is decoded the same way (``surrogatepass``)
    and scanned directly; one with whitespace or anything else after it, and every other document,
    goes to ``json.loads``.
    """
    if isinstance(data, str):
        text = data
        if text[:1] not in ("{", "["):
            return json.loads(text)
    else:
        if data[:1] not in _OPENERS or data[1:2] == b"\x00":
            return json.loads(data)
        text = data.decode("utf-8", "surrogatepass")
    value, end = _raw_decode(text)
    return value if end == len(text) else json.loads(text)
