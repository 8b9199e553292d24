"""The context every provider error raised after an answer arrived carries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._http import RawResponse

if TYPE_CHECKING:
    from ..llm_api import LLM_API

__all__ = ["error_context"]


def error_context(api: LLM_API, raw: RawResponse) -> dict[str, Any]:
    """Keyword arguments for a :class:`~statek.exceptions.ProviderError` raised after ``raw`` arrived."""
    return {
        "provider": api.provider_key,
        "attempts": raw.attempts,
        "bytes_sent": raw.bytes_sent,
        "bytes_received": raw.bytes_received,
    }
