"""The ``statek_simulator`` fixture users enable: every built-in provider reaches the simulator."""

from __future__ import annotations

import pytest

from statek import LLM_API, ChatHistoryItem, Job
from statek.providers.catalog import CATALOG
from statek.testing import ModelBehavior, ProviderSimulator
from statek.testing.pytest_plugin import statek_simulator  # noqa: F401 - the fixture under test

QUESTION = [ChatHistoryItem.user("Capital of France?")]


@pytest.mark.parametrize("name", ["OPENAI", "GROQ", "OLLAMA", "ANTHROPIC", "CLAUDE", "GEMINI", "VERTEXAI"])
async def test_each_wire_format_reaches_the_simulator(
    name: str,
    statek_simulator: ProviderSimulator,  # noqa: F811
) -> None:
    statek_simulator.set_behavior("m", ModelBehavior(text="Paris.", input_tokens=7, output_tokens=2))
    async with Job("t") as job:
        response = await LLM_API.get(name).process_request(model="m", chat_history=QUESTION)
    assert response.text == "Paris." and job.usage.total_input_tokens == 7
    (request,) = statek_simulator.requests
    assert request.status == 200 and not request.usage.mismatches(response.detail)


def test_every_catalogue_provider_is_pointed_at_it(
    statek_simulator: ProviderSimulator,  # noqa: F811
) -> None:
    for row in CATALOG:
        assert LLM_API.get(row.key).api_url == statek_simulator.openai_url, row.key
