"""PLACEHOLDER (owned by the telemetry work): the one wrapper around every provider call.

Fixed interface:
- ``async observe_call(api, params, run) -> LLM_Response``
- ``current_retry_hook() -> Callable[[RetryEvent], None] | None``
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._http import RetryEvent
    from .llm_api import LLM_API, CallParams, LLM_Response


def current_retry_hook() -> Callable[[RetryEvent], None] | None:
    return None


async def observe_call(api: LLM_API, params: CallParams, run: Callable[[], Awaitable[LLM_Response]]) -> Any:
    from .metering import price_call

    started = datetime.now(timezone.utc)
    response = await run()
    cost = price_call(api.pricing_provider or api.provider_key, params.model, response.stats, at=started)
    stats = response.stats._replace(priced_cost=cost.amount, cost_status=cost.status)
    return response._replace(stats=stats)
