"""Shared by the official-SDK tests (no tests here): the simulator, prices and exact expectations.

``sdk`` (fixture) is a running :class:`~statek.testing.ProviderSimulator` whose models answer with
known usage, in-memory telemetry (``captured``) and a price table in which every model used here has
round prices, so each test can compute the exact cost itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from test_telemetry_support import Captured

from statek.metering import PriceRegistry, set_default_registry
from statek.model_pricing import set_model_pricing
from statek.telemetry import configure_telemetry
from statek.testing import ModelBehavior, ProviderSimulator

IN, CACHED, OUT = Decimal(2), Decimal(1), Decimal(10)
"""USD per million input / cached input / output tokens, for every model below."""

TEXT = "The weather in Paris is mild today."
USAGE = {"input_tokens": 1200, "cached_tokens": 1024, "output_tokens": 30, "reasoning_tokens": 12}
CALL = ("get_weather", {"city": "Paris", "unit": "celsius"})

BEHAVIORS = {
    "gpt-4o-mini": ModelBehavior(text=TEXT, **USAGE),
    "gpt-4o-mini-tools": ModelBehavior(text="", tool_calls=[CALL], **USAGE),
    "claude-sim": ModelBehavior(text=TEXT, **USAGE),
    "claude-sim-tools": ModelBehavior(text="", tool_calls=[CALL], **USAGE),
    "gemini-2.5-flash": ModelBehavior(text=TEXT, **USAGE),
    "gemini-2.5-flash-tools": ModelBehavior(text="", tool_calls=[CALL], **USAGE),
    "text-embedding-3-small": ModelBehavior(input_tokens=64),
    "gemini-embedding-001": ModelBehavior(input_tokens=48),
}


def cost(inp: int, out: int, cached: int = 0) -> Decimal:
    """The exact cost of a call at the prices above, computed independently of statek."""
    return ((inp - cached) * IN + cached * CACHED + out * OUT) / Decimal(1_000_000)


@dataclass
class Env:
    sim: ProviderSimulator
    captured: Captured

    def span(self, name: str) -> Any:
        spans = self.captured.finished(name)
        assert len(spans) == 1, [s.name for s in self.captured.finished()]
        return spans[0]

    def counter(self, name: str, **attributes: str) -> Any:
        """The value of the one series of counter ``name`` whose attributes include ``attributes``."""
        found = [
            value
            for key, value in self.captured.values(name).items()
            if all((k.replace("__", "."), v) in key for k, v in attributes.items())
        ]
        assert len(found) == 1, (name, attributes, self.captured.values(name))
        return found[0]


@pytest.fixture(name="sdk")
def sdk_fixture() -> Iterator[Env]:
    registry = PriceRegistry(shipped=False, model_info_dir=None)
    previous = set_default_registry(registry)
    for provider, models in (
        ("openai", ("gpt-4o-mini", "gpt-4o-mini-tools", "text-embedding-3-small")),
        ("ANTHROPIC", ("claude-sim", "claude-sim-tools")),
        ("GEMINI", ("gemini-2.5-flash", "gemini-2.5-flash-tools", "gemini-embedding-001")),
    ):
        for model in models:
            set_model_pricing(provider, model, IN, OUT, CACHED)
    captured = Captured()
    with ProviderSimulator(BEHAVIORS, seed=3) as sim:
        yield Env(sim, captured)
    configure_telemetry()
    set_default_registry(previous)
