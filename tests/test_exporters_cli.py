"""``statek metrics``: the catalogue listing, and ``serve`` answering a real scrape with simulated traffic."""

from __future__ import annotations

import socket
import threading
import time

import httpx
from typer.testing import CliRunner

from statek.cli import app
from statek.instruments import PROMETHEUS_SERIES


def test_catalogue_lists_every_prometheus_series() -> None:
    result = CliRunner().invoke(app, ["metrics", "catalogue"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert all(series in result.output for series in PROMETHEUS_SERIES)


def test_serve_exposes_simulated_traffic_until_it_stops() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outcome: dict[str, object] = {}
    args = ["metrics", "serve", "--port", str(port), "--traffic", "40", "--duration", "2"]
    runner = threading.Thread(target=lambda: outcome.update(result=CliRunner().invoke(app, args)))
    runner.start()
    text = ""
    for _ in range(100):  # until the first simulated calls show up (bounded; not a timing assertion)
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        except httpx.TransportError:
            text = ""
        if 'statek_requests_total{gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini"' in text:
            break
        time.sleep(0.05)
    runner.join()
    result = outcome["result"]
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert 'statek_tokens_total{gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini"' in text
    assert 'service_name="statek"' in text
    assert "telemetry flushed" in result.output  # type: ignore[attr-defined]


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"statek {version('statek')}\n"


def test_catalogue_json_is_the_catalogue() -> None:
    import json

    from statek.instruments import CATALOGUE

    result = CliRunner().invoke(app, ["metrics", "catalogue", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["instrument"] for r in rows] == [spec.name for spec in CATALOGUE]
    cost = next(r for r in rows if r["instrument"] == "statek.cost.usd")
    assert cost["unit"] == "{USD}" and cost["prometheus_series"] == ["statek_cost_usd_total"]


def test_catalogue_piped_is_one_line_per_instrument_never_split() -> None:
    from statek.instruments import CATALOGUE

    result = CliRunner().invoke(app, ["metrics", "catalogue"], env={"COLUMNS": "40"})  # narrow, not a TTY
    lines = result.output.splitlines()
    assert result.exit_code == 0 and len(lines) == 1 + len(CATALOGUE)
    assert all(len(line.split("\t")) == 5 for line in lines)
    assert "│" not in result.output and "┃" not in result.output


def test_serve_on_a_taken_port_is_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["metrics", "serve", "--port", str(port)])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "Address already in use" in result.output
    assert "Traceback" not in result.output
