"""The response and usage types every layer shares. A leaf module: it imports nothing of statek.

* :class:`LLM_Stats` is the seed's six-field tuple, exactly as the original STATEK 1.0 defined it.
* :class:`CallDetail` is everything statek measured about one call: the same six numbers plus cache
  writes, reasoning tokens, response model, finish reason and the priced cost with its status.
* :class:`LLM_Response` is the seed's three-field tuple ``(text, stats, call_requests)``; its
  :attr:`~LLM_Response.detail` carries the :class:`CallDetail` without widening the tuple, so code that
  unpacks three (or six) values keeps working.
* :class:`CallParams` is the seed's tool-call type, ``CallParams(call_id, name, args, kwargs)``.

Token counts have one meaning for every provider (the OpenTelemetry GenAI convention):
``input_tokens`` is the whole prompt, cache reads and writes included; ``cached_tokens`` the part read
from cache; ``output_tokens`` everything generated, reasoning included. ``cache_write_tokens`` and
``reasoning_tokens`` are subsets of input and output; ``cache_write_1h_tokens`` the part of the cache
writes with a one-hour lifetime.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["CallDetail", "CallParams", "CostStatus", "LLM_Response", "LLM_Stats"]

CostStatus = Literal["calculated", "reported", "unpriced", "no_usage", "reserved"]
"""How a call's cost was obtained: from a price table (``calculated``), from the provider's own report
(``reported``), not at all because no price is known (``unpriced``), or not at all because the answer
carried no usage to price (``no_usage``); or, for such an answer under a budget, at the budget's
reservation for it, the most it could have cost (``reserved``)."""


class LLM_Stats(NamedTuple):
    """Usage of one provider call, the seed's six fields in the seed's order.

    ``cost`` is what the provider itself reported (USD, exact ``Decimal``), ``None`` when it reported
    none. Bytes are request and response bodies as they went over the wire, over all attempts. The
    token fields default to 0, so ``LLM_Stats(sent, received, None)`` is valid.
    """

    total_bytes_sent: int
    total_bytes_received: int
    cost: Decimal | None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0


class CallDetail(NamedTuple):
    """Everything statek measured about one call; its first six fields are :class:`LLM_Stats`'.

    Provider adapters fill the measured fields (``has_usage`` False when the answer carried no usage
    object at all; ``response_id`` the provider's id of the answer, ``gen_ai.response.id``); the
    metering wrapper fills ``priced_cost`` and ``cost_status`` when it records the call. A tuple, so that rebuilding it with a price on the hot path is a cheap positional copy.

    ``service_tier`` is the tier the answer says served the call, normalised to lower case
    (``"flex"``, ``"priority"``, ``"batch"``, ``"default"``; ``None`` when the answer names none):
    a non-standard tier is priced at that tier's rates or not at all, never at the standard rate.
    """

    total_bytes_sent: int
    total_bytes_received: int
    cost: Decimal | None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    response_model: str | None = None
    finish_reason: str | None = None
    priced_cost: Decimal | None = None
    cost_status: CostStatus = "unpriced"
    has_usage: bool = True
    response_id: str | None = None
    # -- how the call was billed beyond its token counts (issue 21): the service tier the answer names
    # and the modality split. Audio and image counts are subsets of input/output (cached audio of
    # both cached and input audio); a part with its own price is carved out of its parent's count.
    service_tier: str | None = None
    input_audio_tokens: int = 0
    cached_audio_tokens: int = 0
    output_audio_tokens: int = 0
    input_image_tokens: int = 0
    output_image_tokens: int = 0
    explained_cost: Decimal | None = None
    """The part of a reported ``cost`` the answer itself itemises beyond token prices (a per-request
    fee, server tools such as web search, OpenRouter's BYOK fee): price drift leaves it out."""
    web_search_requests: int = 0
    """Web searches a server tool ran for the call (Anthropic ``usage.server_tool_use``), billed per
    search on top of the tokens."""

    @property
    def stats(self) -> LLM_Stats:
        """The seed's six-field view of this call."""
        return LLM_Stats(*self[:6])

    @classmethod
    def from_stats(cls, stats: tuple[Any, ...]) -> CallDetail:
        """The detail of a call known only by its six seed fields (a provider written for STATEK 1.0)."""
        return cls(*stats[:6])


class _ResponseFields(NamedTuple):
    text: str
    stats: LLM_Stats
    call_requests: list[CallParams] | None


_READ = "_read_by_codec"


class LLM_Response(_ResponseFields):
    """What a provider call returns: generated text, usage, and the tool calls the model asked for.

    A three-field tuple as the seed defines it; ``text`` is ``""`` when the answer had no text and
    ``call_requests`` is ``None`` when the model asked for no tool. :attr:`detail` holds what statek
    measured beyond the six seed numbers. Built with ``detail=`` (or a :class:`CallDetail` as ``stats``),
    ``stats`` is its six-field view.
    """

    # No __slots__: the detail lives in the instance __dict__, outside the tuple, so that equality,
    # unpacking and len() stay the seed's.

    def __new__(
        cls,
        text: str,
        stats: LLM_Stats | None = None,
        call_requests: list[CallParams] | None = None,
        *,
        detail: CallDetail | None = None,
    ) -> Self:
        if detail is None and isinstance(stats, CallDetail):
            detail = stats
        if detail is not None:
            stats = detail.stats
        elif stats is None:
            raise TypeError("LLM_Response needs stats (or detail=)")
        elif type(stats) is not LLM_Stats:
            stats = LLM_Stats(*stats[:6])
        self = super().__new__(cls, text, stats, call_requests)
        if detail is not None:
            self.__dict__["_detail"] = detail
        return self

    @classmethod
    def _of_detail(
        cls, text: str, call_requests: list[CallParams] | None, detail: CallDetail
    ) -> LLM_Response:
        """``LLM_Response(text, None, call_requests, detail=detail)`` for a ``detail`` that a built-in
        codec read (so every number is in range: :mod:`statek.limits`), without ``__new__``'s argument
        checks. The response is marked as such until the metering path prices it (:meth:`_take_read`)."""
        self = tuple.__new__(cls, (text, tuple.__new__(LLM_Stats, detail[:6]), call_requests))
        state = self.__dict__
        state["_detail"] = detail
        state[_READ] = True
        return self

    def _take_read(self) -> bool:
        """Whether this response came from :meth:`_of_detail` and was not priced since: then its
        numbers need no range check and it belongs to the call at hand, so its detail may be replaced
        in place (:meth:`_set_detail`). Answers once: a provider that hands the same response back
        again gets the general path (checked, copied)."""
        return self.__dict__.pop(_READ, False)  # type: ignore[no-any-return]

    def _set_detail(self, detail: CallDetail) -> None:
        """Replace the detail of a response :meth:`_take_read` vouched for; ``detail``'s first six
        fields must be this response's ``stats`` (a priced copy of its own detail)."""
        self.__dict__["_detail"] = detail

    def _with_detail(self, detail: CallDetail) -> LLM_Response:
        """This response as a plain :class:`LLM_Response` carrying ``detail``, whose first six fields
        must be this response's ``stats`` (a priced copy of its own detail): nothing is rebuilt."""
        copy = tuple.__new__(LLM_Response, self)
        copy.__dict__["_detail"] = detail
        return copy

    @property
    def detail(self) -> CallDetail:
        """Cache writes, reasoning, response model, finish reason, priced cost and status of this call."""
        detail: CallDetail | None = self.__dict__.get("_detail")
        return detail if detail is not None else CallDetail.from_stats(self.stats)


@dataclass(frozen=True, eq=False)
class CallParams:
    """A tool call the model asked for: the seed's ``CallParams(call_id, name, args, kwargs)``.

    ``args`` is always ``[]`` (providers pass named arguments only); ``kwargs`` holds them. Unpacks as
    four values like the original. Two calls are equal, and hash alike, when their ids are equal.
    Provider adapters may subclass it to carry what their API needs sent back (signatures, thinking).
    """

    call_id: str
    name: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The same as :attr:`call_id`."""
        return self.call_id

    def __iter__(self) -> Iterator[Any]:
        return iter((self.call_id, self.name, self.args, self.kwargs))

    def __hash__(self) -> int:
        return hash(self.call_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CallParams) and other.call_id == self.call_id
