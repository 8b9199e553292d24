"""aiohttp placeholder (filled below)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["instrument_aiohttp", "uninstrument_aiohttp"]


def instrument_aiohttp(*, endpoints: Mapping[str, str] | None = None) -> bool:
    return False


def uninstrument_aiohttp() -> None:
    return None
