"""An agreement without the Projects module: the daemon reports the failed check, parks the
projects (and the invoices on them) with a reason naming the module, keeps syncing the rest,
notices when the module is switched on, and a retry brings everything through."""

from __future__ import annotations

from typing import Any

import pytest

from tests.daemon import harness, speaking

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def set_project_module(sb: harness.Sandboxes, on: bool) -> None:
    reply = speaking.fetch("PATCH", f"{sb.economic.admin_url}/config", body={"project_module": on})
    assert reply.status == 200 and reply.json()["project_module"] is on


def check(daemon: harness.Daemon, name: str) -> dict[str, Any] | None:
    status: dict[str, Any] = daemon.ask("GET", "/status").json()
    return next((c for c in status["checks"] if c["name"] == name), None)


def test_projects_park_while_the_module_is_off_and_go_through_once_it_is_on(
        sandboxes: harness.Sandboxes) -> None:
    set_project_module(sandboxes, False)
    setup = harness.write_config(sandboxes, prefix="ms-module-")
    with harness.running(setup) as daemon:
        harness.wait_until(lambda: (c := check(daemon, "project_module")) is not None
                           and c["ok"] is False, timeout=10,
                           what="a failed project_module check")
        assert daemon.ask("GET", "/healthz").json()["state"] == "degraded"

        def projects_parked() -> bool:
            parked = {i["key"] for i in daemon.ask("GET", "/parked").json()
                      if i["kind"] == "project"}
            return parked == {"1", "2"}
        harness.wait_until(projects_parked, timeout=20, what="both projects parked")
        items = daemon.ask("GET", "/parked").json()
        reasons = [i["reason"] for i in items if i["kind"] == "project"]
        assert all("project module" in r.lower() for r in reasons), reasons

        def customers_in_sync() -> bool:
            counts = daemon.ask("GET", "/status").json()["entities"]["customer"]
            return bool(counts["in_sync"] == counts["desired"] > 0)
        harness.wait_until(customers_in_sync, timeout=20,
                           what="customers in sync while projects are parked")

        set_project_module(sandboxes, True)
        # failed checks are asked again at the incremental interval (2 s), not in an hour
        harness.wait_until(lambda: (c := check(daemon, "project_module")) is not None
                           and c["ok"] is True, timeout=15,
                           what="the project_module check to pass once the module is on")
        # (project_group, not checked while the module was off, passes in the same round)
        harness.wait_until(lambda: daemon.ask("GET", "/healthz").json()["state"] == "running",
                           timeout=5, what="every check passing again")
        for item in daemon.ask("GET", "/parked").json():
            done = harness.cli("parked", "--retry", item["kind"], item["key"],
                               "-c", str(setup.config))
            assert done.returncode == 0, done.stderr
        status = harness.in_sync(daemon)
        assert status["entities"]["project"]["parked"] == 0
        assert daemon.stop() == 0
