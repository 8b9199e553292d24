"""``settings.values_of``: the fast reader of named settings agrees with ``environment()`` (the process
environment first, then ``.env``), whatever the environment holds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statek import Budget, Job
from statek.settings import environment, values_of

NAMES = ("STATEK_TEST_VALUES_A", "STATEK_TEST_VALUES_B", "STATEK_TEST_VALUES_C")
_value = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00\"'\\#$"), max_size=12
)
_setting = st.none() | _value


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(in_env=st.tuples(_setting, _setting, _setting), in_file=st.tuples(_setting, _setting, _setting))
def test_values_of_reads_what_environment_reads(
    workdir: Path, in_env: tuple[str | None, ...], in_file: tuple[str | None, ...]
) -> None:
    dotenv = workdir / ".env"
    lines = [f'{name}="{value}"' for name, value in zip(NAMES, in_file) if value is not None]
    if lines:
        dotenv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif dotenv.exists():
        dotenv.unlink()
    try:
        for name, value in zip(NAMES, in_env):
            if value is not None:
                os.environ[name] = value
        expected = tuple(environment().get(name, "") for name in NAMES)
        assert values_of(NAMES) == expected
        # the environment wins over the file; an unset name falls back to it, then to ""
        for got, env, file in zip(values_of(NAMES), in_env, in_file):
            assert got == (env if env is not None else file if file is not None else "")
    finally:
        for name in NAMES:
            os.environ.pop(name, None)


def test_values_of_works_when_os_environ_is_replaced(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "environ", {NAMES[0]: "plain"})
    assert values_of(NAMES) == ("plain", "", "")


def test_a_job_takes_a_budget_set_in_the_environment_at_once(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Job("before").budget is None
    monkeypatch.setenv("STATEK_BUDGET_USD", "2.50")
    job = Job("after")
    assert job.budget is not None and job.budget.budget == Budget(usd="2.50")
    monkeypatch.setenv("STATEK_BUDGET_USD", "")
    assert Job("cleared").budget is None
