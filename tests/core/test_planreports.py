"""The plan report on the wire: the shape DESIGN.md documents, decoded leniently by the CLI."""

from __future__ import annotations

import msgspec
import pytest

from daemon.core import plans


def test_the_report_encodes_as_the_documented_json() -> None:
    report = plans.PlanReport(
        pending=1,
        kinds={"customer": plans.KindPlan(desired=2, pending=1, actions=[
            plans.PlannedAction(key="10001", action="update", fields=["email"])])},
        parked=[plans.PlanNote(kind="project", key="7", reason="closed")],
        strays=[plans.PlanStray(kind="customer", number=903, managed_key="3", note="n"),
                plans.PlanStray(kind="customer", number=904, managed_key="4", note="m",
                                reported_at="2026-11-20T09:00:00Z")],
        economic_only=[plans.EconomicOnly(kind="customer", number=99)])
    assert msgspec.json.decode(msgspec.json.encode(report)) == {
        "pending": 1,
        "kinds": {"customer": {"desired": 2, "pending": 1, "actions": [
            {"key": "10001", "action": "update", "fields": ["email"], "detail": ""}]}},
        "parked": [{"kind": "project", "key": "7", "reason": "closed"}],
        "problems": [],
        "strays": [{"kind": "customer", "number": 903, "managed_key": "3", "note": "n"},
                   {"kind": "customer", "number": 904, "managed_key": "4", "note": "m",
                    "reported_at": "2026-11-20T09:00:00Z"}],
        "economic_only": [{"kind": "customer", "number": 99}]}


def test_decoding_ignores_unknown_fields_and_refuses_what_is_not_a_report() -> None:
    report = plans.decode_plan(b'{"pending": 2, "future": [1], "kinds": {"invoice": '
                               b'{"desired": 3, "pending": 2, "actions": []}}}')
    assert report.pending == 2 and report.kinds["invoice"].desired == 3
    with pytest.raises(plans.PlanDecodeError, match="/plan answer is not understood"):
        plans.decode_plan(b'{"pending": "many"}')
    with pytest.raises(plans.PlanDecodeError):
        plans.decode_plan(b"<html>")
