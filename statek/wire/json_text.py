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

    Bytes that start with ``{`` or ``[`` and whose second byte is not NUL are UTF-8 to
    ``json.loads`` too (no BOM, not UTF-16/32), so they are decoded the same way (``surrogatepass``);
    other bytes go to ``json.loads``. The text is scanned directly; a document with whitespace or
    anything else around it, or none at all, goes to ``json.loads``, which says what is wrong in its
    own words.
    """
    if isinstance(data, str):
        text = data
    elif data[:1] in _OPENERS and data[1:2] != b"\x00":
        text = data.decode("utf-8", "surrogatepass")
    else:
        return json.loads(data)
    try:
        value, end = _raw_decode(text)
    except ValueError:
        return json.loads(text)
    return value if end == len(text) else json.loads(text)
