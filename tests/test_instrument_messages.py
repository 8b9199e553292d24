"""What ``statek.instrument()`` says when it cannot serve, or when nothing would leave the process."""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Iterator

import pytest

import statek
from statek.exporters.setup import MetricsServerError


@pytest.fixture(autouse=True)
def no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_METRICS_EXPORTER", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    for name in ("OTEL_EXPORTER_PROMETHEUS_PORT", "OTEL_SDK_DISABLED", "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.delenv(name, raising=False)
    statek.shutdown()
    yield
    statek.shutdown()


def test_a_busy_port_names_the_port_and_what_to_do() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError) as caught:
            statek.instrument(prometheus_port=port)
    error = caught.value
    assert isinstance(error, MetricsServerError) and error.errno == errno.EADDRINUSE
    assert error.strerror and error.strerror in str(error)
    assert f"127.0.0.1:{port}" in str(error) and "prometheus_port=0" in str(error)
    assert statek.instrument(prometheus_port=0).prometheus_port  # nothing was left half set up


def test_a_bare_instrument_warns_that_nothing_is_exported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="statek"):
        statek.instrument()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("no exporter set up" in m and "prometheus_port=9469" in m for m in warnings), warnings


def test_no_warning_when_something_is_exported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="statek"):
        statek.instrument(prometheus_port=0)
    assert not any("no exporter" in r.getMessage() for r in caplog.records)
