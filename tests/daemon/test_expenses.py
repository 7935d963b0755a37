"""The daemon with ``[expenses]`` on, as a subprocess against both sandboxes: a supplier's bill
booked on a project in e-conomic arrives in Moment as a project expense, once; ``status``,
``events --entity expense:YEAR:ENTRY``, ``plan expense``, ``resync expense`` and ``backfill
expenses`` work on it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.daemon import harness, speaking

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

EXPENSES = """
[expenses]
enabled = true
poll_interval = "1s"
cost_types = { 2750 = "Rejser" }
"""


@pytest.fixture(scope="module")
def sandboxes() -> Iterator[harness.Sandboxes]:
    with harness.Sandboxes(customers=2, projects=2, invoices=1) as sb:
        yield sb


def counts(daemon: harness.Daemon, kind: str) -> dict[str, Any]:
    entities: dict[str, Any] = daemon.ask("GET", "/status").json()["entities"]
    return dict(entities.get(kind) or {})


def test_a_cost_booked_in_economic_arrives_in_moment_once(
        sandboxes: harness.Sandboxes) -> None:
    sb = sandboxes
    setup = harness.write_config(sb, prefix="ms-expense-", extra=EXPENSES)
    project = sb.call(lambda: min(p.project_number for p in sb.moment.projects.values()))
    with harness.running(setup) as daemon:
        harness.wait_until(lambda: (c := counts(daemon, "project"))["in_sync"] == c["desired"]
                           > 0, timeout=30, what="the projects in e-conomic")
        assert counts(daemon, "expense") == {"desired": 0, "in_sync": 0, "pending": 0,
                                             "parked": 0}
        today = dt.datetime.now(dt.UTC).date().isoformat()
        booked = speaking.fetch("POST", f"{sb.economic.admin_url}/supplier-invoices", body={
            "amount": "1450.00", "date": today, "accountNumber": 2750,
            "projectNumber": int(project), "text": "Rejse Aarhus-København"})
        assert booked.status == 201, booked.body
        entry = next(r["entryNumber"] for r in booked.json()["entries"]
                     if r.get("projectNumber") == int(project))
        key = f"{today[:4]}:{entry}"

        harness.wait_until(lambda: counts(daemon, "expense").get("in_sync") == 1, timeout=30,
                           what="the expense in Moment")
        expenses = sb.call(lambda: [e.body for e in sb.moment.expenses.values()])
        assert [{k: v for k, v in e.items() if k != "id"} for e in expenses] == [{
            "externalId": f"economic:{today[:4]}:entry:{entry}",
            "project": {"projectNumber": project}, "description": "Rejse Aarhus-København",
            "amountIncludingVat": "1450.00", "currency": "DKK", "date": today,
            "costType": "Rejser"}]
        status = daemon.ask("GET", "/status").json()
        assert status["booked_entries"]["cursor"] == entry
        assert status["booked_entries"]["last_read_at"]

        shown = harness.cli("status", "-c", str(setup.config))
        assert shown.returncode == 0, shown.stderr
        assert f"Expenses   booked entries read to entry {entry}" in shown.stdout
        assert any(line.split()[:2] == ["expense", "1"] for line in shown.stdout.splitlines())

        events = harness.cli("events", "--entity", f"expense:{key}", "--json",
                             "-c", str(setup.config))
        assert events.returncode == 0, events.stderr
        types = [json.loads(line)["type"] for line in events.stdout.splitlines()]
        assert types == ["booked_entry_recorded", "write_intended", "applied"]

        plan = harness.cli("plan", "expense", "-c", str(setup.config))
        assert plan.returncode == 0, plan.stdout + plan.stderr
        assert "expense: 1 managed, 0 to change" in plan.stdout

        again = harness.cli("resync", "expense", key, "-c", str(setup.config))
        assert again.returncode == 0, again.stderr
        assert "re-fetched from e-conomic" in again.stdout
        unknown = harness.cli("resync", "expense", f"{today[:4]}:999999", "-c",
                              str(setup.config))
        assert unknown.returncode == 1 and "no booked entry" in unknown.stderr

        backfill = harness.cli("backfill", "expenses", "--since", "2020-01-01",
                               "-c", str(setup.config))
        assert backfill.returncode == 0, backfill.stderr
        assert "0 booked entries recorded" in backfill.stdout
        bad = harness.cli("backfill", "expenses", "--since", "yesterday", "-c",
                          str(setup.config))
        assert bad.returncode == 1 and "use a date YYYY-MM-DD" in bad.stderr

        harness.wait_until(lambda: daemon.ask("GET", "/status").json()["reconcile"]["queue"]
                           .get("expense", 0) == 0, timeout=10, what="the resync done")
        assert sb.call(lambda: len(sb.moment.expenses)) == 1  # once, whatever was asked
        assert daemon.stop() == 0
