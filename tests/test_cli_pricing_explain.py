"""``statek pricing explain``: the row and rule that price a call, and ``import-litellm``'s tier rows,
rounding and report (issue 21)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from statek.cli.pricing import app
from statek.metering import PriceRegistry, read_price_files, set_default_registry

runner = CliRunner()


@pytest.fixture(autouse=True)
def default_prices() -> Iterator[None]:
    previous = set_default_registry(PriceRegistry(model_info_dir=None))
    yield
    set_default_registry(previous)


def explain(*args: str) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["explain", *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_explain_names_the_shipped_row_and_its_line() -> None:
    code, out = explain("VERTEX", "gemini-2.0-flash")
    assert code == 0 and out["price_model"] == "vertex/gemini-2.0-flash"
    assert out["prices"]["input"] == "0.15" and "endpoints.csv:" in out["prices"]["from"]  # type: ignore[index]


def test_explain_a_tier_and_a_refused_prefix_match() -> None:
    code, out = explain("OPENAI", "gpt-5", "--tier", "flex")
    assert code == 0 and out["price_model"] == "openai:flex/gpt-5"
    code, out = explain("GEMINI", "gemini-3.8-flash-cyber")
    assert code == 1 and out["price_model"] is None
    assert any("refused" in step for step in out["steps"])  # type: ignore[union-attr]


def test_explain_shows_the_database_fallback_provider() -> None:
    code, out = explain("AZURE_OPENAI", "gpt-4o-2024-11-20")
    assert code == 0 and out["price_model"] == "openai/gpt-4o"
    assert any("falls back to provider 'openai'" in step for step in out["steps"])  # type: ignore[union-attr]


def test_explain_plain_text() -> None:
    result = runner.invoke(app, ["explain", "OPENAI", "gpt-5", "--tier", "priority"])
    assert result.exit_code == 0 and "=> priced by openai:priority/gpt-5" in result.stdout


def test_import_litellm_rounds_writes_tier_rows_and_reports(tmp_path: Path) -> None:
    source = tmp_path / "prices.json"
    source.write_text(
        json.dumps(
            {
                "gpt-5": {
                    "litellm_provider": "openai",
                    "mode": "chat",
                    "input_cost_per_token": 1.25e-06,
                    "output_cost_per_token": 1e-05,
                    "input_cost_per_token_flex": 6.25e-07,
                    "output_cost_per_token_flex": 5e-06,
                    "cache_read_input_token_cost_flex": 6.25e-08,
                },
                "tiny": {
                    "litellm_provider": "openai",
                    "mode": "chat",
                    "input_cost_per_token": 1.234567890123456789e-10,
                    "output_cost_per_token": 1e-06,
                },
                "openai/tiny": {
                    "litellm_provider": "openai",
                    "mode": "chat",
                    "input_cost_per_token": 2e-06,
                    "output_cost_per_token": 1e-06,
                },
            }
        )
    )
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["import-litellm", str(source), "-o", str(out)])
    assert "1 price(s) rounded to 12 decimals" in result.stderr
    assert "same provider and model as 'tiny'" in result.stderr and result.exit_code == 1
    report = read_price_files([out])
    assert report.problems == ()  # everything written is valid in the format
    rows = {(r.provider, r.model): r for r in report.rows}
    assert str(rows[("OPENAI:flex", "gpt-5")].input) == "0.625"
    assert str(rows[("OPENAI", "tiny")].input) == "0.000123456789"


def test_compare_litellm_against_the_database_layer(tmp_path: Path) -> None:
    source = tmp_path / "prices.json"
    source.write_text(
        json.dumps(
            {
                # agrees with the database: gpt-4o $2.50 / $1.25 cached / $10
                "gpt-4o": {
                    "litellm_provider": "openai",
                    "mode": "chat",
                    "input_cost_per_token": 2.5e-06,
                    "output_cost_per_token": 1e-05,
                    "cache_read_input_token_cost": 1.25e-06,
                },
                # gpt-5 standard and flex ($0.625 / $0.0625 / $5): both agree with the database
                "gpt-5": {
                    "litellm_provider": "openai",
                    "mode": "chat",
                    "input_cost_per_token": 1.25e-06,
                    "output_cost_per_token": 1e-05,
                    "cache_read_input_token_cost": 1.25e-07,
                    "input_cost_per_token_flex": 6.25e-07,
                    "output_cost_per_token_flex": 5e-06,
                    "cache_read_input_token_cost_flex": 6.25e-08,
                },
                # Mistral Large 3 behind the -latest alias: $0.50 / $1.50 (the database: the deprecated $2 / $6)
                "mistral/mistral-large-latest": {
                    "litellm_provider": "mistral",
                    "mode": "chat",
                    "input_cost_per_token": 5e-07,
                    "output_cost_per_token": 1.5e-06,
                },
                "openai/not-a-model-anyone-lists": {
                    "litellm_provider": "openai",
                    "mode": "chat",
                    "input_cost_per_token": 1e-06,
                    "output_cost_per_token": 1e-06,
                },
                "madeup/x": {
                    "litellm_provider": "madeup",
                    "mode": "chat",
                    "input_cost_per_token": 1e-06,
                    "output_cost_per_token": 1e-06,
                },
            }
        )
    )
    result = runner.invoke(app, ["compare", "--litellm", str(source), "--database", "--json"])
    assert result.exit_code == 1, result.output
    out = json.loads(result.stdout)
    assert [(d["provider"], d["model"]) for d in out["different"]] == [("mistral", "mistral-large-latest")]
    assert ["INPUT", "2", "0.5"] in out["different"][0]["changes"]
    assert out["missing"] == [{"provider": "OPENAI", "model": "not-a-model-anyone-lists"}]
    assert (out["same"], out["skipped"]) == (3, 1)  # gpt-4o, gpt-5 and gpt-5's flex tier
