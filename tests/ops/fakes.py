"""A stateful fake of the daemon's :class:`~daemon.ops.providing.StatusProvider` for the tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import msgspec

from daemon.core import events as ev
from daemon.core import reports
from daemon.ops import providing

#: DESIGN.md's ``GET /status`` example as the daemon sends it: every field of
#: :class:`daemon.core.reports.StatusReport` present.
SAMPLE_STATUS: dict[str, object] = {
    "state": "running", "version": "0.1.0", "uptime_s": 812.4,
    "log": {"last_seq": 5120, "events": 5120},
    "projections": {"checkpoint": 5120, "lag": 0},
    "entities": {
        "customer": {"desired": 40, "in_sync": 40, "pending": 0, "parked": 0},
        "project": {"desired": 25, "in_sync": 24, "pending": 0, "parked": 1},
        "invoice": {"desired": 30, "in_sync": 30, "pending": 0, "parked": 0},
        "expense": {"desired": 12, "in_sync": 12, "pending": 0, "parked": 0},
    },
    "economic": {"rate_limit": {"used": 120, "limit": 10000, "window_s": 60},
                 "calls_today": 1450, "paused_until": None, "last_error": None},
    "moment": {"last_webhook_at": "2026-11-20T09:20:02Z", "last_poll_at": "2026-11-20T09:25:00Z",
               "poll_cursor": {"customer": "2026-11-20T09:25:00Z",
                               "project": "2026-11-20T09:25:00Z",
                               "invoice": "2026-11-20T09:25:00Z"},
               "clock_skew_s": 0.4,
               "rate_limit": {"used": 3, "limit": 500, "window_s": 60},
               "paused_until": None, "rate_limited": 0},
    "booked_entries": {"cursor": 48211, "last_read_at": "2026-11-20T09:25:00Z",
                       "last_full_scan_at": "2026-11-20T06:00:00Z", "last_error": None},
    "reconcile": {"last_full_at": "2026-11-20T06:00:00Z",
                  "last_incremental_at": "2026-11-20T09:20:00Z", "drift_repaired": 3,
                  "last_hint_at": "2026-11-20T09:24:11Z",
                  "webhooks": {"installed": ["CUSTOMER_UPDATED", "PROJECT_UPDATED"], "ok": True,
                               "states": {"CUSTOMER_UPDATED": "installed",
                                          "PROJECT_UPDATED": "installed"},
                               "detail": "installed and enabled: CUSTOMER_UPDATED, "
                                         "PROJECT_UPDATED"},
                  "strays": [{"kind": "customer", "number": 1050, "managed_key": "10001",
                              "note": "same organization number as customer 10001",
                              "reported_at": "2026-11-20T06:00:01Z"}],
                  "booked_mismatches": [{
                      "number": 17, "fields": ["amount"],
                      "note": "Invoice 17's booked entry in e-conomic (voucher 5 (2026)) differs "
                              "from the invoice in Moment: amount 1300.00 DKK in e-conomic, "
                              "1250.00 DKK in Moment. The daemon never edits booked entries: "
                              "if e-conomic's entry is wrong, correct it there with a new entry "
                              "(or a credit note)."}],
                  "queue": {"customer": 0, "project": 0, "invoice": 0}, "waiting": 1,
                  "last_error": None},
    "replication": {"watched": True, "ok": True, "lag_s": 0.8, "last_error": None},
    "checks": [{"name": "project_module", "ok": False,
                "detail": "the Projects module is not active on this agreement",
                "at": "2026-11-20T06:00:00Z"}],
}

SAMPLE_PARKED: list[dict[str, object]] = [
    {"kind": "project", "key": "7", "reason": "The Projects module is not active in e-conomic: "
     "activate it under Settings → Subscription, then retry.",
     "attempts": 3, "last_error": "MissingModule", "parked_at": "2026-11-20T09:00:00Z"},
]


class FakeProvider:
    """Answers from plain data; records what it was asked. ``fail`` makes every call raise."""

    def __init__(self) -> None:
        self.current_state = "running"
        self.document = reports.decode_status(msgspec.json.encode(SAMPLE_STATUS))
        self.entities: dict[tuple[str, str], dict[str, object]] = {
            ("customer", "10001"): {"kind": "customer", "key": "10001",
                                    "desired": {"name": "Acme"}, "live": {"name": "Acme"},
                                    "economic_ids": {"customerNumber": 10001}, "history": []},
        }
        self.parked_items = reports.decode_parked(msgspec.json.encode(SAMPLE_PARKED))
        self.known: set[tuple[str, str]] = {("customer", "10001"), ("project", "7"),
                                             ("payment", "12")}
        self.calls: list[tuple[str, object]] = []
        self.queued = 95
        self.fail = False

    def _note(self, name: str, argument: object = None) -> None:
        self.calls.append((name, argument))
        if self.fail:
            raise RuntimeError("provider exploded")

    async def status(self) -> reports.StatusReport:
        self._note("status")
        return self.document

    async def state(self) -> str:
        self._note("state")
        return self.current_state

    async def entity(self, kind: providing.Kind, key: str) -> Mapping[str, object] | None:
        self._note("entity", (kind, key))
        return self.entities.get((kind, key))

    async def parked(self) -> Sequence[reports.ParkedItem]:
        self._note("parked")
        return self.parked_items

    async def retry(self, kind: providing.Kind, key: str) -> bool:
        self._note("retry", (kind, key))
        before = len(self.parked_items)
        self.parked_items = [p for p in self.parked_items
                             if (p.kind, p.key) != (kind, key)]
        return len(self.parked_items) < before

    async def resync(self, kind: providing.Kind, key: str) -> bool:
        self._note("resync", (kind, key))
        return (kind, key) in self.known

    async def reconcile(self) -> int:
        self._note("reconcile")
        return self.queued

    async def backfill_expenses(self, since: dt.date) -> int:
        self._note("backfill_expenses", since)
        if since.year < 2000:
            raise ValueError("expenses are off: set [expenses] enabled = true")
        return self.queued

    async def plan(self, kind: providing.Kind | None) -> Mapping[str, object]:
        self._note("plan", kind)
        kinds = list(ev.ALL_KINDS) if kind is None else [kind]
        return {"changes": [], "kinds": kinds, "strays": []}
