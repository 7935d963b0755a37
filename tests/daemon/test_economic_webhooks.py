"""The real daemon with ``[economic] webhook_url`` set, against the sandboxes: it installs its
webhooks at start, a person's edit in e-conomic is repaired through the webhook (the sweeps are
an hour apart), ``/status`` and ``check`` show the webhooks, and ``moment-sync webhooks``
re-enables one e-conomic disabled and removes them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.daemon import harness, speaking

pytestmark = [pytest.mark.slow, pytest.mark.timeout(110)]


@pytest.fixture(scope="module")
def daemon(sandboxes: harness.Sandboxes) -> Iterator[harness.Daemon]:
    setup = harness.write_config(sandboxes, prefix="ms-ehook-",
                                 economic_webhook_token="ehook-" + uuid.uuid4().hex)
    running = harness.Daemon(setup, env={"MOMENT_SYNC_ECONOMIC_RECONCILE_INTERVAL": "1h"})
    running.start()
    try:
        running.wait_for("READY=1")
        harness.in_sync(running)
        harness.wait_until(lambda: webhooks_of(running).get("ok") is True, timeout=20,
                           what="the daemon to install its e-conomic webhooks")
        yield running
    finally:
        running.close()


def webhooks_of(daemon: harness.Daemon) -> dict[str, Any]:
    status: dict[str, Any] = daemon.ask("GET", "/status").json()
    return status["reconcile"]["webhooks"] or {}


def cli(daemon: harness.Daemon, *args: str) -> tuple[int, str]:
    done = harness.cli(*args, "-c", str(daemon.setup.config))
    return done.returncode, done.stdout + done.stderr


def test_installed_at_start_and_shown_in_status_and_check(
        daemon: harness.Daemon, sandboxes: harness.Sandboxes) -> None:
    hooks = webhooks_of(daemon)
    assert hooks["installed"] == ["CUSTOMER_UPDATED", "PROJECT_UPDATED"]
    assert hooks["states"] == {"CUSTOMER_UPDATED": "installed", "PROJECT_UPDATED": "installed"}
    installed = sandboxes.call(lambda: dict(sandboxes.economic.agreement.webhooks))
    token = daemon.setup.secrets["economic-webhook-token"]
    assert installed["CUSTOMER_UPDATED"]["url"] == (
        f"http://127.0.0.1:{daemon.setup.listen_port}/webhooks/economic/{token}")
    checks = {c["name"]: c for c in daemon.ask("GET", "/status").json()["checks"]}
    assert checks["webhooks"]["ok"], checks["webhooks"]
    _code, out = cli(daemon, "check")
    assert "PASS  webhooks" in out, out
    assert token not in out


def test_an_edit_in_e_conomic_is_repaired_through_the_webhook(
        daemon: harness.Daemon, sandboxes: harness.Sandboxes) -> None:
    number = min(sandboxes.call(lambda: list(sandboxes.economic.agreement.customers)))
    name = sandboxes.call(lambda: sandboxes.economic.agreement.customers[number]["name"])
    answer = speaking.fetch("PATCH", f"{sandboxes.economic.admin_url}/customers/{number}",
                            body={"name": "Renamed by hand"})
    assert answer.status == 200
    # the sweeps are an hour apart: only the webhook can bring it back this soon
    harness.wait_until(
        lambda: sandboxes.call(
            lambda: sandboxes.economic.agreement.customers[number]["name"]) == name,
        timeout=15, what="the webhook's repair")
    # e-conomic holds the repair a moment before the daemon has recorded its outcome
    harness.wait_until(
        lambda: daemon.ask("GET", "/status").json()["reconcile"]["drift_repaired"] >= 1,
        timeout=15, what="the repair recorded in the daemon's log")
    assert webhooks_of(daemon)["ok"]
    status = daemon.ask("GET", "/status").json()
    assert status["reconcile"]["last_hint_at"] and status["reconcile"]["drift_repaired"] >= 1


def test_the_webhooks_command_re_enables_and_removes(
        daemon: harness.Daemon, sandboxes: harness.Sandboxes) -> None:
    code, out = cli(daemon, "webhooks", "status")
    assert code == 0 and "CUSTOMER_UPDATED" in out and "installed" in out, out
    admin = sandboxes.economic.admin_url
    assert speaking.fetch("POST", f"{admin}/webhooks/PROJECT_UPDATED/disable").status == 200
    code, out = cli(daemon, "webhooks")
    assert code == 1 and "PROJECT_UPDATED" in out and "disabled" in out, out
    code, out = cli(daemon, "webhooks", "install")
    assert code == 0 and "PROJECT_UPDATED was disabled by e-conomic and is enabled again" in out
    code, out = cli(daemon, "webhooks", "remove")
    assert code == 0 and "CUSTOMER_UPDATED removed" in out, out
    assert sandboxes.call(lambda: dict(sandboxes.economic.agreement.webhooks)) == {}
    code, out = cli(daemon, "webhooks", "status")
    assert code == 1 and "missing" in out, out
    code, out = cli(daemon, "webhooks", "install")  # as the daemon found them
    assert code == 0, out
    assert daemon.setup.secrets["economic-webhook-token"] not in out
