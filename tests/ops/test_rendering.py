"""The human views of ``/status`` and ``/parked``, from the documented sample."""

from __future__ import annotations

import msgspec
import pytest

from daemon.core import reports
from daemon.ops import rendering
from tests.ops.fakes import SAMPLE_PARKED, SAMPLE_STATUS

EXPECTED_STATUS = """\
moment-sync 0.1.0: RUNNING, up 13m 32s
Log        5120 events (last seq 5120); projections at 5120, lag 0
Entities   kind      desired  in sync  pending  parked
           customer       40       40        0       0
           project        25       24        0       1
           invoice        30       30        0       0
           expense        12       12        0       0
e-conomic  rate limit bucket 120/10000 (1%), drains 10000 per 60s; 1450 calls today
Moment     last webhook 2026-11-20T09:20:02Z, last poll 2026-11-20T09:25:00Z
Expenses   booked entries read to entry 48211, last read 2026-11-20T09:25:00Z, last full scan \
2026-11-20T06:00:00Z
Reconcile  last full 2026-11-20T06:00:00Z, last incremental 2026-11-20T09:20:00Z; drift repaired 3
           stray customer 1050 in e-conomic: same organization number as customer 10001
           booked invoice 17 differs (amount): Invoice 17's booked entry in e-conomic \
(voucher 5 (2026)) differs from the invoice in Moment: amount 1300.00 DKK in e-conomic, 1250.00 \
DKK in Moment. The daemon never edits booked entries: if e-conomic's entry is wrong, correct it \
there with a new entry (or a credit note).
Webhooks   e-conomic ok: installed and enabled: CUSTOMER_UPDATED, PROJECT_UPDATED; last hint \
2026-11-20T09:24:11Z
Replica    ok, 0.8s behind
Checks     1 of 1 FAILED
           FAIL project_module: the Projects module is not active on this agreement
Parked     1 item(s)
           project 7 (3 attempts): The Projects module is not active in e-conomic: \
activate it under Settings → Subscription, then retry.
           retry one with: moment-sync parked --retry KIND KEY
"""


def sample() -> reports.StatusReport:
    return reports.decode_status(msgspec.json.encode(SAMPLE_STATUS))


def sample_parked() -> list[reports.ParkedItem]:
    return reports.decode_parked(msgspec.json.encode(SAMPLE_PARKED))


def test_status_view_of_the_design_sample() -> None:
    assert rendering.render_status(sample(), sample_parked()) == EXPECTED_STATUS


def test_status_view_shows_catch_up_pause_errors_and_passing_checks() -> None:
    document = msgspec.json.decode(msgspec.json.encode(SAMPLE_STATUS))
    document.update(state="degraded", uptime_s=90061.0,
                    projections={"checkpoint": 5000, "lag": 120},
                    checks=[{"name": "tokens", "ok": True, "detail": ""}])
    document["economic"].update(paused_until="2026-11-20T09:30:00Z",
                                last_error="HTTP 503 from POST /draft-entries")
    document["entities"]["project"]["parked"] = 0
    document["reconcile"]["strays"] = []
    document["moment"].update(clock_skew_s=3600.0, paused_until="2026-11-20T09:31:00Z",
                              rate_limited=2)
    view = rendering.render_status(reports.decode_status(msgspec.json.encode(document)))
    lines = view.splitlines()
    assert ("           Moment's dates run 3600s ahead of this host's clock (the poll cursor "
            "is held at the host's clock)") in lines
    assert lines[0] == "moment-sync 0.1.0: DEGRADED, up 1d 1h"
    assert lines[1].endswith("projections at 5000, lag 120 (catching up)")
    assert "           PAUSED until 2026-11-20T09:30:00Z (rate limited)" in lines
    moment = lines.index("Moment     last webhook 2026-11-20T09:20:02Z, last poll "
                         "2026-11-20T09:25:00Z")
    assert lines[moment + 1:moment + 3] == [
        "           PAUSED until 2026-11-20T09:31:00Z (rate limited)",
        "           2 answer(s) 429 (rate limited) since the start; pace 500 calls per 60s"]
    assert "           last error: HTTP 503 from POST /draft-entries" in lines
    assert lines[-1] == "Checks     all 1 passed"
    assert not any(line.startswith("Parked") for line in lines)


def test_status_view_tolerates_a_sparse_or_richer_document() -> None:
    report = reports.decode_status(b'{"state": "starting", "future_field": [1, 2]}')
    view = rendering.render_status(report)
    assert view.startswith("moment-sync: STARTING, up 0s\n")
    assert "last webhook never, last poll never" in view


def test_documents_of_another_shape_are_refused_with_a_sentence() -> None:
    with pytest.raises(reports.StatusDecodeError, match="/status answer is not understood"):
        reports.decode_status(b'{"log": {"events": "many"}}')
    with pytest.raises(reports.StatusDecodeError, match="/parked answer is not understood"):
        reports.decode_parked(b'{"kind": "customer"}')
    with pytest.raises(reports.StatusDecodeError):
        reports.decode_status(b"<html>")


def test_parked_table() -> None:
    items = [*sample_parked(), reports.ParkedItem(
        kind="customer", key="10020", reason="VAT code XX is not in [economic] vat_zones.",
        attempts=1, last_error=None, parked_at="2026-11-21T10:00:00Z")]
    assert rendering.render_parked(items) == (
        "KIND      KEY    ATTEMPTS  PARKED AT             LAST ERROR     REASON\n"
        "project   7      3         2026-11-20T09:00:00Z  MissingModule  The Projects module "
        "is not active in e-conomic: activate it under Settings → Subscription, then retry.\n"
        "customer  10020  1         2026-11-21T10:00:00Z                 VAT code XX is not "
        "in [economic] vat_zones.\n"
    )
    assert rendering.render_parked([]) == "No parked items.\n"
