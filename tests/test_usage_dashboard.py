"""The usage dashboard (dashboards/statek-usage.json) reads only what the Postgres ledger has; its SQL is
run against a real Postgres in tests/e2e/test_ledger_e2e.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from statek.ledger.postgres import DDL

DASHBOARDS = Path(__file__).resolve().parents[1] / "dashboards"
SQL_WORDS = {
    "select", "from", "where", "and", "or", "is", "not", "null", "as", "group", "by", "order", "desc",
    "asc", "nulls", "last", "limit", "in", "filter", "distinct", "count", "sum", "min", "max", "coalesce",
    "between", "floor", "extract", "epoch",
}  # fmt: skip


def _columns() -> set[str]:
    return set(re.findall(r"^  (\w+) ", DDL, re.MULTILINE))


def _unknown_identifiers(sql: str) -> set[str]:
    sql = re.sub(r"'[^']*'", "''", sql)  # string literals
    sql = re.sub(r"\$\{?\w+\}?", "", sql)  # Grafana macros and variables
    aliases = set(re.findall(r"\bAS (\w+)", sql, re.IGNORECASE))
    words = set(re.findall(r"\b[a-zA-Z_]\w*\b", sql))
    tables = {"statek_calls", "statek_jobs"}
    return {w for w in words if w.lower() not in SQL_WORDS} - aliases - tables - _columns()


def test_every_panel_reads_only_ledger_columns_through_the_ledger_variable() -> None:
    dashboard = json.loads((DASHBOARDS / "statek-usage.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["ledger"]["query"] == "grafana-postgresql-datasource"
    queries = [variables["tenant"]["query"]]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${ledger}"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${ledger}" and target["rawQuery"]
            queries.append(target["rawSql"])
    for sql in queries:
        assert _unknown_identifiers(sql) == set(), sql
    titles = {p["title"] for p in dashboard["panels"]}
    assert {"Cost per tenant per day", "Top jobs", "Top models", "Unpriced calls", "Failed calls"} <= titles


def test_a_misspelt_column_would_be_caught() -> None:
    assert _unknown_identifiers("SELECT sum(cost_usd), sum(costs) AS c FROM statek_calls") == {"costs"}


def test_the_ledger_datasource_is_provisioned_without_a_password_in_the_file() -> None:
    provisioned = yaml.safe_load((DASHBOARDS / "provisioning" / "ledger-datasource.yaml").read_text())
    (source,) = provisioned["datasources"]
    assert source["type"] == "grafana-postgresql-datasource"
    assert "password" not in source.get("jsonData", {})  # only from the environment, in secureJsonData
