"""The Prometheus alert rules (deploy/prometheus/alerts.yml): well-formed for promtool, each
one firing on what it is about (promtool's unit tests, alerts.test.yml), each naming only
metrics that a real scrape of /metrics exposes, each with its runbook section."""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.factories import bearer

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
RUNBOOK = ROOT / "docs" / "operations.md"

REQUIRED = {
    "PlacesOutboxBacklogOld",
    "PlacesRelayNotPublishing",
    "PlacesStandbyLagHigh",
    "PlacesHigh5xxRate",
    "PlacesNotReady",
    "PlacesFeedQueueSaturation",
    "PlacesDbPoolExhausted",
}
"""What the issue asks alerts for: outbox backlog age, relay not publishing, standby lag, 5xx
rate, readiness, feed queue saturation, DB pool exhaustion."""

PROMETHEUS_OWN = {"up"}
"""Series Prometheus records itself for each target, not exposed by the service."""
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")
PROMQL_WORDS = {
    "and", "or", "unless", "on", "ignoring", "by", "without", "group_left", "group_right",
    "bool", "offset",
}  # fmt: skip


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    """The series an expression selects: identifiers that are not functions (followed by
    ``(``), keywords, label names (inside ``{}`` or ``by (…)``) or durations."""
    bare = re.sub(r"\{[^}]*\}", "{}", expr)  # label matchers out
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", bare)  # grouping labels out
    bare = re.sub(r"\[[^\]]*\]", "", bare)  # range durations out
    bare = re.sub(r'"[^"]*"', "", bare)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", bare):
        word, rest = m.group(), bare[m.end() :].lstrip()
        if rest.startswith("(") or word in PROMQL_WORDS:
            continue
        names.add(word)
    return names


@pytest.mark.pure
def test_every_rule_is_complete_and_the_issue_s_alerts_are_there():
    found = rules()
    names = [r["alert"] for r in found]
    assert len(names) == len(set(names))
    assert REQUIRED <= set(names)
    runbook = RUNBOOK.read_text()
    headings = {h.strip().lower() for h in re.findall(r"^### (.+)$", runbook, re.M)}
    for rule in found:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], rule["alert"]
        anchor = rule["alert"].lower()
        assert annotations["runbook_url"] == f"docs/operations.md#{anchor}"
        assert anchor in headings, f"docs/operations.md has no section ### {rule['alert']}"


@pytest.mark.pure
def test_the_metric_name_extraction_is_not_vacuous():
    expr = 'sum by (instance) (rate(places_x_total{status=~"5.."}[5m])) / on() max(up) > 0.1'
    assert metric_names(expr) == {"places_x_total", "up"}


async def test_rules_name_only_metrics_the_service_exposes(client):
    r = await client.get("/metrics", headers=bearer("operator"))
    assert r.status_code == 200
    exposed = set()
    for family in text_string_to_metric_families(r.text):
        exposed.add(family.name)
        exposed.update(family.name + suffix for suffix in SUFFIXES)
        exposed.update(s.name for s in family.samples)
    used = set().union(*(metric_names(rule["expr"]) for rule in rules()))
    assert {n for n in used if n.startswith("places_")}, used
    unknown = used - exposed - PROMETHEUS_OWN
    assert not unknown, f"alert rules name metrics /metrics does not expose: {unknown}"


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool missing: scripts/setup --dev takes it from Debian's prometheus"
    return path


@pytest.mark.pure
def test_promtool_checks_the_rules():
    done = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


@pytest.mark.pure
def test_each_alert_fires_on_its_figures_and_not_on_healthy_ones():
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert tested == {r["alert"] for r in rules()}, "every alert has a promtool unit test"
    done = subprocess.run(
        [promtool(), "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
