"""Bad command-line arguments (issue 10, item 14): one line, a non-zero exit, no traceback, no hang.

Run in-process with typer's runner: an exception escaping the command would be ``result.exception``
(what the console script prints as a traceback); a hang would hold the test (``metrics serve`` would
serve forever, ``--duration nan`` used to run forever).
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from statek.cli import app

CASES = [
    (["demo", "--duration", "nan"], "--duration must be a positive, finite number"),
    (["demo", "--duration", "inf"], "--duration must be a positive, finite number"),
    (["demo", "--jobs", "1", "--otlp-endpoint", "notaurl"], "OTLP endpoint 'notaurl' is not a URL"),
    (["metrics", "serve", "--port", "99999"], "prometheus_port must be from 0 to 65535"),
    (
        ["metrics", "serve", "--port", "0", "--otlp-endpoint", "notaurl"],
        "OTLP endpoint 'notaurl' is not a URL",
    ),
    (["metrics", "serve", "--port", "0", "--traffic", "inf"], "--traffic must be a finite number"),
]


@pytest.mark.parametrize(("arguments", "message"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_a_bad_argument_is_one_line_and_a_non_zero_exit(
    arguments: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, arguments)
    output = result.output.strip()
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output
    assert message in output
    assert len(output.splitlines()) == 1, output
