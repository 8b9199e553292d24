"""`statek pricing ...` on real files, including a LiteLLM JSON generated here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from statek.cli.pricing import app
from statek.metering import PriceRegistry, read_price_files, set_default_registry, shipped_prices_path

runner = CliRunner()
SEED = "PROVIDER,MODEL_FAMILY,MODEL,INPUT_PRICE_PER_M,INPUT_PRICE_PER_CACHED_M,OUTPUT_PRICE_PER_M"


@pytest.fixture(autouse=True)
def shipped_only_registry() -> Iterator[None]:
    previous = set_default_registry(PriceRegistry(model_info_dir=None))
    yield
    set_default_registry(previous)


@pytest.fixture
def prices(tmp_path: Path) -> Path:
    path = tmp_path / "prices.csv"
    path.write_text(
        f"{SEED},LONG_CONTEXT_THRESHOLD,LONG_CONTEXT_INPUT_PRICE_PER_M,LONG_CONTEXT_OUTPUT_PRICE_PER_M,VALID_FROM\n"
        "OPENAI,,gpt-4o,2.50,1.25,10,,,,\n"
        "OPENAI,,gpt-4o,3,1.5,12,,,,2030-01-01\n"
        "GEMINI,,gemini-2.5-pro,1.25,,10,200000,2.50,15,\n"
    )
    return path


def test_validate_ok(prices: Path) -> None:
    result = runner.invoke(app, ["validate", str(prices)])
    assert result.exit_code == 0, result.output
    assert "OK: 3 rows in 1 file(s)" in result.stdout


def test_validate_lists_every_problem_as_file_line_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{SEED},EXTRA\nX,,a,abc,,1,\nX,,b,1,,-1,\nX,,c,1,,1\n")
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{bad}:1: EXTRA: unknown column, ignored",
        f"{bad}:2: INPUT_PRICE_PER_M: bad number 'abc'",
        f"{bad}:3: OUTPUT_PRICE_PER_M: negative price '-1'",
        f"{bad}:4: EXTRA: missing column: the row has 6 of 7 fields",
    ]
    assert "4 problem(s) in 1 file(s)" in result.stderr


def test_validate_the_shipped_table() -> None:
    result = runner.invoke(app, ["validate", str(shipped_prices_path())])
    assert result.exit_code == 0 and result.stdout.startswith("OK:")


def test_show_filters_by_provider_and_model(prices: Path) -> None:
    result = runner.invoke(app, ["show", "--file", str(prices), "--provider", "open ai", "--sources"])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("gpt-4o") == 2 and "gemini" not in result.stdout
    assert "2030-01-01" in result.stdout
    result = runner.invoke(app, ["show", "--file", str(prices), "--model", "GEMINI"])
    assert (
        "gemini-2.5-pro" in result.stdout
        and ">200000: 2.5/-/15" in result.stdout
        and "gpt-4o" not in result.stdout
    )


def test_show_defaults_to_the_shipped_table() -> None:
    result = runner.invoke(app, ["show", "--provider", "anthropic", "--model", "opus-5"])
    assert result.exit_code == 0 and "claude-opus-5" in result.stdout and "gpt" not in result.stdout


def test_cost_prices_a_usage_with_a_breakdown(prices: Path) -> None:
    args = [
        "cost",
        "--file",
        str(prices),
        "--provider",
        "OpenAI",
        "--model",
        "gpt-4o-2024-08-06",
        "--input",
        "1000",
        "--output",
        "100",
        "--cached",
        "200",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "calculated 0.00325 USD"
    assert "uncached input" in result.stdout and "cache read" in result.stdout


def test_cost_uses_the_long_context_tier_and_the_date(prices: Path) -> None:
    long = runner.invoke(
        app,
        [
            "cost",
            "-f",
            str(prices),
            "--provider",
            "gemini",
            "--model",
            "gemini-2.5-pro",
            "--input",
            "300000",
            "--output",
            "0",
        ],
    )
    assert long.stdout.splitlines()[-1] == "calculated 0.75 USD" and "long context" in long.stdout
    later = runner.invoke(
        app,
        [
            "cost",
            "-f",
            str(prices),
            "--provider",
            "OPENAI",
            "--model",
            "gpt-4o",
            "--input",
            "1000000",
            "--output",
            "0",
            "--at",
            "2030-06-01",
        ],
    )
    assert later.stdout.splitlines()[-1] == "calculated 3 USD"


def test_cost_falls_back_to_reported_and_exits_1_when_unpriced(prices: Path) -> None:
    reported = runner.invoke(
        app,
        [
            "cost",
            "-f",
            str(prices),
            "--provider",
            "OPENROUTER",
            "--model",
            "x/y",
            "--input",
            "10",
            "--output",
            "10",
            "--reported-cost",
            "0.0042",
        ],
    )
    assert reported.exit_code == 0 and reported.stdout.splitlines()[-1] == "reported 0.0042 USD"
    unpriced = runner.invoke(
        app,
        [
            "cost",
            "-f",
            str(prices),
            "--provider",
            "NOBODY",
            "--model",
            "x",
            "--input",
            "10",
            "--output",
            "10",
        ],
    )
    assert unpriced.exit_code == 1 and "unpriced" in unpriced.stdout


def test_cost_rejects_inconsistent_token_counts(prices: Path) -> None:
    result = runner.invoke(
        app,
        [
            "cost",
            "-f",
            str(prices),
            "--provider",
            "OPENAI",
            "--model",
            "gpt-4o",
            "--input",
            "10",
            "--output",
            "1",
            "--cached",
            "20",
        ],
    )
    assert result.exit_code == 2


def test_diff_shows_added_removed_and_changed(tmp_path: Path) -> None:
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    old.write_text(f"{SEED}\nOPENAI,,gpt-4o,2.50,1.25,10\nOPENAI,,gpt-3,1,,2\nX,,same,1,,1\n")
    new.write_text(f"{SEED}\nopenai,,GPT-4O,2.5,0.5,12\nX,,same,1.00,,1\nANTHROPIC,,claude-opus-5,5,0.5,25\n")
    result = runner.invoke(app, ["diff", str(old), str(new)])
    assert result.exit_code == 0, result.output
    assert "1 added, 1 removed, 1 changed" in result.stdout
    lines = result.stdout.splitlines()
    changed = next(line for line in lines if "changed" in line and "GPT-4O" in line)
    assert "CACHED 1.25 → 0.5" in changed and "OUTPUT 10 → 12" in changed and "INPUT" not in changed
    assert any("removed" in line and "gpt-3" in line for line in lines)
    assert any("added" in line and "claude-opus-5" in line for line in lines)


def test_diff_exits_1_on_problems(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text(f"{SEED}\nX,,m,1,,1\n")
    bad.write_text(f"{SEED}\nX,,m,one,,1\n")
    result = runner.invoke(app, ["diff", str(good), str(bad)])
    assert result.exit_code == 1 and f"{bad}:2: INPUT_PRICE_PER_M: bad number 'one'" in result.stdout


def litellm_json(path: Path) -> Path:
    """A small file in the shape of LiteLLM's model_prices_and_context_window.json."""
    data = {
        "sample_spec": {"max_tokens": "LEGACY", "input_cost_per_token": 0.0, "mode": "chat"},
        "gpt-4o": {
            "litellm_provider": "openai",
            "mode": "chat",
            "input_cost_per_token": 2.5e-06,
            "output_cost_per_token": 1e-05,
            "cache_read_input_token_cost": 1.25e-06,
        },
        "claude-sonnet-4-5": {
            "litellm_provider": "anthropic",
            "mode": "chat",
            "input_cost_per_token": 3e-06,
            "output_cost_per_token": 1.5e-05,
            "cache_creation_input_token_cost": 3.75e-06,
            "cache_creation_input_token_cost_above_1hr": 6e-06,
            "cache_read_input_token_cost": 3e-07,
            "input_cost_per_token_above_200k_tokens": 6e-06,
            "output_cost_per_token_above_200k_tokens": 2.25e-05,
            "cache_read_input_token_cost_above_200k_tokens": 6e-07,
        },
        "gemini/gemini-2.5-pro": {
            "litellm_provider": "gemini",
            "mode": "chat",
            "input_cost_per_token": 1.25e-06,
            "output_cost_per_token": 1e-05,
            "input_cost_per_token_above_200k_tokens": 2.5e-06,
            "output_cost_per_token_above_200k_tokens": 1.5e-05,
        },
        "text-embedding-3-small": {
            "litellm_provider": "openai",
            "mode": "embedding",
            "input_cost_per_token": 2e-08,
            "output_cost_per_token": 0.0,
        },
        "dall-e-3": {"litellm_provider": "openai", "mode": "image_generation", "output_cost_per_image": 0.04},
        "broken": {
            "litellm_provider": "openai",
            "mode": "chat",
            "input_cost_per_token": "free",
            "output_cost_per_token": 1e-06,
        },
    }
    path.write_text(json.dumps(data))
    return path


def test_import_litellm_converts_prices_exactly_and_the_result_validates(tmp_path: Path) -> None:
    source, out = litellm_json(tmp_path / "model_prices_and_context_window.json"), tmp_path / "litellm.csv"
    result = runner.invoke(app, ["import-litellm", str(source), "-o", str(out), "--checked", "2026-11-24"])
    assert result.exit_code == 1  # one malformed entry, reported
    assert f"{source}: broken: input_cost_per_token is not a number: 'free'" in result.stderr
    assert "converted 3 model(s), skipped 3" in result.stderr

    report = read_price_files([out])
    assert report.ok
    rows = {r.model: r for r in report.rows}
    assert set(rows) == {"gpt-4o", "claude-sonnet-4-5", "gemini-2.5-pro"}
    gpt, claude, gemini = rows["gpt-4o"], rows["claude-sonnet-4-5"], rows["gemini-2.5-pro"]
    assert (gpt.provider, gpt.input, gpt.cached, gpt.output) == (
        "OPENAI",
        Decimal("2.5"),
        Decimal("1.25"),
        Decimal(10),
    )
    assert (claude.cache_write_5m, claude.cache_write_1h) == (Decimal("3.75"), Decimal(6))
    assert claude.long_context_threshold == 200_000
    assert (claude.long_context_input, claude.long_context_cached, claude.long_context_output) == (
        Decimal(6),
        Decimal("0.6"),
        Decimal("22.5"),
    )
    assert gemini.provider == "GEMINI" and gemini.long_context_output == Decimal(15)
    assert gpt.source == "litellm:model_prices_and_context_window.json" and str(gpt.checked) == "2026-11-24"

    assert runner.invoke(app, ["validate", str(out)]).exit_code == 0
    cost = runner.invoke(
        app,
        [
            "cost",
            "-f",
            str(out),
            "--provider",
            "anthropic",
            "--model",
            "claude-sonnet-4-5-20250929",
            "--input",
            "1000",
            "--output",
            "1000",
            "--cache-write",
            "500",
            "--cache-write-1h",
            "100",
        ],
    )
    # 500 uncached * 3 + 400 5m writes * 3.75 + 100 1h writes * 6 + 1000 out * 15 = 18600 micro-USD
    assert cost.stdout.splitlines()[-1] == "calculated 0.0186 USD"


def test_import_litellm_to_stdout_and_bad_json(tmp_path: Path) -> None:
    source = litellm_json(tmp_path / "prices.json")
    result = runner.invoke(app, ["import-litellm", str(source)])
    assert result.stdout.splitlines()[0].startswith("PROVIDER,MODEL_FAMILY,MODEL,")
    assert len(result.stdout.splitlines()) == 4
    not_an_object = tmp_path / "list.json"
    not_an_object.write_text("[1, 2]")
    assert runner.invoke(app, ["import-litellm", str(not_an_object)]).exit_code == 1
