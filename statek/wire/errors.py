"""What a codec raises for an answer that does not follow its wire format.

Codecs know nothing of providers or HTTP, so their errors carry only the reason; the provider adapter
(``statek.providers``) turns them into :class:`~statek.exceptions.ResponseFormatError`,
:class:`~statek.exceptions.MalformedToolCallError` or :class:`~statek.exceptions.ProviderError` with
the provider key, attempts and byte counts; the httpx transport records them as a call error.
"""

from __future__ import annotations

from ..secrets import scrub

__all__ = ["StreamFailure", "ToolCallFormatError", "WireFormatError"]


class WireFormatError(ValueError):
    """The answer (or a stream event) is not what its wire format promises.

    Its message quotes the answer, which may echo the request's key: it is scrubbed of every known
    secret (:func:`statek.secrets.scrub`), as a :class:`~statek.exceptions.StatekError`'s is, because it
    is shown as the ``__cause__`` of the provider error it becomes.
    """

    def __init__(self, message: str) -> None:
        super().__init__(scrub(message))

    def __str__(self) -> str:
        return scrub(super().__str__())


class ToolCallFormatError(WireFormatError):
    """A tool call without a name, or whose arguments are not a JSON object."""


class StreamFailure(WireFormatError):
    """The server reported an error inside a stream that had started with status 200."""
