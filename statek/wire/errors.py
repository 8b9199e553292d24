"""What a codec raises for an answer that does not follow its wire format.

Codecs know nothing of providers or HTTP, so their errors carry only the reason; the provider adapter
(``statek.providers``) turns them into :class:`~statek.exceptions.ResponseFormatError`,
:class:`~statek.exceptions.MalformedToolCallError` or :class:`~statek.exceptions.ProviderError` with
the provider key, attempts and byte counts; the httpx transport records them as a call error.
"""

from __future__ import annotations

__all__ = ["StreamFailure", "ToolCallFormatError", "WireFormatError"]


class WireFormatError(ValueError):
    """The answer (or a stream event) is not what its wire format promises."""


class ToolCallFormatError(WireFormatError):
    """A tool call without a name, or whose arguments are not a JSON object."""


class StreamFailure(WireFormatError):
    """The server reported an error inside a stream that had started with status 200."""
