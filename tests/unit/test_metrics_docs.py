"""docs/metrics.md stays true: its YAML blocks parse as a Prometheus scrape config (bearer token
from a file) and rule groups (the three alerts), the rules name only metrics syncd exposes, and
every metric syncd exposes is in its tables."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from syncd.observability.instruments import Instruments
from syncd.observability.state import State, families

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
BLOCK = re.compile(r"```yaml\n(.*?)```", re.DOTALL)
NAME = re.compile(r"\bsyncd_[a-z_]+\b")


def blocks() -> list[Any]:
    return [yaml.safe_load(text) for text in BLOCK.findall(DOC.read_text(encoding="utf-8"))]


def exposed_families() -> dict[str, str]:
    """Every metric a scrape can carry, by the name its table row gives, and its type."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    empty = State(
        outbox={},
        outbox_oldest_due=None,
        inbox={},
        inbox_oldest_due=None,
        connections=(),
        findings={},
    )
    found = {"syncd_metrics_database_up": "gauge"}
    for family in [*Instruments().registry.collect(), *families(empty, now=now)]:
        name = family.name + "_total" if family.type == "counter" else family.name
        found[name] = family.type
    return found


def exposed() -> set[str]:
    """Every sample name a scrape can carry."""
    names = set()
    for name, kind in exposed_families().items():
        names.add(name)
        if kind == "histogram":
            names |= {name + suffix for suffix in ("_bucket", "_sum", "_count")}
    return names


def test_scrape_configs_send_the_token_from_a_file() -> None:
    """Each scrape config block scrapes /metrics with a Bearer token read from a file."""
    configs = [b for b in blocks() if "scrape_configs" in b]
    assert len(configs) == 2
    for config in configs:
        [job] = config["scrape_configs"]
        assert job["metrics_path"] == "/metrics"
        assert job["authorization"]["type"] == "Bearer"
        assert job["authorization"]["credentials_file"].startswith("/")
        assert "credentials" not in job["authorization"]


def test_alert_rules_are_the_three_and_name_real_metrics() -> None:
    """Dead tasks, a stuck queue and needs-reconnect; each rule well-formed, its expression's
    parentheses balanced and every metric it names one syncd exposes."""
    [rules_file] = [b for b in blocks() if "groups" in b]
    [group] = rules_file["groups"]
    rules = group["rules"]
    assert [rule["alert"] for rule in rules] == [
        "SyncdDeadTasks",
        "SyncdQueueStuck",
        "SyncdNeedsReconnect",
    ]
    known = exposed()
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
        assert re.fullmatch(r"\d+[smh]", rule["for"])
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        expression = rule["expr"]
        assert expression.count("(") == expression.count(")")
        named = set(NAME.findall(expression))
        assert named and named <= known, named - known
    assert 'syncd_outbox_tasks{state="dead"}' in rules[0]["expr"]
    assert "syncd_outbox_oldest_due_seconds" in rules[1]["expr"]
    assert "syncd_xero_connection_needs_reconnect" in rules[2]["expr"]


def test_every_exposed_metric_is_documented() -> None:
    """The metric tables list each metric by its exposed name."""
    text = DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(syncd_[a-z_]+)`", text, re.MULTILINE))
    assert documented == set(exposed_families())
