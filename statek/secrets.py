"""Every credential statek holds, and the one function that removes them from text: :func:`scrub`.

statek knows its secrets by value: provider keys (:class:`~statek.settings.ProviderSettings` registers
its ``api_key`` and any credential inside its ``api_url``), OTLP headers and the
``OTEL_EXPORTER_OTLP_*HEADERS`` variables (registered by :func:`statek.instrument`). Anything statek
formats for a human or a collector (exception messages, reprs, span status and attributes, its own
log lines, CLI output) goes through :func:`scrub` at that boundary, so a key echoed back by a gateway
in an error body never leaves the process. :func:`redact_url` also hides credentials in a URL whose
key statek was never told about (``?key=...``, ``user:password@``).

Log records of statek, httpx and httpcore are scrubbed by :class:`ScrubbingFilter`, installed on
those loggers when the first secret is registered: httpcore's DEBUG lines print response headers,
which a proxy may use to echo the request's key.

A leaf module: it imports nothing of statek.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "ScrubbingFilter",
    "clip",
    "redact_url",
    "register_headers",
    "register_secret",
    "register_url",
    "scrub",
]

REDACTED = "<redacted>"
"""What a secret is replaced with."""
MIN_SECRET_LENGTH = 8
"""Shorter values are not registered: placeholders such as ``"EMPTY"`` or ``"ollama"`` (local servers
want some key) would be cut out of every message, and a credential that short protects nothing."""

_QUERY_KEYS = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "api-key",
        "token",
        "access_token",
        "sig",
        "signature",
        "code",
        "auth",
        "password",
    }
)
"""Query parameters whose value is a credential (Gemini's ``?key=``, SAS ``sig``, OAuth tokens)."""
_URL_QUERY_SECRET = re.compile(
    r"(?i)([?&;](?:" + "|".join(re.escape(k) for k in sorted(_QUERY_KEYS)) + r")=)([^&#;\s'\"<>]+)"
)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/@\s'\"<>]+)@")
_LOGGERS = ("statek", "httpx", "httpcore")

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_secret(value: object) -> None:
    """Remember ``value`` (a key, token or header value) as a secret; ``None``, blanks and values shorter
    than :data:`MIN_SECRET_LENGTH` are ignored. A ``"Bearer <token>"`` value also registers the token."""
    if not isinstance(value, str):
        return
    candidates = {value.strip()}
    scheme, _, token = value.strip().partition(" ")
    if token and scheme.lower() in ("bearer", "basic", "token"):
        candidates.add(token.strip())
    fresh = {c for c in candidates if len(c) >= MIN_SECRET_LENGTH and c not in _secrets}
    if not fresh:
        return
    global _pattern
    with _lock:
        _secrets.update(fresh)
        # Longest first, so a secret containing another is replaced whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))
    _install_log_filter()


def register_url(url: object) -> None:
    """Register the credentials inside ``url``: a ``user:password@`` part and key-like query values."""
    if not isinstance(url, str) or not url:
        return
    try:
        parts = urlsplit(url)
        password = parts.password
        query = parse_qsl(parts.query, keep_blank_values=False)
    except ValueError:  # an unparsable URL: the patterns in redact_url still apply
        return
    register_secret(password)
    for name, value in query:
        if name.lower() in _QUERY_KEYS:
            register_secret(value)


def register_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]] | str | None) -> None:
    """Register every value of ``headers`` (a mapping, pairs, or ``OTEL_EXPORTER_OTLP_HEADERS`` text)."""
    if headers is None:
        return
    if isinstance(headers, str):
        pairs = [item.partition("=")[::2] for item in headers.split(",")]
    elif isinstance(headers, Mapping):
        pairs = list(headers.items())
    else:
        pairs = list(headers)
    for _, value in pairs:
        register_secret(str(value).strip())


def redact_url(url: str) -> str:
    """``url`` with ``user:password@`` and key-like query values replaced by :data:`REDACTED`."""
    url = _URL_USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", url)
    return _URL_QUERY_SECRET.sub(lambda m: m.group(1) + REDACTED, url)


def scrub(text: str) -> str:
    """``text`` with every registered secret and every credential inside a URL replaced by
    :data:`REDACTED`. Cheap when ``text`` holds none (one regular-expression scan)."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    if "://" in text or "=" in text:
        text = redact_url(text)
    return text


def clip(value: object, limit: int) -> str:
    """``value`` as text, scrubbed, then cut to ``limit`` characters: in that order, so that a cut never
    leaves part of a key where :func:`scrub` could no longer recognise it."""
    return scrub(value if isinstance(value, str) else str(value))[:limit]


class ScrubbingFilter(logging.Filter):
    """A logging filter that scrubs a record's message and traceback text (never drops the record).

    The message is formatted here (``record.getMessage()``) and the arguments cleared, so a handler
    formatting it later cannot bring a secret back from ``args``; the traceback is formatted once into
    ``record.exc_text``, which ``logging.Formatter`` uses instead of formatting ``exc_info`` again.
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is None:
            return True
        # A record whose message cannot be formatted is left for the handler to report, as logging does.
        with contextlib.suppress(Exception):
            message = record.getMessage()
            cleaned = scrub(message)
            if cleaned != message or record.args:
                record.msg, record.args = cleaned, None
            if record.exc_info and not record.exc_text:
                record.exc_text = self._formatter.formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = scrub(record.exc_text)
        return True


_filter = ScrubbingFilter()


def _install_log_filter() -> None:
    """Put :data:`_filter` on the statek, httpx and httpcore loggers that exist (filters on a logger do
    not apply to its children's records, so each one gets it); idempotent."""
    manager = logging.Logger.manager
    names = [n for n in list(manager.loggerDict) if n.split(".")[0] in _LOGGERS]
    for name in {
        *names,
        *_LOGGERS,
        "httpcore.http11",
        "httpcore.http2",
        "httpcore.connection",
        "httpcore.proxy",
    }:
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)
