"""The result of pricing one call."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from ..llm_api import CostStatus

__all__ = ["UNPRICED", "CallCost"]


class CallCost(NamedTuple):
    """The cost of one call and how it was obtained.

    ``status`` is ``"calculated"`` (from a price table), ``"reported"`` (the provider's own figure)
    or ``"unpriced"``; an unpriced call has ``amount is None``, never ``Decimal(0)``. ``currency`` is
    always ``"USD"``. A ``NamedTuple`` rather than a frozen dataclass: it is built on every call and
    costs half as much to construct.
    """

    amount: Decimal | None
    status: CostStatus
    currency: str = "USD"


UNPRICED = CallCost(None, "unpriced")
"""The shared result for a call nothing could price."""
