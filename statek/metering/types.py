"""The result of pricing one call, and the cost statuses."""

from __future__ import annotations

from decimal import Decimal
from typing import Final, NamedTuple

from ..types import CostStatus

__all__ = ["COST_STATUSES", "DRIFT_THRESHOLD", "NO_USAGE", "UNPRICED", "CallCost", "CostStatus", "drifted"]

# How a call's cost was obtained (statek.types): ``calculated`` from a price table; ``reported`` the
# provider's own figure (it wins over a table price); ``unpriced`` the answer had usage but nothing
# could price it; ``no_usage`` the answer carried no usage at all (an empty ``{}``, a stream cut before
# its usage chunk), so its cost is unknown, never a calculated ``$0``.

COST_STATUSES: Final[tuple[CostStatus, ...]] = ("calculated", "reported", "unpriced", "no_usage")


class CallCost(NamedTuple):
    """The cost of one call and how it was obtained.

    ``amount`` is ``None`` for ``unpriced`` and ``no_usage``, never ``Decimal(0)``. ``currency`` is
    always ``"USD"``. ``table_amount`` is what the price table says the call costs when the
    provider reported its own figure too (``status == "reported"``); the difference between the
    two is the drift a stale table shows. ``price_model`` names the price row that priced the call
    (``provider/model`` of the file row or database model, ``provider:tier/model`` for a service
    tier's row), ``None`` when no row did. A ``NamedTuple`` rather than a frozen dataclass: it is
    built on every call and costs half as much to construct.
    """

    amount: Decimal | None
    status: CostStatus
    currency: str = "USD"
    table_amount: Decimal | None = None
    price_model: str | None = None

    @property
    def drift(self) -> Decimal | None:
        """``reported - table`` when both are known, else ``None``."""
        if self.table_amount is None or self.amount is None:
            return None
        return self.amount - self.table_amount


UNPRICED: Final = CallCost(None, "unpriced")
"""The shared result for a call nothing could price."""
NO_USAGE: Final = CallCost(None, "no_usage")
"""The shared result for an answer that carried no usage."""


DRIFT_THRESHOLD: Final = Decimal("0.01")
"""Relative difference between a reported cost and the table's price above which a call counts as
drifted (``statek.cost.drift_requests``): 1 %."""


def drifted(cost: CallCost) -> bool:
    """Whether the reported cost and the table's price of ``cost`` differ by more than the threshold."""
    table, reported = cost.table_amount, cost.amount
    if table is None or reported is None:
        return False
    if table == 0:
        return reported != 0
    return abs(reported - table) > DRIFT_THRESHOLD * table
