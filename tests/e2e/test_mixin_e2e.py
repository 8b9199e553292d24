"""The Prometheus mixin under ``dashboards/mixin/`` checked and unit-tested by Debian's ``promtool``.

``promtool check rules`` validates both rule files, ``promtool test rules`` runs
``dashboards/mixin/tests/statek.test.yml`` (every alert firing and not firing, recording rules to the
exact value), and ``promtool check config`` loads the example ``dashboards/prometheus.yml`` with its
``rule_files``. A copy with a weakened alert must fail the unit tests. Without ``promtool`` these
tests fail with the install command; they never skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import PROMETHEUS_INSTALL

pytestmark = pytest.mark.e2e

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
MIXIN = DASHBOARDS / "mixin"
RULE_FILES = ("statek.rules.yml", "statek.alerts.yml")


def promtool(*args: str, cwd: Path = MIXIN) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool") or "/usr/bin/promtool"
    if not os.access(binary, os.X_OK):
        pytest.fail(f"promtool is missing (Debian's prometheus package has it): {PROMETHEUS_INSTALL}")
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_promtool_check_rules_accepts_the_mixin() -> None:
    result = promtool("check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 17 rules found" in result.stdout and "SUCCESS: 8 rules found" in result.stdout


@pytest.mark.parametrize("tests", ["tests/statek.test.yml", "tests/statek.scale.test.yml"])
def test_promtool_unit_tests_pass(tests: str) -> None:
    result = promtool("test", "rules", tests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_weakened_alert_fails_the_unit_tests(tmp_path: Path) -> None:
    copy = tmp_path / "mixin"
    shutil.copytree(MIXIN, copy)
    alerts = copy / "statek.alerts.yml"
    text = alerts.read_text()
    assert "job_provider_model:statek_requests_errors:ratio_rate5m > 0.05" in text
    alerts.write_text(text.replace("ratio_rate5m > 0.05", "ratio_rate5m > 0.5"))
    result = promtool("test", "rules", "tests/statek.test.yml", cwd=copy)
    assert result.returncode != 0
    assert "StatekProviderErrorRateHigh" in result.stdout + result.stderr


def test_the_example_prometheus_config_loads_the_rules() -> None:
    result = promtool("check", "config", "prometheus.yml", cwd=DASHBOARDS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 17 rules found" in result.stdout and "SUCCESS: 8 rules found" in result.stdout
