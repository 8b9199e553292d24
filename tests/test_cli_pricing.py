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
from statek.types import CallDetail

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
    assert "3 problem(s) and 1 warning(s) in 1 file(s)" in result.stderr


def test_validate_the_shipped_table() -> None:
    result = runner.invoke(app, ["validate", str(shipped_prices_path())])
    assert result.exit_code == 0 and result.stdout.startswith("OK:")


def test_show_filters_by_provider_and_model(prices: Path) -> None:
    args = ["show", "--file", str(prices), "--no-database", "--provider", "open ai", "--sources"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("gpt-4o") == 2 and "gemini" not in result.stdout
    assert "2030-01-01" in result.stdout
    result = runner.invoke(app, ["show", "--file", str(prices), "--no-database", "--model", "GEMINI"])
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
    assert "converted 4 model(s), skipped 2" in result.stderr  # embeddings are converted (issue 21)

    report = read_price_files([out])
    assert report.ok
    rows = {r.model: r for r in report.rows}
    assert set(rows) == {"gpt-4o", "claude-sonnet-4-5", "gemini-2.5-pro", "text-embedding-3-small"}
    assert rows["text-embedding-3-small"].input == Decimal("0.02")
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
    assert len(result.stdout.splitlines()) == 5
    not_an_object = tmp_path / "list.json"
    not_an_object.write_text("[1, 2]")
    assert runner.invoke(app, ["import-litellm", str(not_an_object)]).exit_code == 1


# ----------------------------------------------------------------------------- the effective table


def test_show_lists_database_prices_with_where_each_came_from(prices: Path) -> None:
    result = runner.invoke(app, ["show", "--file", str(prices), "--provider", "openai", "--json"])
    assert result.exit_code == 0, result.output
    rows = {(r["MODEL"], r.get("VALID_FROM")): r for r in json.loads(result.stdout)["rows"]}
    assert rows[("gpt-4o", None)]["FROM"] == f"{prices}:2"  # the file wins over the database
    assert rows[("gpt-4o-2024-05-13", None)]["FROM"].startswith("genai-prices ")
    assert rows[("gpt-4o-2024-05-13", None)]["INPUT_PRICE_PER_M"] == "5"


def test_cost_json_reports_status_amount_and_the_price_used() -> None:
    args = [
        "cost",
        "--provider",
        "xai",
        "--model",
        "grok-4-fast-reasoning",
        "--input",
        "1000000",
        "--output",
        "0",
    ]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["status"], document["amount"]) == ("calculated", "0.2")
    assert document["price"]["FROM"].startswith("genai-prices ")
    reported = json.loads(runner.invoke(app, [*args, "--reported-cost", "0.25", "--json"]).stdout)
    assert (reported["status"], reported["amount"], reported["table_amount"], reported["drift"]) == (
        "reported",
        "0.25",
        "0.2",
        "0.05",
    )


def test_cost_of_an_answer_without_usage_is_no_usage_and_exits_1() -> None:
    result = runner.invoke(
        app, ["cost", "--provider", "openai", "--model", "gpt-4o", "--input", "0", "--output", "0"]
    )
    assert result.exit_code == 1 and result.stdout.startswith("no_usage")


def test_export_writes_a_file_that_loads_back_to_the_same_prices(tmp_path: Path) -> None:
    out = tmp_path / "pinned.csv"
    result = runner.invoke(app, ["export", "--provider", "xai", "--provider", "perplexity", "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = read_price_files([out])
    assert report.ok and len(report.rows) > 10
    assert {r.provider for r in report.rows} == {"x-ai", "perplexity"}
    assert any(r.request_fee_per_k for r in report.rows)  # Perplexity's per-request fee survives
    pinned = PriceRegistry(shipped=False, model_info_dir=None, database=None)
    pinned.load(out, strict=True)
    live = PriceRegistry(model_info_dir=None)
    usage = CallDetail(0, 0, None, 12_345, 678, 100)
    database = live.database
    assert database is not None
    for row in report.rows:
        found = database.find(row.provider, row.model)
        if found is not None and not found.rates[0][1].output_listed:
            continue  # input-only (embedding-like) models: a file row cannot say "no output price"
        assert pinned.price_call(
            "xai" if row.provider == "x-ai" else row.provider, row.model, usage
        ) == live.price_call(row.provider, row.model, usage), row.model


def test_export_to_a_folder_or_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    for target in (tmp_path, tmp_path / "missing" / "out.csv"):
        result = runner.invoke(app, ["export", "--provider", "xai", "-o", str(target)])
        assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_compare_with_litellm_lists_the_prices_that_differ(tmp_path: Path) -> None:
    source = litellm_json(tmp_path / "prices.json")
    ours = tmp_path / "ours.csv"
    ours.write_text(
        f"{SEED}\nOPENAI,,gpt-4o,2.5,1.25,10\nANTHROPIC,,claude-sonnet-4-5,3,0.30,16\nX,,only-ours,1,,1\n"
    )
    result = runner.invoke(app, ["compare", "--file", str(ours), "--litellm", str(source), "--json"])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert [d["model"] for d in document["different"]] == ["claude-sonnet-4-5"]
    columns = {c["column"]: (c["old"], c["new"]) for c in document["different"][0]["columns"]}
    assert columns["OUTPUT"] == ("16", "15")
    assert [m["MODEL"] for m in document["missing"]] == ["only-ours"]


def test_compare_with_the_database(tmp_path: Path) -> None:
    ours = tmp_path / "ours.csv"
    ours.write_text(f"{SEED}\nopenai,,gpt-4o,2.5,1.25,10\nopenai,,gpt-4o-mini,0.2,,0.6\n")
    result = runner.invoke(app, ["compare", "--file", str(ours), "--database"])
    assert result.exit_code == 1, result.output
    assert "1 different, 0 missing, 1 same" in result.stdout
    assert "INPUT 0.2 → 0.15" in result.stdout


def test_validate_json_and_the_quote_repro_of_issue_10(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text('PROVIDER,MODEL,INPUT_PRICE_PER_M,OUTPUT_PRICE_PER_M\nOpenAI,llama-7"b,1,2\n')
    result = runner.invoke(app, ["validate", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"ok": True, "rows": 1, "files": [str(path)], "problems": []}


@pytest.mark.parametrize(
    "content",
    [
        (
            '{"m": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e999999999, '
            '"output_cost_per_token": 1}}'
        ),
        "[" * 100_000 + "]" * 100_000,
        '{"m": ' * 5000 + "1" + "}" * 5000,
    ],
)
def test_import_litellm_hostile_files_are_one_line_errors(tmp_path: Path, content: str) -> None:
    source = tmp_path / "x.json"
    source.write_text(content)
    result = runner.invoke(app, ["import-litellm", str(source), "-o", str(tmp_path / "out.csv")])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert len(result.stderr.strip().splitlines()) <= 2  # the problem, then the summary


def test_import_litellm_to_a_folder_or_missing_folder(tmp_path: Path) -> None:
    source = litellm_json(tmp_path / "prices.json")
    for target in (tmp_path, tmp_path / "nope" / "out.csv"):
        result = runner.invoke(app, ["import-litellm", str(source), "-o", str(target)])
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
        assert len(result.stderr.strip().splitlines()) == 1
