"""Price files: every problem reported with file, line, column and reason; strict mode; atomic reload."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from statek.exceptions import PricingError
from statek.metering import PriceRegistry, read_price_files
from statek.metering.loader import parse_price_text
from statek.types import CallDetail

SEED = "PROVIDER,MODEL_FAMILY,MODEL,INPUT_PRICE_PER_M,INPUT_PRICE_PER_CACHED_M,OUTPUT_PRICE_PER_M"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    return [str(p) for p in read_price_files([path]).problems]


def test_a_seed_format_file_loads_with_exact_decimals(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.csv", f"{SEED}\nOpenAI,gpt-4,gpt-4 turbo,10,,30\nOpenAI,,gpt-4o,2.50,1.25,10\n"
    )
    report = read_price_files([path])
    assert report.ok and len(report.rows) == 2
    first = report.rows[0]
    assert (first.provider, first.model_family, first.model) == ("OpenAI", "gpt-4", "gpt-4 turbo")
    assert (first.input, first.cached, first.output) == (Decimal(10), None, Decimal(30))
    assert str(report.rows[1].input) == "2.50" and (first.path, first.line) == (str(path), 2)


def test_comments_and_blank_lines_are_skipped_and_lines_still_point_at_the_file(tmp_path: Path) -> None:
    text = f"# prices\n\n{SEED}\n# a comment\nX,,a,1,,2\n\n   # indented comment\nX,,b,-1,,2\n"
    path = write(tmp_path / "p.csv", text)
    report = read_price_files([path])
    assert [r.line for r in report.rows] == [5]
    assert [str(p) for p in report.problems] == [f"{path}:8: INPUT_PRICE_PER_M: negative price '-1'"]


def test_quoted_fields_with_commas_and_line_breaks_keep_line_numbers(tmp_path: Path) -> None:
    text = f'{SEED},SOURCE\nX,,a,1,,2,"see, also"\nX,,b,1,,2,"two\nlines"\nX,,c,bad,,2,x\n'
    path = write(tmp_path / "p.csv", text)
    report = read_price_files([path])
    assert [(r.model, r.source, r.line) for r in report.rows] == [
        ("a", "see, also", 2),
        ("b", "two\nlines", 3),
    ]
    assert problems_of(path) == [f"{path}:5: INPUT_PRICE_PER_M: bad number 'bad'"]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("X,,m,abc,,2", "2: INPUT_PRICE_PER_M: bad number 'abc'"),
        ("X,,m,1,,1.2.3", "2: OUTPUT_PRICE_PER_M: bad number '1.2.3'"),
        ("X,,m,1,-0.5,2", "2: INPUT_PRICE_PER_CACHED_M: negative price '-0.5'"),
        ("X,,m,,,2", "2: INPUT_PRICE_PER_M: missing value"),
        (",,m,1,,2", "2: PROVIDER: missing value"),
        ("X,,,1,,2", "2: MODEL: missing value"),
        ("X,,m,1,2", "2: OUTPUT_PRICE_PER_M: missing column: the row has 5 of 6 fields"),
    ],
)
def test_each_bad_value_is_reported_with_file_line_column_and_reason(
    tmp_path: Path, row: str, expected: str
) -> None:
    path = write(tmp_path / "p.csv", f"{SEED}\n{row}\nX,,good,1,,2\n")
    report = read_price_files([path])
    assert [str(p) for p in report.problems] == [f"{path}:{expected}"]
    assert [r.model for r in report.rows] == ["good"]  # lenient: the good row still loads


def test_a_trailing_extra_field_is_ignored_with_a_warning_as_the_original_did(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", f"{SEED}\nX,,m,1,,2,3\nX,,good,1,,2\n")
    report = read_price_files([path])
    assert [str(p) for p in report.problems] == [
        f"{path}:2: field 7: extra field ignored: the row has 7 fields, the header 6"
    ]
    assert report.ok and report.problems[0].warning
    assert [(r.model, r.output) for r in report.rows] == [("m", 2), ("good", 2)]


def test_extended_column_problems(tmp_path: Path) -> None:
    header = f"{SEED},LONG_CONTEXT_THRESHOLD,LONG_CONTEXT_INPUT_PRICE_PER_M,LONG_CONTEXT_OUTPUT_PRICE_PER_M,VALID_FROM,CURRENCY,CHECKED"
    rows = [
        "X,,a,1,,2,200k,2,4,,,",
        "X,,b,1,,2,100,,4,,,",
        "X,,c,1,,2,,2,,,,",
        "X,,d,1,,2,,,,yesterday,,",
        "X,,e,1,,2,,,,,EUR,",
        "X,,f,1,,2,,,,,,2026-13-01",
        "X,,ok,1,,2,100,2,4,2026-01-01T10:00:00+02:00,usd,2026-11-24",
    ]
    path = write(tmp_path / "p.csv", header + "\n" + "\n".join(rows) + "\n")
    assert problems_of(path) == [
        f"{path}:2: LONG_CONTEXT_THRESHOLD: not a whole number of tokens '200k'",
        f"{path}:3: LONG_CONTEXT_INPUT_PRICE_PER_M: required when LONG_CONTEXT_THRESHOLD is set",
        f"{path}:4: LONG_CONTEXT_INPUT_PRICE_PER_M: a long-context price needs LONG_CONTEXT_THRESHOLD",
        f"{path}:5: VALID_FROM: bad date 'yesterday': use YYYY-MM-DD or ISO 8601",
        f"{path}:6: CURRENCY: currency 'EUR' is not supported: statek keeps money in USD",
        f"{path}:7: CHECKED: bad date '2026-13-01': use YYYY-MM-DD or ISO 8601",
    ]
    report = read_price_files([path])
    (ok,) = report.rows
    assert ok.model == "ok" and ok.long_context_threshold == 100
    assert ok.valid_from == datetime(2026, 1, 1, 8, tzinfo=timezone.utc)


def test_header_problems_unknown_column_is_reported_missing_required_column_stops_the_file(
    tmp_path: Path,
) -> None:
    unknown = write(tmp_path / "a.csv", f"{SEED},COLOUR\nX,,m,1,,2,red\n")
    report = read_price_files([unknown])
    assert [str(p) for p in report.problems] == [f"{unknown}:1: COLOUR: unknown column, ignored"]
    assert len(report.rows) == 1
    missing = write(tmp_path / "b.csv", "PROVIDER,MODEL,INPUT_PRICE_PER_M\nX,m,1\n")
    report = read_price_files([missing])
    assert [str(p) for p in report.problems] == [
        f"{missing}:1: OUTPUT_PRICE_PER_M: missing column: the file cannot be read without it"
    ]
    assert report.rows == ()


def test_minimal_columns_in_any_order_and_any_case(tmp_path: Path) -> None:
    path = write(tmp_path / "p.txt", "output_price_per_m, Model ,provider,input_price_per_m\n4,m,X,2\n")
    (row,) = read_price_files([path]).rows
    assert (row.provider, row.model, row.input, row.output, row.cached) == (
        "X",
        "m",
        Decimal(2),
        Decimal(4),
        None,
    )


def test_the_last_row_for_a_key_wins_and_a_different_duplicate_is_a_warning(tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", f"{SEED}\nOpenAI,,gpt-4o,2.5,,10\nX,,same,1,,2\n")
    b = write(tmp_path / "b.csv", f"{SEED}\nOPEN AI,,GPT-4O,3,,10\nX,,same,1.0,,2.00\n")
    report = read_price_files([tmp_path])
    assert [str(p) for p in report.problems] == [
        f"{b}:2: MODEL: duplicate of {a}:2 with different prices; this later row wins"
    ]
    assert report.problems[0].warning and report.ok
    assert [(r.model, r.input) for r in report.rows] == [("GPT-4O", Decimal(3)), ("same", Decimal(1))]


def test_folders_are_read_recursively_csv_and_txt_only(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", f"{SEED}\nX,,a,1,,2\n")
    write(tmp_path / "sub" / "deeper" / "b.txt", f"{SEED}\nX,,b,1,,2\n")
    write(tmp_path / "notes.md", "not prices")
    report = read_price_files([tmp_path])
    assert sorted(r.model for r in report.rows) == ["a", "b"] and report.ok
    assert [p.name for p in report.files] == ["a.csv", "b.txt"]


def test_unreadable_inputs_are_problems_not_crashes(tmp_path: Path) -> None:
    empty = write(tmp_path / "empty.csv", "# only a comment\n")
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00bad")
    missing = tmp_path / "nope"
    report = read_price_files([empty, binary, missing])
    texts = [str(p) for p in report.problems]
    assert f"{empty}: no header row: the file is empty or holds only comments" in texts
    assert any(t.startswith(f"{binary}: not UTF-8 text") for t in texts)
    assert f"{missing}: no such file or folder" in texts


def test_parse_price_text_reports_under_the_given_name() -> None:
    rows, problems = parse_price_text(f"{SEED}\nX,,m,1,,x\n", "inline")
    assert rows == [] and [str(p) for p in problems] == ["inline:2: OUTPUT_PRICE_PER_M: bad number 'x'"]


# ----------------------------------------------------------------------------- strict mode and reloads


def stats() -> CallDetail:
    return CallDetail(0, 0, None, 1_000_000, 0, 0)


def test_strict_load_raises_one_error_listing_every_problem_and_changes_nothing(tmp_path: Path) -> None:
    reg = PriceRegistry(shipped=False, model_info_dir=None)
    reg.load(write(tmp_path / "good.csv", f"{SEED}\nX,,m,1,,2\n"))
    bad = write(tmp_path / "bad.csv", f"{SEED}\nX,,m,9,,9\nX,,n,oops,,2\nX,,o,1,,-2\n")
    with pytest.raises(PricingError) as caught:
        reg.load(bad, strict=True)
    assert caught.value.problems == [
        f"{bad}:3: INPUT_PRICE_PER_M: bad number 'oops'",
        f"{bad}:4: OUTPUT_PRICE_PER_M: negative price '-2'",
    ]
    assert f"{bad}:3" in str(caught.value)
    assert reg.price_call("X", "m", stats()).amount == Decimal(1)  # the good row of bad.csv did not land


def test_lenient_load_keeps_good_rows_returns_and_logs_problems(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg = PriceRegistry(shipped=False, model_info_dir=None)
    bad = write(tmp_path / "bad.csv", f"{SEED}\nX,,m,9,,9\nX,,n,oops,,2\n")
    with caplog.at_level("WARNING", logger="statek.metering"):
        report = reg.load(bad)
    assert [str(p) for p in report.problems] == [f"{bad}:3: INPUT_PRICE_PER_M: bad number 'oops'"]
    assert f"{bad}:3: INPUT_PRICE_PER_M: bad number 'oops'" in caplog.text
    assert reg.price_call("X", "m", stats()).amount == Decimal(9)
    assert [str(p) for p in reg.problems] == [str(p) for p in report.problems]


def test_a_reload_never_replaces_working_rows_with_a_file_that_has_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", f"{SEED}\nX,,m,1,,2\nX,,n,3,,4\n")
    reg = PriceRegistry(shipped=False, model_info_dir=None)
    reg.load(path, strict=True)
    before = reg.table
    write(path, f"{SEED}\nX,,m,5,,6\nX,,n,broken,,4\n")
    with pytest.raises(PricingError):
        reg.reload(strict=True)
    assert reg.table is before
    assert reg.price_call("X", "m", stats()).amount == Decimal(1)
    assert reg.price_call("X", "n", stats()).amount == Decimal(3)

    problems = reg.reload()  # lenient: the problems are returned, the half-written file is not used
    assert [str(p) for p in problems] == [f"{path}:3: INPUT_PRICE_PER_M: bad number 'broken'"]
    assert reg.price_call("X", "m", stats()).amount == Decimal(1)
    assert reg.price_call("X", "n", stats()).amount == Decimal(3)


def test_reload_picks_up_corrected_files(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", f"{SEED}\nX,,m,1,,2\n")
    reg = PriceRegistry(shipped=False, model_info_dir=None)
    reg.load(path)
    write(path, f"{SEED}\nX,,m,7,,2\n")
    assert reg.reload(strict=True) == []
    assert reg.price_call("X", "m", stats()).amount == Decimal(7)


def test_model_info_dir_is_loaded_on_first_use_above_the_shipped_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "mine.csv", f"{SEED}\nOPENAI,,gpt-4o,100,,100\nLOCAL,,my-model,1,,1\n")
    monkeypatch.setenv("STATEK_MODEL_INFO_DIR", str(tmp_path))
    reg = PriceRegistry()
    assert reg.price_call("OPENAI", "gpt-4o", stats()).amount == Decimal(100)
    assert reg.price_call("LOCAL", "my-model", stats()).amount == Decimal(1)
    assert reg.find("ANTHROPIC", "claude-opus-5") is not None  # shipped rows are still there
