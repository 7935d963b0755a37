"""``moment-sync plan``: exit 0 in sync, 2 with changes pending, and it never writes (no
non-GET request reaches e-conomic, no event is appended), with or without the daemon."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import pytest

from tests.daemon import harness, speaking

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def converged(sandboxes: harness.Sandboxes) -> Iterator[harness.Setup]:
    """A daemon that brought e-conomic in sync, asked for a plan while running, then stopped."""
    setup = harness.write_config(sandboxes, prefix="ms-plan-")
    with harness.running(setup) as daemon:
        harness.in_sync(daemon)
        through_socket = harness.cli("plan", "-c", str(setup.config))
        assert through_socket.returncode == 0, through_socket.stdout + through_socket.stderr
        assert through_socket.stdout.splitlines()[-1] == "in sync"
        assert daemon.stop() == 0
    yield setup


def event_count(setup: harness.Setup) -> int:
    with sqlite3.connect(f"file:{setup.db}?mode=ro", uri=True) as db:
        (count,) = db.execute("SELECT count(*) FROM events").fetchone()
    db.close()
    return int(count)


def writes(sb: harness.Sandboxes) -> list[str]:
    return [f"{r.method} {r.path}" for r in sb.economic_requests() if r.method != "GET"]


def test_plan_without_the_daemon_in_sync_exits_0(converged: harness.Setup,
                                                  sandboxes: harness.Sandboxes) -> None:
    before = event_count(converged)
    sandboxes.call(sandboxes.economic.served.clear)
    done = harness.cli("plan", "-c", str(converged.config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "in sync"
    assert writes(sandboxes) == []
    assert sandboxes.economic_requests(), "plan read nothing from e-conomic"
    assert event_count(converged) == before


def test_plan_with_a_customer_renamed_in_economic_exits_2_and_writes_nothing(
        converged: harness.Setup, sandboxes: harness.Sandboxes) -> None:
    name = sandboxes.call(lambda: sandboxes.economic.agreement.customers[10001]["name"])
    rename(sandboxes, "Renamed by hand")
    try:
        plan_sees_the_rename(converged, sandboxes)
    finally:  # the module's e-conomic is shared: in sync again for the tests in any order
        rename(sandboxes, name)


def rename(sb: harness.Sandboxes, name: str) -> None:
    """Rename customer 10001 by hand in e-conomic."""
    reply = speaking.fetch("PATCH", f"{sb.economic.admin_url}/customers/10001",
                          body={"name": name})
    assert reply.status == 200


def plan_sees_the_rename(converged: harness.Setup, sandboxes: harness.Sandboxes) -> None:
    before = event_count(converged)
    sandboxes.call(sandboxes.economic.served.clear)

    done = harness.cli("plan", "-c", str(converged.config))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "10001" in done.stdout
    assert done.stdout.splitlines()[-1].endswith("changes pending")

    as_json = harness.cli("plan", "--json", "-c", str(converged.config))
    assert as_json.returncode == 2, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["pending"] >= 1
    actions = report["kinds"]["customer"]["actions"]
    assert [a["key"] for a in actions] == ["10001"], actions

    only_invoices = harness.cli("plan", "invoice", "-c", str(converged.config))
    assert only_invoices.returncode == 0, only_invoices.stdout

    assert writes(sandboxes) == []
    assert event_count(converged) == before
    # and e-conomic still has the hand-made name: plan repaired nothing
    assert sandboxes.call(lambda: sandboxes.economic.agreement.customers[10001]["name"]) == \
        "Renamed by hand"
