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
