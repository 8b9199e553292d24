"""What the CLI prints: tables readable at 80 columns, plain when piped, and the leftovers of issue 26.

Terminal runs are simulated the way rich detects them (``FORCE_COLOR`` and ``COLUMNS``), so the
command's own console decides its width; colour codes are stripped before reading the text.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.text import Text
from typer.testing import CliRunner

from statek.cli import app
from statek.cli.output import ColumnSpec, clean, fitted_table, table_width
from statek.metering import PriceRegistry, set_default_registry
from statek.metering.export import effective_rows
from statek.metering.registry import default_registry

runner = CliRunner()
SEED = "PROVIDER,MODEL_FAMILY,MODEL,INPUT_PRICE_PER_M,INPUT_PRICE_PER_CACHED_M,OUTPUT_PRICE_PER_M"
_SGR = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(autouse=True)
def shipped_only_registry() -> Iterator[None]:
    previous = set_default_registry(PriceRegistry(model_info_dir=None))
    yield
    set_default_registry(previous)


def _terminal(monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLUMNS", str(width))


def _money(value: Decimal | None) -> str:
    return "-" if value is None else format(value.normalize(), "f")


def test_show_at_80_columns_shows_every_price_of_gpt_4o(monkeypatch: pytest.MonkeyPatch) -> None:
    _terminal(monkeypatch, 80)
    result = runner.invoke(app, ["pricing", "show", "--provider", "openai", "--model", "gpt-4o"])
    assert result.exit_code == 0, result.output
    text = _SGR.sub("", result.stdout)
    assert "\x1b" not in text
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "…" not in text  # nothing cut
    row = next(r for r in effective_rows(default_registry().table, ["openai"]) if r.model == "gpt-4o")
    line = next(line for line in text.splitlines() if line.split()[1:2] == ["gpt-4o"])
    assert line.split()[2:5] == [_money(row.input), _money(row.cached), _money(row.output)], line
    assert "not shown at this width:" in text  # and what was dropped is named


def test_piped_output_is_plain_and_wide() -> None:
    result = runner.invoke(app, ["pricing", "show", "--provider", "openai", "--model", "gpt-4o"])
    assert result.exit_code == 0
    assert "\x1b" not in result.stdout and "not shown at this width" not in result.stdout
    assert "Write 5m" in result.stdout and "From" in result.stdout


def test_json_is_unchanged_by_the_width(monkeypatch: pytest.MonkeyPatch) -> None:
    wide = runner.invoke(app, ["pricing", "show", "--provider", "openai", "--json"]).stdout
    _terminal(monkeypatch, 60)
    narrow = runner.invoke(app, ["pricing", "show", "--provider", "openai", "--json"]).stdout
    assert json.loads(narrow) == json.loads(wide) and json.loads(wide)["rows"]


_NUMBER = st.decimals(min_value=0, max_value=10**9, places=6, allow_nan=False).map(lambda d: f"{d:,}")
_NAME = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(min_value=40, max_value=200),
    rows=st.lists(st.tuples(_NAME, _NAME, _NUMBER, _NUMBER, _NUMBER), min_size=1, max_size=6),
    keeps=st.lists(st.integers(min_value=0, max_value=9), min_size=2, max_size=2),
)
def test_a_fitted_table_never_cuts_a_number_and_fits_when_it_can(
    width: int, rows: list[tuple[str, ...]], keeps: list[int]
) -> None:
    specs = (
        ColumnSpec("Name", "fold"),
        ColumnSpec("Note", keep=keeps[0]),
        ColumnSpec("Price", "number"),
        ColumnSpec("Extra", "number", keep=keeps[1]),
        ColumnSpec("Cost", "number"),
    )
    out = Console(width=width, file=io.StringIO(), record=True)
    out.print(fitted_table(out, specs, rows, title="t"))
    text = out.export_text()
    lines = text.splitlines()
    kept = [
        max(len("Name"), *(min(len(clean(r[0])), 12) for r in rows)),  # as printed: escapes visible
        max(len("Price"), *(len(r[2]) for r in rows)),
        max(len("Cost"), *(len(r[4]) for r in rows)),
    ]
    if table_width(kept) <= width:  # the columns that are never dropped fit: so does the table
        assert max(Text(line).cell_len for line in lines) <= width, text
        for _, _, price, _, cost in rows:
            assert any(price in line and cost in line for line in lines), (price, cost, text)


def test_table_width_is_the_rendered_width() -> None:
    for columns in range(1, 6):
        rows = [[f"{'x' * (i + 3)}" for i in range(columns)]]
        specs = [ColumnSpec(f"c{i}") for i in range(columns)]
        out = Console(width=500, file=io.StringIO(), record=True)
        out.print(fitted_table(out, specs, rows))
        widest = max(len(line.rstrip()) for line in out.export_text().splitlines())
        assert widest == table_width([i + 3 for i in range(columns)])


def test_an_unknown_provider_is_refused_with_a_suggestion() -> None:
    for command in (["show"], ["export"]):
        result = runner.invoke(app, ["pricing", *command, "--provider", "opnai"])
        assert result.exit_code == 1
        assert "unknown provider 'opnai'" in result.stderr and "did you mean openai" in result.stderr
        assert result.stdout == ""


def test_export_of_nothing_refuses_and_writes_no_file(tmp_path: Path) -> None:
    prices = tmp_path / "p.csv"
    prices.write_text(f"{SEED}\nOPENAI,,gpt-4o,2.5,1.25,10\n")
    out = tmp_path / "out.csv"
    result = runner.invoke(
        app,
        ["pricing", "export", "--file", str(prices), "--no-database", "--provider", "openai", "-o", str(out)],
    )
    assert result.exit_code == 0 and out.exists()
    out.unlink()
    prices.write_text(f"{SEED}\n")
    result = runner.invoke(app, ["pricing", "export", "--file", str(prices), "--no-database", "-o", str(out)])
    assert result.exit_code == 1 and "nothing to export" in result.stderr
    assert not out.exists()


def test_validate_a_folder_without_price_files_fails(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("no prices here")
    result = runner.invoke(app, ["pricing", "validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "no price files (.csv or .txt) found" in result.stderr and "OK" not in result.output


def test_diff_with_a_missing_file_is_an_error(tmp_path: Path) -> None:
    prices = tmp_path / "p.csv"
    prices.write_text(f"{SEED}\nOPENAI,,gpt-4o,2.5,1.25,10\n")
    for old, new in ((tmp_path / "gone.csv", prices), (prices, tmp_path / "gone.csv")):
        result = runner.invoke(app, ["pricing", "diff", str(old), str(new)])
        assert result.exit_code == 1 and "gone.csv: no such file or folder" in result.stderr
        assert "added" not in result.stdout


def test_compare_lists_the_rows_missing_there(tmp_path: Path) -> None:
    theirs = tmp_path / "litellm.json"
    theirs.write_text(
        json.dumps(
            {
                "gpt-4o": {
                    "litellm_provider": "openai",
                    "mode": "chat",
                    "input_cost_per_token": 2.5e-06,
                    "cache_read_input_token_cost": 1.25e-06,
                    "output_cost_per_token": 1e-05,
                }
            }
        )
    )
    ours = tmp_path / "ours.csv"
    ours.write_text(f"{SEED}\nOPENAI,,gpt-4o,2.5,1.25,10\nOPENAI,,only-ours-model,1,,1\n")
    result = runner.invoke(app, ["pricing", "compare", "--file", str(ours), "--litellm", str(theirs)])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if "only-ours-model" in line)
    assert "not listed in" in line
    assert "0 different, 1 missing, 1 same" in result.stdout


def test_a_huge_reported_cost_is_one_line() -> None:
    for value in ("1e999999999", "1e15"):
        result = runner.invoke(
            app,
            ["pricing", "cost", "--provider", "openai", "--model", "gpt-4o", "--input", "1", "--output", "1"]
            + ["--reported-cost", value],
        )
        assert result.exit_code == 2 and "below 1e15" in result.output, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_one_line(tmp_path: Path) -> None:
    source = tmp_path / "l.json"
    source.write_text(
        json.dumps({"m": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-6}})
    )
    for command in (
        ["pricing", "export", "--provider", "openai", "-o", "/dev/full"],
        ["pricing", "import-litellm", str(source), "-o", "/dev/full"],
    ):
        result = runner.invoke(app, command)
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        assert "/dev/full: cannot write: No space left on device" in result.stderr


def test_the_demo_bill_keeps_every_digit_at_80_columns() -> None:
    from statek.cli.demo import _print_report
    from statek.demo import DemoRun
    from statek.demo.exporters import DemoExporters
    from statek.demo.report import format_cost

    exporters = DemoExporters.start("127.0.0.1", 0)
    try:
        result = DemoRun(jobs=16, concurrency=8, seed=5).run()
        out = Console(record=True, width=80, file=io.StringIO())
        _print_report(out, result, exporters)
    finally:
        exporters.shutdown()
    text = out.export_text()
    total = format_cost(result.total())
    assert re.fullmatch(r"\$\d+\.\d{6}", total), total
    assert max(len(line) for line in text.splitlines()) <= 80, text
    footers = [line for line in text.splitlines() if line.startswith("Total") and total in line.split()]
    assert len(footers) == 2, text  # both tables' total rows, every digit
    assert f"cost {total} USD" in " ".join(text.split())
    for (_, model), usage in result.by_model().items():
        if usage.cost is not None:
            assert any(format_cost(usage) in line for line in text.splitlines()), model
