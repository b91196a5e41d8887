"""Static checks of the bundled stack: the real tools' validators, and the cross-file promises (names,
uids, mounts, ports) that no single validator sees."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_tokens import semconv

from .conftest import (
    ALERTMANAGER_CONFIG,
    PROMETHEUS_CONFIG,
    REPO,
    RULES_DIR,
    binary_version,
    find_binary,
    in_ci,
)

pytestmark = pytest.mark.stack

RULES_FILE = RULES_DIR / "otel_tokens.rules.yml"
RULES_TEST = REPO / "prometheus" / "tests" / "otel_tokens.rules.test.yml"
COMPOSE_FILE = REPO / "docker-compose.yml"
COLLECTOR_CONFIG = REPO / "collector_config" / "otelcol.yaml"
TEMPO_CONFIG = REPO / "tempo" / "tempo.yaml"
DATASOURCES = REPO / "grafana" / "provisioning" / "datasources" / "datasources.yml"
DASHBOARD_PROVIDERS = REPO / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
# alertmanager.yml's webhook URL, which docker-compose.yml swaps for $ALERTMANAGER_WEBHOOK_URL.
WEBHOOK_PLACEHOLDER = "http://host.docker.internal:5001/otel-tokens-alerts"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)


def iter_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


# -- names: everything the configs query must come from otel_tokens/semconv.py ---------------------

# Instrument kind and unit of each metric; the Prometheus names follow from them.
INSTRUMENTS = {
    semconv.METRIC_TOKEN_USAGE: ("histogram", semconv.UNIT_TOKEN),
    semconv.METRIC_OPERATION_DURATION: ("histogram", semconv.UNIT_SECONDS),
    semconv.METRIC_TIME_TO_FIRST_CHUNK: ("histogram", semconv.UNIT_SECONDS),
    semconv.METRIC_OPERATION_COST: ("histogram", semconv.UNIT_COST),
    semconv.METRIC_COST_USD: ("counter", semconv.UNIT_USD),
    semconv.METRIC_TOKEN_COUNT: ("counter", semconv.UNIT_TOKEN),
    semconv.METRIC_UNPRICED_CALLS: ("counter", semconv.UNIT_CALL),
    semconv.METRIC_COST_INCOMPLETE_CALLS: ("counter", semconv.UNIT_CALL),
    semconv.METRIC_BUDGET_LIMIT: ("gauge", semconv.UNIT_USD),
    semconv.METRIC_BUDGET_SPENT: ("gauge", semconv.UNIT_USD),
    semconv.METRIC_BUDGET_UTILIZATION: ("gauge", semconv.UNIT_RATIO),
    semconv.METRIC_STORE_ERRORS: ("counter", semconv.UNIT_ERROR),
}


def prometheus_names(name: str, kind: str, unit: str) -> set[str]:
    """OTLP -> Prometheus with UnderscoreEscapingWithSuffixes (and the Python Prometheus exporter)."""
    base = name.replace(".", "_")
    if not unit.startswith("{"):  # annotations such as {token} add no suffix
        base += "_" + {"s": "seconds"}.get(unit, unit)
    if kind == "counter":
        return {base + "_total"}
    if kind == "histogram":
        return {base + suffix for suffix in ("_bucket", "_sum", "_count")}
    return {base}


def recording_rule_names() -> set[str]:
    return {rule["record"] for group in load_yaml(RULES_FILE)["groups"] for rule in group["rules"] if "record" in rule}


KNOWN_METRICS = set().union(*(prometheus_names(n, *spec) for n, spec in INSTRUMENTS.items())) | {"ALERTS", "up"}
KNOWN_LABELS = {
    key.replace(".", "_")
    for key in (*semconv.METRIC_ATTRIBUTE_KEYS, semconv.GEN_AI_TOKEN_TYPE, semconv.OTEL_TOKENS_BUDGET_WINDOW,
                semconv.OTEL_TOKENS_BUDGET_SCOPE, semconv.OTEL_TOKENS_BUDGET_NAME, semconv.OTEL_TOKENS_STORE_KIND)
} | {"job", "instance", "le", "otel_scope_name", "alertname", "alertstate", "severity", "__name__"}
PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
                "bool", "inf", "nan", "Inf", "NaN"}


def metric_names(expr: str) -> set[str]:
    """Series names a PromQL expression reads (a small lexer, enough for our own expressions)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\boffset\s+\S+", "", expr)
    names = set(re.findall(r"(?<![\w:$])[A-Za-z_:][\w:]*\b(?!\s*\()", expr))
    return names - PROMQL_WORDS


def label_names(expr: str) -> set[str]:
    names = set()
    for matchers in re.findall(r"\{([^}]*)\}", re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)):
        names.update(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
    for grouping in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr):
        names.update(n.strip() for n in grouping.split(",") if n.strip())
    return names


def test_metric_name_lexer() -> None:
    expr = ('histogram_quantile(0.95, sum by (le) (rate(a_bucket{job=~"$service"}[$__rate_interval]))) '
            '/ on() group_left otel_tokens:x:rate5m offset 5m > 3 * b_total and vector(1)')
    assert metric_names(expr) == {"a_bucket", "otel_tokens:x:rate5m", "b_total"}
    assert label_names(expr) == {"le", "job"}


def all_rule_exprs() -> list[tuple[str, str]]:
    return [(rule.get("alert") or rule["record"], rule["expr"])
            for group in load_yaml(RULES_FILE)["groups"] for rule in group["rules"]]


def all_dashboard_exprs() -> list[tuple[str, str]]:
    out = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in iter_panels(dashboard):
            for target in panel.get("targets", []):
                out.append((f"{path.name}: {panel['title']}", target.get("expr", "")))
        for annotation in dashboard["annotations"]["list"]:
            if "expr" in annotation:
                out.append((f"{path.name}: annotation {annotation['name']}", annotation["expr"]))
        for variable in dashboard["templating"]["list"]:
            query = variable.get("query")
            if variable.get("type") == "query":
                text = query["query"] if isinstance(query, dict) else query
                inner = re.match(r"label_values\((.*),\s*(\w+)\)$", text.strip(), re.S)
                assert inner, f"{path.name}: variable {variable['name']} is not a label_values() query"
                out.append((f"{path.name}: variable {variable['name']}", f"sum by ({inner[2]}) ({inner[1]})"))
    return out


@pytest.mark.parametrize(("where", "expr"), [pytest.param(w, e, id=w) for w, e in all_rule_exprs() + all_dashboard_exprs()])
def test_queries_use_semconv_names(where: str, expr: str) -> None:
    unknown_metrics = metric_names(expr) - KNOWN_METRICS - recording_rule_names()
    assert not unknown_metrics, f"{where} reads series not derived from otel_tokens/semconv.py: {unknown_metrics}"
    unknown_labels = label_names(expr) - KNOWN_LABELS
    assert not unknown_labels, f"{where} uses labels not derived from otel_tokens/semconv.py: {unknown_labels}"


def test_annotations_and_legends_use_known_labels() -> None:
    rules_text = RULES_FILE.read_text()
    assert set(re.findall(r"\$labels\.(\w+)", rules_text)) <= KNOWN_LABELS
    for path in DASHBOARDS:
        legends = re.findall(r"\{\{\s*(\w+)\s*\}\}", path.read_text())
        assert set(legends) <= KNOWN_LABELS, path.name


# -- Prometheus -------------------------------------------------------------------------------------


def test_prometheus_config_passes_promtool(promtool_bin: str, tmp_path: Path) -> None:
    config = PROMETHEUS_CONFIG
    if binary_version(promtool_bin)[0] < 3:
        # Prometheus 2 has no otlp: block (the stack runs Prometheus 3); check everything else, and the
        # block's shape in test_prometheus_otlp_settings.
        copy = load_yaml(PROMETHEUS_CONFIG)
        copy.pop("otlp")
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump(copy, sort_keys=False))
        shutil.copytree(RULES_DIR, tmp_path / "rules")
        warnings.warn(f"{promtool_bin} is Prometheus 2: the otlp: block was not checked by promtool; "
                      "set PROMTOOL_BIN to a Prometheus 3 promtool for the full check", stacklevel=1)
    result = run([promtool_bin, "check", "config", str(config)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_prometheus_otlp_settings() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    otlp = config["otlp"]
    # The names in the dashboards and rules (otel_tokens_cost_USD_total) depend on it.
    assert otlp["translation_strategy"] == "UnderscoreEscapingWithSuffixes"
    assert "service.name" in otlp["promote_resource_attributes"]
    assert config["rule_files"] == ["rules/*.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_rules_pass_promtool(promtool_bin: str) -> None:
    result = run([promtool_bin, "check", "rules", str(RULES_FILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass(promtool_bin: str) -> None:
    result = run([promtool_bin, "test", "rules", str(RULES_TEST)], cwd=RULES_TEST.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def alerting_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES_FILE)["groups"] for rule in group["rules"] if "alert" in rule]


def test_the_promised_alerts_exist() -> None:
    assert {rule["alert"] for rule in alerting_rules()} >= {
        "LLMAgentBudgetWarning", "LLMAgentBudgetExceeded", "LLMProjectedDailySpendHigh", "LLMSpendBurnRateHigh",
        "LLMUnpricedModelCalls", "LLMUsageNotMetered", "LLMErrorRateHigh", "LLMTokenSpike",
        "LLMBudgetWarning", "LLMBudgetExceeded", "LLMBudgetStoreErrors",
    }
    assert "otel_tokens:daily_spend_limit_usd" in recording_rule_names()


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda r: r["alert"])
def test_alert_has_severity_and_annotations(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"].strip()
    assert rule["annotations"]["description"].strip()
    if rule["alert"].startswith("LLMAgentBudget"):
        # Aggregations must keep the agent, or one alert would cover every agent.
        assert "gen_ai_agent_name" in label_names(rule["expr"])
    elif rule["alert"].startswith("LLMBudget") and rule["alert"] != "LLMBudgetStoreErrors":
        # The same for the other scopes: one alert per scope and name.
        assert {"otel_tokens_budget_scope", "otel_tokens_budget_name"} <= label_names(rule["expr"])


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda r: r["alert"])
def test_alert_has_firing_and_quiet_unit_tests(rule: dict[str, Any]) -> None:
    cases = [case for test in load_yaml(RULES_TEST)["tests"] for case in test.get("alert_rule_test", [])
             if case["alertname"] == rule["alert"]]
    assert any(case.get("exp_alerts") for case in cases), f"no firing case for {rule['alert']}"
    assert any(not case.get("exp_alerts") for case in cases), f"no quiet case for {rule['alert']}"


# -- Alertmanager -----------------------------------------------------------------------------------


def test_alertmanager_config_passes_amtool(amtool_bin: str) -> None:
    result = run([amtool_bin, "check-config", str(ALERTMANAGER_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_routes_by_severity() -> None:
    config = load_yaml(ALERTMANAGER_CONFIG)
    route = config["route"]
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    assert receivers[route["receiver"]]["webhook_configs"][0]["url"] == WEBHOOK_PLACEHOLDER
    severities = {matcher for child in route["routes"] for matcher in child["matchers"]}
    assert severities == {'severity="critical"', 'severity="warning"'}
    assert all(child["receiver"] in receivers for child in route["routes"])
    # Budget alerts for different agents are separate notifications.
    assert "gen_ai_agent_name" in route["group_by"]


def test_compose_webhook_url_substitution(amtool_bin: str, tmp_path: Path) -> None:
    """Run the Alertmanager container's start script against a copy and check the result."""
    service = load_yaml(COMPOSE_FILE)["services"]["alertmanager"]
    assert service["entrypoint"] == ["/bin/sh", "-c"]
    script = service["command"][0].replace("$$", "$")  # what compose hands to the container
    assert WEBHOOK_PLACEHOLDER in script
    script = (script.replace("/etc/alertmanager/alertmanager.yml", str(ALERTMANAGER_CONFIG))
              .replace("/tmp/alertmanager.yml", str(tmp_path / "out.yml")))
    script = re.sub(r"(?m)^exec .*$", "", script)
    url = "https://hooks.example.com/services/a|b?x=1&y=\\2"
    result = run(["sh", "-c", script], env={"ALERTMANAGER_WEBHOOK_URL": url, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    rendered = load_yaml(tmp_path / "out.yml")
    assert rendered["receivers"][0]["webhook_configs"][0]["url"] == url
    check = run([amtool_bin, "check-config", str(tmp_path / "out.yml")])
    assert check.returncode == 0, check.stdout + check.stderr


# -- docker-compose.yml -----------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


def test_compose_has_the_stack() -> None:
    services = compose()["services"]
    assert set(services) == {"otel-collector", "prometheus", "alertmanager", "tempo", "grafana", "demo"}
    assert services["demo"]["profiles"] == ["demo"]


@pytest.mark.parametrize("name", sorted(compose()["services"]))
def test_compose_service_is_safe_and_pinned(name: str) -> None:
    service = compose()["services"][name]
    image, _, tag = service["image"].rpartition(":")
    assert image and tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: pin {service['image']}"
    for port in service.get("ports", []):
        assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is not bound to 127.0.0.1"
    if name not in {"otel-collector", "demo"}:  # see the comments in docker-compose.yml
        assert service["healthcheck"]["test"], f"{name} has no healthcheck"


def test_compose_mounts_exist_and_volumes_are_declared() -> None:
    config = compose()
    named = set(config["volumes"])
    for name, service in config["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name} mounts {source}, which is not in the repository"
            else:
                assert source in named, f"{name} uses undeclared volume {source}"
    used = {v.split(":")[0] for s in config["services"].values() for v in s.get("volumes", [])}
    assert named <= used


def mount_target(service: dict[str, Any], source: str) -> str:
    for volume in service["volumes"]:
        parts = volume.split(":")
        if parts[0] == source:
            return parts[1]
    raise AssertionError(f"{source} is not mounted")


def test_compose_wiring_matches_the_configs() -> None:
    services = compose()["services"]
    collector = services["otel-collector"]
    assert collector["command"] == [f"--config={mount_target(collector, './collector_config/otelcol.yaml')}"]
    assert {p.split(":")[-1] for p in collector["ports"]} == {"4317", "4318"}

    prometheus = services["prometheus"]
    assert "--web.enable-otlp-receiver" in prometheus["command"]
    config_path = mount_target(prometheus, "./prometheus/prometheus.yml")
    assert f"--config.file={config_path}" in prometheus["command"]
    # rule_files is relative to the config file.
    assert mount_target(prometheus, "./prometheus/rules") == str(Path(config_path).parent / "rules")
    assert prometheus["image"].split(":")[1].startswith("v3.")

    grafana = services["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    provider_path = load_yaml(DASHBOARD_PROVIDERS)["providers"][0]["options"]["path"]
    assert mount_target(grafana, "./grafana/dashboards") == provider_path
    assert mount_target(grafana, "./grafana/provisioning") == "/etc/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (REPO / "grafana" / "dashboards" / Path(home).name).is_file()

    tempo = services["tempo"]
    assert tempo["command"] == [f"-config.file={mount_target(tempo, './tempo/tempo.yaml')}"]
    data = mount_target(tempo, "tempo-data")
    storage = load_yaml(TEMPO_CONFIG)["storage"]["trace"]
    assert storage["wal"]["path"].startswith(data + "/") and storage["local"]["path"].startswith(data + "/")

    demo = " ".join(services["demo"]["command"])
    assert "otel-tokens demo --otlp http://otel-collector:4318 --loop" in demo


def compose_cli() -> list[str] | None:
    found = find_binary("DOCKER_COMPOSE_BIN", "docker-compose")
    if found:
        return [found]
    docker = shutil.which("docker")
    if docker and run([docker, "compose", "version"]).returncode == 0:
        return [docker, "compose"]
    return None


def test_compose_file_passes_compose_config(tmp_path: Path) -> None:
    cli = compose_cli()
    if cli is None:
        pytest.skip("no docker compose CLI (docker compose or docker-compose); the structural checks above still ran")
    base = [*cli, "--project-directory", str(REPO), "-f", str(COMPOSE_FILE)]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path)}
    ok = run([*base, "--profile", "demo", "config", "--quiet"], env={**env, "GRAFANA_ADMIN_PASSWORD": "x"})
    assert ok.returncode == 0, ok.stderr
    # No password, no stack: there is no default admin password to forget about.
    refused = run([*base, "config", "--quiet"], env=env)
    assert refused.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in refused.stderr


# -- Grafana ----------------------------------------------------------------------------------------


def provisioned_datasources() -> dict[str, dict[str, Any]]:
    sources = load_yaml(DATASOURCES)["datasources"]
    uids = [source["uid"] for source in sources]
    assert len(uids) == len(set(uids))
    return {source["uid"]: source for source in sources}


def test_datasources_are_provisioned() -> None:
    sources = provisioned_datasources()
    assert sorted(s["type"] for s in sources.values()) == ["alertmanager", "prometheus", "tempo"]
    prometheus = next(s for s in sources.values() if s["type"] == "prometheus")
    tempo = next(s for s in sources.values() if s["type"] == "tempo")
    assert prometheus["url"] == "http://prometheus:9090" and tempo["url"] == "http://tempo:3200"
    assert prometheus["jsonData"]["exemplarTraceIdDestinations"][0]["datasourceUid"] == tempo["uid"]
    assert tempo["jsonData"]["tracesToMetrics"]["datasourceUid"] == prometheus["uid"]
    providers = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert [p["type"] for p in providers] == ["file"]


GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms"}
PANEL_TYPES = {"row", "stat", "timeseries", "table", "piechart", "bargauge", "state-timeline"}


def test_dashboard_uids_are_unique() -> None:
    assert len(DASHBOARDS) >= 2
    uids = [json.loads(path.read_text())["uid"] for path in DASHBOARDS]
    assert len(uids) == len(set(uids))
    assert {f"{uid}.json" for uid in uids} == {path.name for path in DASHBOARDS}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_is_valid(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    datasources = provisioned_datasources()
    assert dashboard["title"] and dashboard["uid"] and dashboard["id"] is None
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["time"]["from"] and dashboard["time"]["to"]

    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["service"]["definition"].endswith(", job)")
    for variable in variables.values():
        assert variable["datasource"]["uid"] in datasources
    defined = set(variables) | GRAFANA_BUILTINS

    panels = iter_panels(dashboard)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        where = f"{path.name}: {panel.get('title')!r}"
        assert panel["type"] in PANEL_TYPES, where
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("h", "w", "x", "y")), where
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, where
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] in datasources, where
        assert panel["targets"], f"{where} has no targets"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), where
        for target in panel["targets"]:
            assert target["expr"].strip(), where
            assert target["datasource"]["uid"] in datasources, where
            used = set(re.findall(r"\$(\w+)", target["expr"]))
            assert used <= defined, f"{where} uses undefined variables {used - defined}"

    # No two panels overlap on the grid.
    boxes = [(p["gridPos"], p["title"]) for p in panels]
    for (a, ta), (b, tb) in itertools.combinations(boxes, 2):
        overlap = (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
                   and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])
        assert not overlap, f"{path.name}: {ta!r} overlaps {tb!r}"


def test_overview_dashboard_covers_the_brief() -> None:
    dashboard = json.loads((REPO / "grafana" / "dashboards" / "otel-tokens-cost-overview.json").read_text())
    assert {"service", "agent", "model", "provider"} <= {v["name"] for v in dashboard["templating"]["list"]}
    exprs = " ".join(t["expr"] for p in iter_panels(dashboard) for t in p.get("targets", []))
    for needle in ("otel_tokens_cost_USD_total", 'gen_ai_token_type="cache_read"',
                   "gen_ai_client_operation_time_to_first_chunk_seconds_bucket", 'error_type!=""',
                   "histogram_quantile(0.95", "histogram_quantile(0.5", "otel_tokens_calls_unpriced_total"):
        assert needle in exprs, needle
    # Latency points link to their traces in Tempo.
    assert any(t.get("exemplar") for p in iter_panels(dashboard) for t in p.get("targets", []))


def test_budget_dashboard_shows_alerts() -> None:
    dashboard = json.loads((REPO / "grafana" / "dashboards" / "otel-tokens-agent-budgets.json").read_text())
    exprs = " ".join(t["expr"] for p in iter_panels(dashboard) for t in p.get("targets", []))
    assert "ALERTS{" in exprs and "otel_tokens_budget_utilization" in exprs and "otel_tokens_budget_limit_USD" in exprs


# -- collector and Tempo ----------------------------------------------------------------------------

ALLOWED_COMPONENTS = {
    "receivers": {"otlp"},
    "processors": {"batch", "memory_limiter"},
    # otlp_grpc / otlp_http since collector 0.145; otlp / otlphttp before (still accepted as aliases).
    "exporters": {"debug", "otlp_grpc", "otlp_http", "otlp", "otlphttp"},
}
ENV_DEFAULT = re.compile(r"^\$\{env:[A-Z0-9_]+:-(?P<default>[^}]+)\}$")


def component_type(name: str) -> str:
    return name.split("/")[0]


def env_default(value: str) -> str:
    match = ENV_DEFAULT.match(value)
    assert match, f"{value!r} should be ${{env:NAME:-default}}"
    return match["default"]


def test_collector_uses_only_core_components() -> None:
    config = load_yaml(COLLECTOR_CONFIG)
    assert not config.get("extensions") and not config.get("connectors")
    for section, allowed in ALLOWED_COMPONENTS.items():
        types = {component_type(name) for name in config[section]}
        assert types <= allowed, f"{section}: {types - allowed} are not core components we allow"
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"metrics", "traces"}
    for name, pipeline in pipelines.items():
        for section in ("receivers", "processors", "exporters"):
            assert set(pipeline[section]) <= set(config[section]), f"{name} uses undefined {section}"
        assert pipeline["processors"][0] == "memory_limiter", "memory_limiter must run first"
        assert "batch" in pipeline["processors"]
    used = {e for p in pipelines.values() for e in p["exporters"]}
    assert "debug" in config["exporters"] and "debug" not in used


def test_collector_endpoints_default_to_the_compose_services() -> None:
    config = load_yaml(COLLECTOR_CONFIG)
    protocols = config["receivers"]["otlp"]["protocols"]
    assert env_default(protocols["grpc"]["endpoint"]).endswith(":4317")
    assert env_default(protocols["http"]["endpoint"]).endswith(":4318")
    pipelines = config["service"]["pipelines"]
    (metrics_exporter,) = pipelines["metrics"]["exporters"]
    (traces_exporter,) = pipelines["traces"]["exporters"]
    assert component_type(metrics_exporter) in {"otlp_http", "otlphttp"}
    assert env_default(config["exporters"][metrics_exporter]["endpoint"]) == "http://prometheus:9090/api/v1/otlp"
    assert component_type(traces_exporter) in {"otlp_grpc", "otlp"}
    tempo_endpoint = env_default(config["exporters"][traces_exporter]["endpoint"])
    assert tempo_endpoint == "tempo:4317"
    tempo_grpc = load_yaml(TEMPO_CONFIG)["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert tempo_grpc.endswith(":" + tempo_endpoint.split(":")[1])


def test_ci_is_detected_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert in_ci()
    monkeypatch.setenv("CI", "false")
    assert not in_ci()
    monkeypatch.delenv("CI")
    assert not in_ci()
