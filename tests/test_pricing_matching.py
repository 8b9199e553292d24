"""The database's matching rule, decided and checked on the database's whole model list (issue 21):
a model id is priced by a database row only when it is that row's id, the id plus a version suffix
(a date, a number, ``-latest``, ``-preview``, ``-v1:0``), or an alternative name the database lists
that does not extend the row's id. ``gemini-3.8-flash-cyber`` is another SKU, not ``gemini-3.8-flash``."""

from __future__ import annotations

import pytest

from statek.metering import PriceRegistry
from statek.metering.database import acceptable_match, default_database, version_suffix
from statek.types import CallDetail


def _all_models() -> list[tuple[str, str]]:
    database = default_database()
    return [(p.id, m.id) for p in database.providers for m in p.models]


def test_every_database_model_is_priced_by_its_own_id() -> None:
    database = default_database()
    refused = []
    for provider, model in _all_models():
        found = database.find(provider, model)
        if found is None:
            continue  # the model has no input and output token price (audio hours, searches...)
        if found.model_id != model and not acceptable_match(model, found.model_id):
            refused.append((provider, model, found.model_id))
    assert refused == []


def test_no_database_model_prices_a_longer_id_naming_another_sku() -> None:
    database = default_database()
    wrong = []
    for provider, model in _all_models():
        for suffix in ("-cyber", "-mini", ".5", "-codex", "-fast"):
            other = model + suffix
            found = database.find(provider, other)
            if found is not None and found.model_id == model:  # priced by the shorter id's row
                wrong.append((provider, other, found.model_id))
    assert wrong == []


def test_version_suffixes_are_still_the_model() -> None:
    database = default_database()
    for provider, model, dated in (
        ("openai", "gpt-4o", "gpt-4o-2024-11-20"),
        ("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929"),
        ("google", "gemini-2.5-flash", "gemini-2.5-flash-preview-09-2025"),
    ):
        found = database.find(provider, dated)
        assert found is not None and found.model_id == model, dated


@pytest.mark.parametrize(
    ("rest", "ok"),
    [
        ("-2024-11-20", True),
        ("@20240620", True),
        ("-v1:0", True),
        ("-latest", True),
        ("-001", True),
        ("-cyber", False),
        (".5", False),
        ("-1.5", False),
        ("5", False),
        ("-codex-max", False),
    ],
)
def test_version_suffix(rest: str, ok: bool) -> None:
    assert version_suffix(rest) is ok


def test_the_issue_example_is_unpriced_on_the_gemini_api_and_priced_on_vertex() -> None:
    registry = PriceRegistry(model_info_dir=None)
    detail = CallDetail(0, 0, None, 1_000_000, 1_000_000)
    assert registry.price_call("GEMINI", "gemini-3.8-flash-cyber", detail).status == "unpriced"
    # Vertex AI lists gemini-3.8-flash-cyber at $1.50 / $7.50 (gemini-3.8-flash: $0.75 / $3.75)
    assert registry.price_call("VERTEX", "gemini-3.8-flash-cyber", detail).amount == 9
