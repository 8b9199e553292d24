"""Hostile strings cannot drive the terminal through ``statek pricing`` (issue 24, item 4).

Model, provider and column names come from price files and LiteLLM JSON; file names from the user's
disk. Whatever they hold, the output has no escape sequence, no markup is interpreted, no line is
made up by a name, and no command ends in a traceback.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from statek.cli import app
from statek.cli.output import clean, literal, shown_path
from statek.metering import PriceRegistry, set_default_registry

runner = CliRunner()
SEED = "PROVIDER,MODEL_FAMILY,MODEL,INPUT_PRICE_PER_M,INPUT_PRICE_PER_CACHED_M,OUTPUT_PRICE_PER_M"
CPU_BOUND = 3.0  # seconds of this process's CPU for one command on a one-row file
_SGR = re.compile(r"\x1b\[[0-9;]*m")
# What a terminal acts on: C0 controls but the line end, DEL, C1 controls, bidi overrides and isolates.
_ACTIVE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

HOSTILE = [
    "[/]",
    "[link=https://evil.example/]gpt-4o[/link]",
    "[bold red]x",
    "\x1b]8;;https://evil.example/\x07click\x1b]8;;\x07",
    "\x1b[2J\x1b[Hcleared",
    "\x07bell",
    "\x9b31mc1",
    "name\u202egnp.exe",
    "a\rOK: 100 rows",
    "\\[escaped]",
]
_hostile = st.one_of(
    st.sampled_from(HOSTILE),
    st.lists(
        st.sampled_from([*"[]/=\\\x1b\x07\x9b\r\x00\x7f\u202e", "link", "bold", "OK: ", "a"]), max_size=12
    ).map("".join),
).filter(lambda s: s.strip() and "," not in s and '"' not in s and "\n" not in s)


@pytest.fixture(autouse=True)
def shipped_only_registry() -> Iterator[None]:
    previous = set_default_registry(PriceRegistry(model_info_dir=None))
    yield
    set_default_registry(previous)


def _safe(output: str) -> None:
    assert not _ACTIVE.search(_SGR.sub("", output)), repr(output)


@given(st.text(max_size=60))
def test_clean_leaves_nothing_a_terminal_acts_on(text: str) -> None:
    cleaned = clean(text)
    assert not _ACTIVE.search(cleaned)
    assert cleaned.isprintable()
    if text.isprintable():
        assert cleaned == text
    assert literal(text).plain == cleaned  # a Text is never parsed as markup


@given(st.text(min_size=1, max_size=60))
def test_a_shown_path_is_one_printable_line(name: str) -> None:
    shown = shown_path(name)
    assert shown.isprintable() and "\n" not in shown
    if not name.isprintable():
        assert shown.startswith("'") and shown.endswith("'")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=_hostile, provider=_hostile, terminal=st.booleans())
def test_hostile_names_in_a_price_file_print_literally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str, provider: str, terminal: bool
) -> None:
    if terminal:
        monkeypatch.setenv("FORCE_COLOR", "1")
        monkeypatch.setenv("COLUMNS", "100")
    else:
        monkeypatch.delenv("FORCE_COLOR", raising=False)
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    old.write_text(f"{SEED}\n", encoding="utf-8")
    new.write_text(f"{SEED},{model}\n{provider},,{model},1,,2,x\n", encoding="utf-8")
    for command in (
        ["pricing", "show", "--file", str(new), "--no-database"],
        ["pricing", "diff", str(old), str(new)],
        ["pricing", "validate", str(new)],
        ["pricing", "cost", "--file", str(new), "--no-database"]
        + ["--provider", provider, "--model", model, "--input", "1000", "--output", "10"],
    ):
        cpu = time.process_time()
        result = runner.invoke(app, command)
        assert time.process_time() - cpu < CPU_BOUND, command  # hostile text costs no more than plain
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            command,
            repr(result.exception),
        )
        _safe(result.output)
        if not terminal and command[1] in ("show", "diff") and model.isprintable():
            assert model in result.output  # shown as typed, markup and all (piped: never folded)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=_hostile)
def test_hostile_keys_in_litellm_json_print_literally(tmp_path: Path, name: str) -> None:
    source = tmp_path / "litellm.json"
    source.write_text(
        json.dumps(
            {name: {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06}},
        )
    )
    ours = tmp_path / "ours.csv"
    ours.write_text(f"{SEED}\nopenai,,gpt-4o,2.5,1.25,10\n")
    for command in (
        ["pricing", "compare", "--file", str(ours), "--litellm", str(source)],
        ["pricing", "import-litellm", str(source)],
    ):
        result = runner.invoke(app, command)
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        if command[1] == "compare":
            _safe(result.output)


def test_a_file_name_cannot_print_a_fake_line(tmp_path: Path) -> None:
    spoof = tmp_path / "spoof\nOK: 100 rows in 1 file(s)\n.csv"
    spoof.write_text(f"{SEED}\nOPENAI,,gpt-4o,not-a-number,,10\n")
    result = runner.invoke(app, ["pricing", "validate", str(spoof)])
    assert result.exit_code == 1
    assert not any(line.startswith("OK") for line in result.output.splitlines()), result.output
    assert "spoof\\nOK: 100 rows in 1 file(s)\\n.csv'" in result.output


def test_markup_in_a_model_name_is_shown_not_run(tmp_path: Path) -> None:
    prices = tmp_path / "p.csv"
    prices.write_text(f'{SEED}\nOPENAI,,[/],1,,2\nOPENAI,,"[link=https://evil.example/]gpt-4o[/link]",1,,2\n')
    result = runner.invoke(app, ["pricing", "show", "--file", str(prices), "--no-database"])
    assert result.exit_code == 0, result.output
    assert "[/]" in result.output and "[link=https://evil.example/]gpt-4o[/link]" in result.output
