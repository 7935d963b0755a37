"""The alerting rules shipped in deploy/prometheus: valid for Prometheus (``promtool check
rules``), right on their own unit tests (``promtool test rules``), tested one by one, and
written in the metric names the daemon really exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from daemon.ops import metrics
from tests import tools
from tests.conftest import REPO

RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "alerts_test.yml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tools.prometheus_or_skip("promtool")), *args],
                          cwd=RULES.parent, capture_output=True, text=True, timeout=60,
                          check=False)


def test_promtool_checks_the_rules() -> None:
    done = promtool("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr
    alerts = re.findall(r"^\s*- alert: (\w+)$", RULES.read_text(), re.MULTILINE)
    assert f"SUCCESS: {len(alerts)} rules found" in done.stdout


def test_the_rules_pass_their_unit_tests() -> None:
    done = promtool("test", "rules", RULE_TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_unit_test_that_expects_it_to_fire() -> None:
    alerts = set(re.findall(r"^\s*- alert: (\w+)$", RULES.read_text(), re.MULTILINE))
    tests = RULE_TESTS.read_text()
    firing = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels:", tests))
    assert alerts == firing
    assert {"MomentSyncDown", "MomentSyncItemsParked", "MomentSyncRateLimited",
            "MomentSyncRateLimitExhausted", "MomentSyncWebhooksFailing",
            "MomentSyncReplicaBehind"} <= alerts


def test_the_rules_use_the_metric_names_the_daemon_exports() -> None:
    m = metrics.Metrics()  # every series touched once, as a running daemon would
    m.event_appended("applied")
    m.economic_call("GET", "/customers", 429)
    m.webhook_answered("moment", 202)
    m.drift_repaired("customer")
    m.set_replication(0.8, ok=True)
    exported = {s.name for family in text_string_to_metric_families(m.render().decode())
                for s in family.samples}
    expressions = "\n".join(line for line in RULES.read_text().splitlines()
                            if not line.lstrip().startswith("#"))
    used = set(re.findall(r"\b((?:moment_sync|process)_[a-z_]+)\b", expressions))
    assert {"moment_sync_parked_items", "moment_sync_webhook_requests_total"} <= used
    assert used <= exported, sorted(used - exported)


def test_the_example_prometheus_config_is_valid(tmp_path: Path) -> None:
    """prometheus.example.yml with the rules and a targets file installed beside it, as the
    README's steps do: promtool finds all of them valid, with no warning."""
    shutil.copy(RULES.parent / "prometheus.example.yml", tmp_path / "prometheus.yml")
    shutil.copy(RULES, tmp_path / "alerts.yml")
    shutil.copy(RULES.parent / "moment-sync-targets.example.yml",
                tmp_path / "moment-sync-targets.yml")
    done = subprocess.run([str(tools.prometheus_or_skip("promtool")), "check", "config",
                           "prometheus.yml"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout
