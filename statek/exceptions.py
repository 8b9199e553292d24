"""The statek error tree.

Every error statek raises on purpose is one of these::

    StatekError
    ├── ConfigurationError (ValueError)      bad settings or arguments; fix the code or the environment
    │   └── UnknownProviderError              no provider registered under that name
    ├── PricingError (ValueError)             price files that do not load; lists every problem found
    ├── BudgetExceededError                   a job's budget refused a call before it was sent
    └── ProviderError                         the provider call failed; carries what the provider said
        ├── ProviderHTTPError                 a non-2xx answer: status, body, headers, retry_after
        │   │                                 (also an httpx.HTTPStatusError)
        │   ├── AuthenticationError           401 / 403
        │   ├── RateLimitError                429
        │   └── ProviderServerError           5xx
        ├── ProviderConnectionError           the request never got an answer (connect, read, timeout)
        │                                     (also an httpx.TransportError)
        └── ResponseFormatError               an answer statek cannot read (bad JSON, bad shape)
            └── MalformedToolCallError        a tool call whose name or arguments cannot be parsed

Configuration errors are ``ValueError`` subclasses, as the public contract promises for bad settings,
bad temperatures, empty models and duplicate provider names. HTTP failures are also ``httpx.HTTPError``
subclasses, because the original STATEK documented "Raises httpx.HTTPError" and code written for it
catches that; their ``request`` and ``response`` are redacted copies (no credential header, no query
string, the body truncated as ``body`` is). Transport exceptions from httpx are
translated at the boundary with ``raise ... from exc``; the original stays on ``__cause__``.

No exception message, ``repr`` or attribute ever holds an API key: messages and bodies are scrubbed
of every credential statek knows (:func:`statek.secrets.scrub`, also for a key a gateway echoes back in
an error body) and headers are redacted before they are stored (:func:`redact_headers`).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import httpx

from .secrets import REDACTED, clip, scrub

__all__ = [
    "AuthenticationError",
    "BudgetExceededError",
    "ConfigurationError",
    "MalformedToolCallError",
    "PricingError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderServerError",
    "RateLimitError",
    "ResponseFormatError",
    "StatekError",
    "UnknownProviderError",
    "redact_headers",
]

_SECRET_HEADERS = frozenset(
    {"authorization", "api-key", "x-api-key", "x-goog-api-key", "cf-aig-authorization", "proxy-authorization"}
)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return a copy of ``headers`` with every credential-bearing header replaced by ``"<redacted>"``."""
    return {k: (REDACTED if k.lower() in _SECRET_HEADERS else scrub(v)) for k, v in headers.items()}


class StatekError(Exception):
    """Base class of every error statek raises on purpose. Its message never shows a known secret."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(scrub(a) if isinstance(a, str) else a for a in args))

    def __str__(self) -> str:
        # Again at formatting time: a secret registered after the error was made is hidden too.
        return scrub(super().__str__())


class ConfigurationError(StatekError, ValueError):
    """Settings or arguments are wrong; the message says what, where, and how to fix it."""


class UnknownProviderError(ConfigurationError):
    """No provider is registered under the requested name (or any of its aliases)."""


class PricingError(StatekError, ValueError):
    """Price data failed to load or validate.

    ``problems`` lists every problem found (not only the first), each already formatted as
    ``file:line: column: reason``.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = list(problems or [])


class BudgetExceededError(StatekError):
    """A job's budget refused a call: nothing was sent and nothing billed.

    ``job_id`` is the job whose limit would be passed (the call's own job or an ancestor);
    ``reason`` the measure: ``"usd"``, ``"tokens"``, ``"calls"``, ``"approx_tokens"``
    (``STATEK_MAX_TOKEN_USAGE``) or ``"unpriced"`` (the model has no price and the USD budget's
    policy is to refuse); or why the call could not be bounded at all: ``"output_cap"`` (a negative,
    zero, non-numeric or absurd output cap), ``"budget_key"`` (a budget key naming a job attribute
    the job lacks), ``"store"`` (the shared budget store cannot be reached; ``detail`` names it,
    without credentials). ``limit``, ``spent`` (settled calls), ``reserved`` (calls in flight) and
    ``estimate`` (this call; ``None`` when unpriced) are in the measure's unit (``Decimal`` USD or
    an ``int``). ``provider`` and ``model`` name the refused call. See ``docs/budgets.md``.
    """

    def __init__(
        self,
        *,
        job_id: str,
        reason: str,
        limit: Decimal | int,
        spent: Decimal | int,
        reserved: Decimal | int,
        estimate: Decimal | int | None,
        provider: str,
        model: str,
        detail: str | None = None,
    ) -> None:
        self.job_id, self.reason, self.provider, self.model = job_id, reason, provider, model
        self.limit, self.spent, self.reserved, self.estimate = limit, spent, reserved, estimate
        self.detail = detail
        if detail is not None:  # a refusal that is not about an amount: a bad cap, an unreachable store
            what = f"job {job_id!r}: {detail}"
        elif reason == "unpriced":
            what = (
                f"{model} has no price and job {job_id!r} has a USD budget of ${limit}; add a price for it "
                "(statek pricing) or allow unpriced calls (Budget(unpriced='allow'))"
            )
        else:
            unit = _BUDGET_UNITS.get(reason, reason)
            what = (
                f"job {job_id!r} would pass its budget of {_amount(limit, unit)}: "
                f"{_amount(spent, unit)} spent, {_amount(reserved, unit)} in flight, "
                f"this call estimated at {_amount(estimate, unit)}"
            )
        super().__init__(f"budget: {provider} {model} call refused, nothing sent: {what}")


_BUDGET_UNITS = {"usd": "USD", "tokens": "tokens", "calls": "calls", "approx_tokens": "approximate tokens"}


def _amount(value: Decimal | int | None, unit: str) -> str:
    if value is None:
        return "unknown"
    if unit == "USD":
        return f"${Decimal(value).normalize():f}"
    return f"{value:,} {unit}"


class ProviderError(StatekError):
    """A provider call failed.

    ``provider`` is the provider key, ``attempts`` how many HTTP attempts were made,
    ``bytes_sent`` / ``bytes_received`` what went over the wire before the failure (so usage is not
    lost on errors).
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        attempts: int = 1,
        bytes_sent: int = 0,
        bytes_received: int = 0,
    ) -> None:
        # Exception's own __init__, not super(): the httpx bases of some subclasses need arguments
        # that they are given below, as attributes.
        Exception.__init__(self, scrub(message))
        self._request: httpx.Request | None = None
        self.provider = provider
        self.attempts = attempts
        self.bytes_sent = bytes_sent
        self.bytes_received = bytes_received


class ProviderHTTPError(ProviderError, httpx.HTTPStatusError):
    """The provider answered with a non-2xx status.

    ``body`` is the response text (truncated to 4 KiB), ``headers`` the response headers with
    credentials redacted, ``retry_after`` the server's requested delay in seconds, if it gave one.
    As an ``httpx.HTTPStatusError``, ``response`` is a copy of the answer made of those redacted parts
    and ``request`` (when known) the request's method and URL without query string or headers.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: str = "",
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        request: httpx.Request | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.status_code = status_code
        self.body = clip(body, 4096)
        self.headers = redact_headers(headers or {})
        self.retry_after = retry_after
        self._request = request
        self.response = httpx.Response(status_code, headers=self.headers, text=self.body, request=request)


class AuthenticationError(ProviderHTTPError):
    """401 or 403: the key is missing, wrong, or lacks permission."""


class RateLimitError(ProviderHTTPError):
    """429: too many requests; ``retry_after`` says how long the provider asked to wait."""


class ProviderServerError(ProviderHTTPError):
    """5xx: the provider failed on its side."""


class ProviderConnectionError(ProviderError, httpx.TransportError):
    """No answer arrived: connection refused or reset, DNS failure, or a timeout.

    Also an ``httpx.TransportError``; ``request`` (when known) is the request's method and URL without
    query string or headers.
    """

    def __init__(self, message: str, *, request: httpx.Request | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self._request = request


class ResponseFormatError(ProviderError):
    """The provider answered 2xx but with a body statek cannot read (bad JSON, a wrong shape, a count
    that is negative or out of range, a non-finite cost, an ``error`` object inside the answer).

    ``content`` is the answer as it arrived (its first 64 KiB, known secrets scrubbed), so the failure
    can be inspected; ``bytes_sent`` / ``bytes_received`` count the whole exchange, so the job keeps them.
    """

    CONTENT_LIMIT = 65536

    def __init__(self, message: str, *, content: bytes = b"", **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        head = content[: self.CONTENT_LIMIT]
        text = head.decode("utf-8", "surrogateescape")
        cleaned = scrub(text)
        self.content = head if cleaned == text else cleaned.encode("utf-8", "surrogateescape")


class MalformedToolCallError(ResponseFormatError):
    """A tool call in the response has no name, or arguments that are not a JSON object."""
