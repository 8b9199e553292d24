"""Decompressing an answer for metering, in bounded memory.

The metering transport sees an answer's bytes as they come over the wire, still compressed; to read
usage it decompresses its own view of them. A small compressed answer can stand for a huge body (a
250 KB gzip of 256 MiB of zeros), so the output is produced in pieces of at most :data:`PIECE` bytes
(zlib's ``max_length``), each handed on before the next is made: nothing here holds more than one
piece. What is kept of the decompressed body is bounded by the caller (:mod:`._exchange`).

``gzip`` and ``deflate`` (zlib-wrapped or raw) are read; ``identity`` is no encoding. Brotli and
Zstandard answers, and chains of encodings, are not read by the transport (their Python bindings
offer no bounded output across the versions statek supports): such a call is recorded ``no_usage``
with a warning, and the caller's bytes are untouched.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

__all__ = ["PIECE", "BoundedDecoder", "decoder_for"]

PIECE = 256 * 1024
"""The most decompressed bytes produced at once."""


class BoundedDecoder:
    """Incremental gzip or deflate decompression yielding pieces of at most :data:`PIECE` bytes.

    :meth:`decode` and :meth:`flush` raise ``zlib.error`` for data that is not in the encoding.
    """

    __slots__ = ("_deflate", "_head", "_obj", "_started")

    def __init__(self, encoding: str) -> None:
        self._deflate = encoding == "deflate"
        # gzip: wbits 32+15 (a gzip or zlib header); deflate: try the zlib wrapper first (RFC 9110), and fall
        # back to raw deflate, which some servers send, on the first piece.
        self._obj = zlib.decompressobj(zlib.MAX_WBITS | 32 if not self._deflate else zlib.MAX_WBITS)
        self._started = False
        self._head = b""

    def decode(self, data: bytes) -> Iterator[bytes]:
        """The decompressed pieces of ``data`` (the next compressed bytes)."""
        if not self._started:
            data = self._head + data
            if len(data) < 2 and data:
                self._head = data  # the zlib header is two bytes: wait for the second
                return
            self._started, self._head = True, b""
            if self._deflate and data and not _zlib_header(data):
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        obj = self._obj
        piece = obj.decompress(data, PIECE)
        if piece:
            yield piece
        # A full piece may leave output pending in zlib even when all input was taken.
        while obj.unconsumed_tail or len(piece) == PIECE:
            piece = obj.decompress(obj.unconsumed_tail, PIECE)
            if not piece:
                break
            yield piece

    def flush(self) -> Iterator[bytes]:
        """Whatever is left once the compressed body has ended (nothing, for a complete body)."""
        yield from self.decode(b"")


def _zlib_header(data: bytes) -> bool:
    """Whether ``data`` starts with a zlib header (RFC 1950: method 8, check bits a multiple of 31)."""
    return len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


def decoder_for(content_encoding: str) -> BoundedDecoder | None | bool:
    """A decoder for a ``content-encoding`` header value: ``None`` for no encoding (or ``identity``),
    ``False`` for one the transport does not read (see the module docstring)."""
    encoding = content_encoding.strip().lower()
    if not encoding or encoding == "identity":
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return BoundedDecoder("deflate" if encoding == "deflate" else "gzip")
    return False
