"""Hostile price files: one reader decides records, lines and quoting; every number is bounded; no
exception ever escapes; problems are ``file:line: COLUMN: reason``; a bad file never replaces a good one."""

from __future__ import annotations

import csv
import io
import os
import re
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statek.metering import PriceRegistry, price_call, set_default_registry
from statek.metering import schema as S
from statek.metering.loader import parse_price_text, read_price_file, read_price_files
from statek.settings import MODEL_INFO_DIR_ENV
from statek.types import CallDetail

HEADER = "PROVIDER,MODEL_FAMILY,MODEL,INPUT_PRICE_PER_M,INPUT_PRICE_PER_CACHED_M,OUTPUT_PRICE_PER_M,LONG_CONTEXT_THRESHOLD,LONG_CONTEXT_INPUT_PRICE_PER_M,LONG_CONTEXT_OUTPUT_PRICE_PER_M,VALID_FROM,MATCH\n"
_PROBLEM = re.compile(r"^fuzz\.csv(:\d+)?: .+")

# Characters that break naive CSV handling: quotes, separators, comments, odd line ends, huge numbers.
_PIECES = st.sampled_from(
    [
        ",",
        '"',
        '""',
        "#",
        "\n",
        "\r\n",
        "\r",
        "\f",
        "\u2028",
        "\u0085",
        "\x00",
        " ",
        "1",
        "2.5",
        "-1",
        "1e999999999",
        "1e-999999999",
        "1e400",
        "nan",
        "inf",
        "9" * 5000,
        "openai",
        "gpt-4o",
        "é",
        "*",
        "|",
        "2026-01-01",
        "\t",
    ]
)
_TEXT = st.lists(_PIECES, max_size=80).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_TEXT)
def test_any_text_after_a_header_loads_or_is_reported_never_raises(body: str) -> None:
    rows, problems = parse_price_text(HEADER + body, "fuzz.csv")
    total_lines = len(io.StringIO(HEADER + body, newline="").readlines())
    for problem in problems:
        assert _PROBLEM.match(str(problem)), str(problem)
        assert "\n" not in str(problem)
        assert problem.line is None or 1 <= problem.line <= max(total_lines, 1)
    for row in rows:
        for price in (row.input, row.output, row.cached, row.long_context_input, row.long_context_output):
            if price is not None:
                assert price.is_finite() and 0 <= price <= S.MAX_PRICE
                exponent = price.normalize().as_tuple().exponent
                assert price == 0 or (isinstance(exponent, int) and exponent >= -S.MAX_DECIMALS)
        if row.long_context_threshold is not None:
            assert 0 <= row.long_context_threshold <= S.MAX_THRESHOLD
        assert 2 <= row.line <= total_lines


_NAME = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=1, max_size=12
).filter(lambda s: s.strip() != "" and s == s.strip() and "\r" not in s and "\n" not in s)
_PRICE = st.decimals(min_value=0, max_value=10_000, places=4, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(_NAME, _NAME, _PRICE, _PRICE), min_size=1, max_size=8))
def test_rows_written_by_a_csv_writer_read_back_exactly_with_their_line_numbers(
    rows: list[tuple[str, str, Decimal, Decimal]],
) -> None:
    text = io.StringIO()
    text.write('# a comment with a "quote, and a comma\n')
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["PROVIDER", "MODEL", "INPUT_PRICE_PER_M", "OUTPUT_PRICE_PER_M"])
    starts = []
    for provider, model, inp, out in rows:
        starts.append(text.getvalue().count("\n") + 1)
        writer.writerow([provider, model, str(inp), str(out)])
    parsed, problems = parse_price_text(text.getvalue(), "rt.csv")
    if any(p.lstrip().startswith("#") for p, _, _, _ in rows):
        return  # an unquoted first field starting with # is a comment by definition
    assert [p for p in problems if not p.warning] == []
    kept = {(r.provider, r.model): (r.input, r.output, r.line) for r in parsed}
    expected = {}
    for (provider, model, inp, out), line in zip(rows, starts):
        expected[(provider.strip(), model.strip())] = (inp, out, line)  # last row for a key wins
    assert {k: v for k, v in kept.items()} == {k: v for k, v in expected.items() if k in kept} and len(
        kept
    ) == len({(p.strip(), m.strip()) for p, m, _, _ in rows}) - _same_keys(rows)


def _same_keys(rows: list[tuple[str, str, Decimal, Decimal]]) -> int:
    """Keys that differ as text but normalise alike (case, inner spaces) collapse into one row."""
    from statek.metering.records import normalise, provider_key

    raw = {(p.strip(), m.strip()) for p, m, _, _ in rows}
    return len(raw) - len({(provider_key(p), normalise(m)) for p, m in raw})


def test_the_quote_repro_of_issue_10_loads(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text('PROVIDER,MODEL,INPUT_PRICE_PER_M,OUTPUT_PRICE_PER_M\nOpenAI,llama-7"b,1,2\n')
    rows, problems = read_price_file(path)
    assert problems == [] and [r.model for r in rows] == ['llama-7"b']


def test_form_feed_and_unicode_line_separators_do_not_split_rows() -> None:
    text = "PROVIDER,MODEL,INPUT_PRICE_PER_M,OUTPUT_PRICE_PER_M\nx,a\fb,1,2\nx,c\u2028d,3,4\nx,e,5,6\n"
    rows, problems = parse_price_text(text, "p.csv")
    assert problems == []
    assert [(r.model, r.line) for r in rows] == [("a\fb", 2), ("c\u2028d", 3), ("e", 4)]


def test_a_comment_with_a_quote_does_not_swallow_rows_and_a_quoted_hash_is_data() -> None:
    text = (
        "PROVIDER,MODEL,INPUT_PRICE_PER_M,OUTPUT_PRICE_PER_M\n"
        '# "unterminated quote in a comment\n'
        "x,a,1,2\n"
        '"#1 provider",b,3,4\n'
    )
    rows, problems = parse_price_text(text, "p.csv")
    assert problems == []
    assert [(r.provider, r.model, r.line) for r in rows] == [("x", "a", 3), ("#1 provider", "b", 4)]


def test_blank_lines_are_skipped_and_a_row_of_empty_fields_is_reported() -> None:
    text = "PROVIDER,MODEL,INPUT_PRICE_PER_M,OUTPUT_PRICE_PER_M\n\n   \nx,a,1,2\n,,,\n"
    rows, problems = parse_price_text(text, "p.csv")
    assert [r.line for r in rows] == [4]
    assert [str(p) for p in problems] == ["p.csv:5: empty row: every field is blank"]


@pytest.mark.parametrize(
    ("cells", "column", "reason"),
    [
        ("1e999999999,1", "INPUT_PRICE_PER_M", "bad number"),
        ("1e400,1", "INPUT_PRICE_PER_M", "above the maximum"),
        ("1e-999999999,1", "INPUT_PRICE_PER_M", "bad number"),
        ("0.0000000000001,1", "INPUT_PRICE_PER_M", "more than 12 decimal places"),
        ("2000000,1", "INPUT_PRICE_PER_M", "above the maximum"),
        ("1,nan", "OUTPUT_PRICE_PER_M", "bad number"),
        ("1,inf", "OUTPUT_PRICE_PER_M", "bad number"),
    ],
)
def test_absurd_numbers_are_refused_with_file_line_column(cells: str, column: str, reason: str) -> None:
    _, problems = parse_price_text(
        f"PROVIDER,MODEL,INPUT_PRICE_PER_M,OUTPUT_PRICE_PER_M\nx,m,{cells}\n", "p.csv"
    )
    (problem,) = problems
    assert (problem.line, problem.column) == (2, column) and reason in problem.reason


def test_a_5000_digit_threshold_is_refused() -> None:
    text = (
        "PROVIDER,MODEL,INPUT_PRICE_PER_M,OUTPUT_PRICE_PER_M,LONG_CONTEXT_THRESHOLD,"
        f"LONG_CONTEXT_INPUT_PRICE_PER_M,LONG_CONTEXT_OUTPUT_PRICE_PER_M\nx,m,1,1,{'9' * 5000},2,2\n"
    )
    _, (problem,) = parse_price_text(text, "p.csv")
    assert problem.column == "LONG_CONTEXT_THRESHOLD" and (
        "maximum" in problem.reason or "longer" in problem.reason
    )
    assert len(str(problem)) < 200


def test_an_unterminated_quote_is_one_problem_and_the_rows_before_it_load() -> None:
    text = 'PROVIDER,MODEL,INPUT_PRICE_PER_M,OUTPUT_PRICE_PER_M\nx,a,1,2\nx,"b,1,2\nx,c,1,2\n'
    rows, problems = parse_price_text(text, "p.csv")
    assert [r.model for r in rows] == ["a"]
    assert [(p.line, "unreadable CSV" in p.reason) for p in problems] == [(3, True)]


def test_model_info_dir_is_read_once_even_when_it_has_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bad.csv").write_text(
        'PROVIDER,MODEL,INPUT_PRICE_PER_M,OUTPUT_PRICE_PER_M\nx,m,1,2\nx,"n,1\n'
    )
    monkeypatch.setenv(MODEL_INFO_DIR_ENV, str(tmp_path))
    registry = PriceRegistry(shipped=False, database=None)
    previous = set_default_registry(registry)
    try:
        stats = CallDetail(0, 0, None, 1_000_000, 0, 0)
        assert price_call("x", "m", stats).amount == Decimal(1)
        table = registry.table
        (tmp_path / "later.csv").write_text(
            "PROVIDER,MODEL,INPUT_PRICE_PER_M,OUTPUT_PRICE_PER_M\nx,late,1,2\n"
        )
        for _ in range(3):
            assert price_call("x", "m", stats).amount == Decimal(1)
        assert registry.table is table  # not re-read, no layer appended per call
        assert price_call("x", "late", stats).status == "unpriced"
    finally:
        set_default_registry(previous)


def test_a_lenient_load_of_a_file_with_errors_keeps_its_good_rows_and_a_reload_never_swaps_it_in(
    tmp_path: Path,
) -> None:
    path = tmp_path / "p.csv"
    path.write_text("PROVIDER,MODEL,INPUT_PRICE_PER_M,OUTPUT_PRICE_PER_M\nx,a,1,2\nx,b,3,4\n")
    registry = PriceRegistry(shipped=False, model_info_dir=None, database=None)
    registry.load(path)
    path.write_text("PROVIDER,MODEL,INPUT_PRICE_PER_M,OUTPUT_PRICE_PER_M\nx,a,9,9\nx,b,")  # half written
    registry.reload()
    stats = CallDetail(0, 0, None, 1_000_000, 0, 0)
    assert registry.price_call("x", "a", stats).amount == Decimal(1)
    assert registry.price_call("x", "b", stats).amount == Decimal(3)


# ----------------------------------------------------------------------------- unreadable records
_HEADER = "PROVIDER,MODEL,INPUT_PRICE_PER_M,OUTPUT_PRICE_PER_M\n"
_BAD_RECORDS = [
    "x,{long},1,2\n",  # an unquoted field over csv's limit
    'x,"{long}",1,2\n',  # a quoted one
    'x,"{long}\nstill the same field",1,2\n',  # a quoted one over two lines
    'x,"b"oops,1,2\n',  # text after a closing quote
    'x,"b"oops,"c\nx,inside,1,2\nstill inside",1\n',  # then a quoted field running over three lines
]


@pytest.mark.parametrize("bad", _BAD_RECORDS)
def test_after_an_unreadable_record_the_next_record_loads_and_the_problem_is_at_its_first_line(
    bad: str,
) -> None:
    text = _HEADER + "x,a,1,2\n" + bad.format(long="y" * 200_000) + 'x,"multi\nline",1,2\nx,c,1,2\n'
    rows, problems = parse_price_text(text, "p.csv")
    assert [(r.model, r.line) for r in rows] == [
        ("a", 2),
        ("multi\nline", 3 + bad.count("\n")),
        ("c", 5 + bad.count("\n")),
    ]
    assert [(p.line, p.reason.startswith("unreadable CSV")) for p in problems] == [(3, True)]
    if "{long}" in bad:
        assert "longer than 131072 characters" in problems[0].reason


@settings(max_examples=150, deadline=None)
@given(
    good=st.lists(st.tuples(_NAME, _NAME, _PRICE, _PRICE), min_size=2, max_size=6),
    bad=st.lists(st.sampled_from(_BAD_RECORDS), min_size=1, max_size=3),
    at=st.integers(min_value=0, max_value=6),
)
def test_unreadable_records_anywhere_cost_only_themselves(
    good: list[tuple[str, str, Decimal, Decimal]], bad: list[str], at: int
) -> None:
    """Good records written by a csv writer, with unreadable ones slotted in: every good record loads
    at its own first line, and each unreadable one is one problem at the line it starts on."""
    out = io.StringIO()
    out.write(_HEADER)
    writer = csv.writer(out, lineterminator="\n")
    starts, bad_starts = {}, []
    for n, (provider, model, inp, out_price) in enumerate(good):
        if n == at % len(good):
            for record in bad:
                bad_starts.append(out.getvalue().count("\n") + 1)
                out.write(record.format(long="z" * 140_000))
        if provider.lstrip().startswith("#"):
            continue
        starts[(provider.strip(), model.strip())] = out.getvalue().count("\n") + 1
        writer.writerow([provider, model, str(inp), str(out_price)])
    rows, problems = parse_price_text(out.getvalue(), "f.csv")
    unreadable = [p.line for p in problems if p.reason.startswith("unreadable CSV")]
    assert unreadable == bad_starts
    loaded = {(r.provider, r.model): r.line for r in rows}
    assert set(loaded.values()) <= set(starts.values())  # every row at the line its record starts on
    assert len(loaded) == len(starts) - _same_keys([(p, m, Decimal(1), Decimal(1)) for p, m in starts])


def test_unreadable_sub_folders_and_dangling_links_are_reported(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text(_HEADER + "x,a,1,2\n")
    (tmp_path / "gone.csv").symlink_to(tmp_path / "nowhere.csv")
    # A folder that cannot be listed, made so for any user (root reads a chmod-0 folder): one nested
    # deeper than the longest path the system takes (PATH_MAX), built step by step relative to its parent.
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        for _ in range(4096 // 200 + 1):
            os.mkdir("d" * 200, dir_fd=fd)
            deeper = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = deeper
    finally:
        os.close(fd)
    report = read_price_files([tmp_path])
    assert [r.model for r in report.rows] == ["a"]
    reasons = {Path(p.path).name: p.reason for p in report.problems}
    assert reasons["gone.csv"] == "a symbolic link to nothing: not read"
    assert reasons["d" * 200].startswith("cannot read folder")
    assert not report.ok


def test_a_quote_inside_an_unquoted_field_does_not_make_the_reader_skip_records() -> None:
    text = _HEADER + 'x,my"model,"b"oops,1\nx,c,1,2\n'  # three quotes, none left open
    rows, problems = parse_price_text(text, "p.csv")
    assert [r.model for r in rows] == ["c"]
    assert [p.line for p in problems] == [2]
