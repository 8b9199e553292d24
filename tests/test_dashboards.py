"""The Grafana dashboard only asks Prometheus for series that statek really emits.

The metric names in every PromQL expression (panel targets and template-variable queries) are parsed
out and checked against ``statek.instruments.PROMETHEUS_SERIES``, the one instrument catalogue; a
rename there fails here instead of silently emptying a panel. Whether the queries return data on a
real Prometheus is ``tests/e2e/test_dashboards_e2e.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from statek.exporters.prometheus import DEFAULT_PORT
from statek.instruments import PROMETHEUS_SERIES

DASHBOARDS = Path(__file__).resolve().parents[1] / "dashboards"
DASHBOARD_FILE = DASHBOARDS / "statek.json"

# Words that can stand bare in PromQL without being a metric name.
_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "atan2",
        "inf",
        "nan",
    }
)
# A grouping/matching clause lists label names, not metrics.
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_TOKEN = re.compile(
    r"(?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<var>\$\{?\w+\}?)"
    r"|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)"
    r"|(?P<other>\S)"
)
_NAME_MATCHER = re.compile(r'__name__\s*=\s*"([^"]+)"')
_MODIFIER = re.compile(r"\b(?:offset\s+-?|@\s*)[0-9][0-9.a-z]*", re.IGNORECASE)  # offset 5m, @ 1700000000


def metric_names(expr: str) -> set[str]:
    """Every metric name a PromQL expression selects.

    A metric is an identifier that is not a function call (followed by ``(``), not a keyword, not a
    label name inside ``{...}`` or a ``by (...)``-style list, and not inside a string or a ``[...]``
    range; plus any ``{__name__="..."}`` matcher.
    """
    names = set(_NAME_MATCHER.findall(expr))
    text = _LABEL_LIST.sub(" ", _STRING.sub('""', expr))
    text = re.sub(r"\{[^}]*\}", "{}", text)  # label matchers: names and values, never metrics
    text = re.sub(r"\[[^\]]*\]", "[]", text)  # ranges and subqueries: durations and variables
    text = _MODIFIER.sub(" ", text)
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(text)]
    for i, (kind, value) in enumerate(tokens):
        if kind != "ident" or value.lower() in _KEYWORDS:
            continue
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if following == "(":
            continue  # a function such as rate( or histogram_quantile(
        names.add(value)
    return names


def label_values_metric(query: str) -> set[str]:
    """The metric of a Grafana ``label_values(metric{...}, label)`` variable query."""
    match = re.fullmatch(r"\s*label_values\((?P<selector>.*),\s*(?P<label>\w+)\s*\)\s*", query, re.DOTALL)
    assert match, f"not a label_values(metric, label) query: {query!r}"
    return metric_names(match["selector"])


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text())


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # panels inside collapsed rows


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """``(panel title / refId, expr)`` for every query target of every panel."""
    return [
        (f"{panel['title']} / {target['refId']}", target["expr"])
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def variable_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            out.append((var["name"], query))
    return out


# ----------------------------------------------------------------------------- the parser itself


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("statek_tokens_total", {"statek_tokens_total"}),
        (
            'sum by (gen_ai_token_type) (rate(statek_tokens_total{gen_ai_token_type="input"}[5m]))',
            {"statek_tokens_total"},
        ),
        (
            "histogram_quantile(0.95, sum by (le) (rate(gen_ai_client_operation_duration_seconds_bucket[$__rate_interval])))",
            {"gen_ai_client_operation_duration_seconds_bucket"},
        ),
        (
            "a_total / ignoring(error_type) group_left sum without (x) (b_total) * 1e3 + c offset 5m",
            {"a_total", "b_total", "c"},
        ),
        ('(sum(x{l="by (y)"}) or vector(0)) / on (z) y_count', {"x", "y_count"}),
        ('{__name__="statek_bytes_total", network_io_direction="receive"}', {"statek_bytes_total"}),
        (
            "rate(statek_cost_usd_total[5m:1m]) > bool 0 and statek_requests_total",
            {"statek_cost_usd_total", "statek_requests_total"},
        ),
    ],
)
def test_metric_names_are_parsed_out_of_promql(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected


# ----------------------------------------------------------------------------- the dashboard


def test_catalogue_is_the_pinned_one() -> None:
    # The dashboard is written against these; if the catalogue drops one, a panel goes blank.
    assert {
        "statek_cost_usd_total",
        "statek_tokens_total",
        "statek_requests_total",
        "statek_bytes_total",
        "statek_retries_total",
        "gen_ai_client_operation_duration_seconds_bucket",
        "gen_ai_client_token_usage_bucket",
    } <= PROMETHEUS_SERIES


def test_every_panel_query_names_only_emitted_series() -> None:
    queries = panel_queries(load_dashboard())
    assert len(queries) >= 20
    for where, expr in queries:
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        unknown = names - PROMETHEUS_SERIES
        assert not unknown, f"{where}: {sorted(unknown)} not in statek.instruments.PROMETHEUS_SERIES"


def test_a_renamed_metric_would_be_caught() -> None:
    where, expr = panel_queries(load_dashboard())[0]
    broken = expr.replace("statek_", "statek_old_")
    assert metric_names(broken) - PROMETHEUS_SERIES, where


def test_variable_queries_name_only_emitted_series() -> None:
    queries = dict(variable_queries(load_dashboard()))
    assert set(queries) == {"job", "instance", "provider", "model"}
    for name, query in queries.items():
        metrics = label_values_metric(query)
        assert metrics and metrics <= PROMETHEUS_SERIES, (name, query)
    assert queries["job"].endswith(", job)")
    assert queries["instance"].endswith(", instance)") and "$job" in queries["instance"]
    assert "gen_ai_provider_name" in queries["provider"] and "$instance" in queries["provider"]
    assert "gen_ai_request_model" in queries["model"] and "$provider" in queries["model"]


def test_dashboard_covers_every_required_view() -> None:
    dashboard = load_dashboard()
    exprs = " ".join(expr for _, expr in panel_queries(dashboard))
    for needed in (
        "statek_cost_usd_total",
        "statek_tokens_total",
        'statek_token_type="cache_read"',
        "statek_outcome",
        "error_type",
        'statek_cost_status="unpriced"',
        "statek_bytes_total",
        "topk(",
        "gen_ai_client_operation_duration_seconds_bucket",
    ):
        assert needed in exprs, needed
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (le) (rate(gen_ai_client_operation_duration" in exprs
    units = {p["fieldConfig"]["defaults"].get("unit") for p in panels(dashboard) if p["type"] != "row"}
    assert {"currencyUSD", "s", "percentunit", "count:tokens/s", "Bps", "bytes"} <= units


def test_dashboard_is_portable_grafana_json() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    assert "id" not in dashboard or dashboard["id"] is None  # an id pins it to one Grafana instance
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    for name in ("job", "instance", "provider", "model"):
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        refs = [panel["datasource"], *(t["datasource"] for t in panel["targets"])]
        for ref in refs:
            assert ref == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            # Every selector is narrowed by the job, instance, provider and model variables.
            assert target["expr"].count("{") == target["expr"].count('job=~"$job", instance=~"$instance"')
            assert target["expr"].count("{") == target["expr"].count('gen_ai_provider_name=~"$provider"')
            assert target["expr"].count("{") == target["expr"].count('gen_ai_request_model=~"$model"')
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24


def test_provisioning_points_at_the_dashboard() -> None:
    providers = yaml.safe_load((DASHBOARDS / "provisioning" / "dashboards.yaml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    # The documented mount puts the repository's dashboards/ folder at this path.
    assert provider["options"]["path"].rstrip("/").endswith("/statek")
    docs = (DASHBOARDS.parent / "docs" / "dashboards.md").read_text()
    assert provider["options"]["path"] in docs and "dashboards/statek.json" in docs

    sources = yaml.safe_load((DASHBOARDS / "provisioning" / "datasources.yaml").read_text())
    (source,) = (s for s in sources["datasources"] if s["type"] == "prometheus")
    assert source["url"].startswith("http")


def test_example_prometheus_config_scrapes_the_default_metrics_port() -> None:
    config = yaml.safe_load((DASHBOARDS / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"127.0.0.1:{DEFAULT_PORT}"]
    assert DEFAULT_PORT != 9464  # OpenTelemetry's Prometheus exporter's default
    assert config["rule_files"] == ["mixin/statek.rules.yml", "mixin/statek.alerts.yml"]


def test_statek_tokens_never_puts_statek_values_on_the_standard_token_type() -> None:
    # gen_ai.token.type allows input/output only; cache_read & co. are statek.token.type values.
    for where, expr in panel_queries(load_dashboard()):
        if "statek_tokens_total" in expr:
            assert "gen_ai_token_type" not in expr, where


def test_cumulative_cost_survives_restarts_and_cost_and_latency_show_exemplars() -> None:
    dashboard = load_dashboard()
    by_title = {p["title"]: p for p in panels(dashboard)}
    cumulative = next(p for t, p in by_title.items() if t.startswith("Cumulative cost"))
    (target,) = cumulative["targets"]
    assert "increase(statek_cost_usd_total" in target["expr"]  # never the raw counter: it drops at restarts
    assert cumulative["transformations"][0]["options"]["mode"] == "cumulativeFunctions"
    with_exemplars = {
        p["title"] for p in panels(dashboard) if any(t.get("exemplar") for t in p.get("targets", []))
    }
    assert any("Cost rate" in t for t in with_exemplars) and any("atency" in t for t in with_exemplars)
    sources = yaml.safe_load((DASHBOARDS / "provisioning" / "datasources.yaml").read_text())["datasources"]
    prometheus = next(s for s in sources if s["type"] == "prometheus")
    traces = next(s for s in sources if s["type"] != "prometheus")
    (destination,) = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    assert destination == {"name": "trace_id", "datasourceUid": traces["uid"]}
    assert dashboard["schemaVersion"] >= 41


# ----------------------------------------------------------------------------- the mixin
MIXIN = DASHBOARDS / "mixin"


def _rules() -> list[dict[str, Any]]:
    out = []
    for name in ("statek.rules.yml", "statek.alerts.yml"):
        for group in yaml.safe_load((MIXIN / name).read_text())["groups"]:
            out.extend(group["rules"])
    return out


def test_mixin_rules_read_only_emitted_series_or_their_own_records() -> None:
    rules = _rules()
    recorded = {r["record"] for r in rules if "record" in r}
    for rule in rules:
        names = metric_names(rule["expr"]) - {"up"}
        # the per-job and per-tenant budgets a deployment records itself (statek.rules.yml shows how)
        names -= {"job:statek_budget_usd_per_day", "tenant:statek_budget_usd_per_day"}
        unknown = names - PROMETHEUS_SERIES - recorded
        assert not unknown, (rule.get("record") or rule.get("alert"), sorted(unknown))


def test_mixin_has_the_required_alerts_each_with_severity_and_summary() -> None:
    alerts = {r["alert"]: r for r in _rules() if "alert" in r}
    assert set(alerts) == {
        "StatekCostBurnRateHigh",
        "StatekUnpricedTrafficHigh",
        "StatekProviderErrorRateHigh",
        "StatekLatencyP95High",
        "StatekPriceDrift",
        "StatekTargetDown",
        "StatekTenantCostBurnRateHigh",
        "StatekMetricsStopped",
    }
    for name, alert in alerts.items():
        assert alert["labels"]["severity"] in {"info", "warning", "critical"}, name
        assert alert["annotations"]["summary"] and alert["for"], name
    assert "job:statek_budget_usd_per_day:effective" in alerts["StatekCostBurnRateHigh"]["expr"]
    effective = next(r for r in _rules() if r.get("record") == "job:statek_budget_usd_per_day:effective")
    assert "statek:budget_usd_per_day" in effective["expr"]
    assert (
        "no_usage"
        in next(r for r in _rules() if r.get("record", "").endswith("unpriced:ratio_rate1h"))["expr"]
    )
