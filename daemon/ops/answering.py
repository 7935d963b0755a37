"""The daemon's answers to the status socket: :class:`Answers` implements
:class:`daemon.ops.providing.StatusProvider` over the log, the clients, ingest and the reconciler.

The port (:mod:`~daemon.ops.providing`), the server (:mod:`~daemon.ops.statusserver`) and these
answers are the three parts of one conversation; the composition root (:mod:`daemon.app`) only
builds :class:`Answers` and hands it to the server.

Everything here reads the in-memory projections or asks the running components; the only
e-conomic call is the live read of one entity in ``GET /entities/{kind}/{key}``. Nothing here
returns a secret: the clients' stats carry counts and error summaries only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

import msgspec

import daemon
from daemon.core import clocks, reports
from daemon.core import expenses as xp
from daemon.core import rows as rw
from daemon.economic import errors as economic_errors
from daemon.ops import providing, replicating

if TYPE_CHECKING:
    from daemon.economic.client import EconomicClient
    from daemon.ingest.expensing import BookedEntries
    from daemon.ingest.paying import PaidStatus
    from daemon.ingest.running import Ingest
    from daemon.moment.client import MomentClient
    from daemon.reconcile.running import Reconciler
    from daemon.store.eventlog import EventLog


class Lifecycle(Protocol):
    """What the answers need to know of the daemon's own state (:class:`daemon.app.Runtime`)."""

    @property
    def state(self) -> str: ...

    @property
    def config_error(self) -> str: ...

    @property
    def uptime_s(self) -> float: ...


class Answers:
    def __init__(self, *, runtime: Lifecycle, log: EventLog, economic: EconomicClient,
                 moment: MomentClient, ingest: Ingest, reconciler: Reconciler, clock: clocks.Clock,
                 replication: replicating.Watch | None = None,
                 webhooks: Callable[[], reports.Webhooks] | None = None,
                 payments: PaidStatus | None = None,
                 expenses: BookedEntries | None = None) -> None:
        """``webhooks``: how the e-conomic webhooks stand (None: ``webhook_url`` is empty);
        ``payments``: the paid-status reader, when [payments] is on; ``expenses``: the
        booked-entries poller, when [expenses] is on."""
        self.webhooks = webhooks
        self.runtime = runtime
        self.replication = replication
        self.payments = payments  # the paid-status reader, when [payments] is on
        self.expenses = expenses  # the booked-entries poller, when [expenses] is on
        self.clock = clock
        self.log = log
        self.economic = economic
        self.moment = moment
        self.ingest = ingest
        self.reconciler = reconciler

    def checks(self) -> list[reports.Check]:
        out: list[reports.Check] = []
        for name, row in sorted(self.log.tables.daemon().items()):
            if name.startswith("check:"):
                out.append(reports.Check(name=name.removeprefix("check:"), ok=row.value == "ok",
                                         detail=str(row.extra.get("detail", "")), at=row.at))
        if self.runtime.config_error:
            out.append(reports.Check(name="config", ok=False, detail=self.runtime.config_error))
        return out

    async def state(self) -> str:
        if self.runtime.state != "running":
            return self.runtime.state
        return "degraded" if any(not c.ok for c in self.checks()) else "running"

    async def status(self) -> reports.StatusReport:
        tables = self.log.tables
        stats = self.economic.stats()
        daemon_rows = tables.daemon()
        cursors = {kind: (row.value if (row := daemon_rows.get(f"cursor:{kind}")) else None)
                   for kind in ("customer", "project", "invoice")}
        webhook = daemon_rows.get("last_webhook")
        polls = list(self.ingest.poller.last_poll_at.values())
        last_poll = clocks.iso(max(polls), timespec="seconds") if polls else None
        reconciler = self.reconciler.status()
        paused = stats.paused_until
        moment = self.moment.stats()
        return reports.StatusReport(
            state=await self.state(), version=daemon.__version__,
            uptime_s=round(self.runtime.uptime_s, 1),
            log=reports.LogInfo(last_seq=self.log.last_seq, events=self.log.last_seq),
            projections=reports.Projections(checkpoint=tables.checkpoint,
                                            lag=self.log.last_seq - tables.checkpoint),
            entities=reconciler.entities,
            economic=reports.Economic(
                rate_limit=reports.RateLimit(used=stats.rate_limit.used,
                                             limit=stats.rate_limit.limit,
                                             window_s=stats.rate_limit.window_s),
                calls_today=stats.calls_today,
                paused_until=clocks.iso_posix(paused)
                if paused and paused > self.clock.now() else None,
                last_error=stats.last_error),
            moment=reports.Moment(last_webhook_at=webhook.at if webhook else None,
                                  last_poll_at=last_poll,
                                  poll_cursor=cursors,
                                  clock_skew_s=round(self.ingest.poller.clock_skew_s, 1),
                                  rate_limit=reports.RateLimit(used=moment.used,
                                                               limit=moment.limit,
                                                               window_s=moment.window_s),
                                  paused_until=clocks.iso_posix(moment.paused_until),
                                  rate_limited=moment.rate_limited),
            booked_entries=self.expenses.status() if self.expenses is not None
            else reports.BookedEntries(),
            reconcile=reconciler.reconcile if self.webhooks is None else msgspec.structs.replace(
                reconciler.reconcile, webhooks=self.webhooks()),
            replication=self.replication.report() if self.replication is not None
            else reports.Replication(),
            checks=self.checks())

    async def entity(self, kind: providing.Kind, key: str) -> Mapping[str, object] | None:
        tables = self.log.tables
        by_kind: dict[str, Mapping[str, rw.Row]] = {
            "customer": tables.customers(), "project": tables.projects(),
            "invoice": tables.invoices(), "payment": tables.payments(),
            "expense": tables.expenses()}
        desired = by_kind[kind].get(key)
        history = await self.log.read_entity(kind, key)
        if desired is None and not history:
            return None
        state = tables.states().get(f"{kind}:{key}")
        live: object = None
        try:
            if kind == "customer" and key.isdigit():
                found = await self.economic.find_customer(int(key))
                live = msgspec.to_builtins(found) if found else "absent in e-conomic"
            elif kind == "project" and key.isdigit():
                found_project = await self.economic.find_project(int(key))
                live = msgspec.to_builtins(found_project) if found_project \
                    else "absent in e-conomic"
        except economic_errors.EconomicError as exc:
            live = f"could not read e-conomic: {exc}"
        return {
            "kind": kind, "key": key,
            "desired": msgspec.to_builtins(desired) if desired else None,
            "state": msgspec.to_builtins(state) if state else None,
            "live": live,
            "history": [{"seq": r.seq, "type": r.type, "occurred_at": r.occurred_at,
                         "payload": msgspec.json.decode(r.payload)} for r in history[-200:]],
        }

    async def parked(self) -> list[reports.ParkedItem]:
        return [reports.ParkedItem(kind=s.kind, key=s.key, reason=s.reason, attempts=s.attempts,
                                   last_error=s.last_error, parked_at=s.parked_at)
                for s in sorted(self.log.tables.states().values(),
                                key=lambda s: (s.kind, s.key)) if s.parked]

    async def retry(self, kind: providing.Kind, key: str) -> bool:
        if not self.log.tables.state(kind, key).parked:
            return False
        await self.reconciler.retry(kind, key)
        return True

    async def resync(self, kind: providing.Kind, key: str) -> bool:
        if kind == "payment":
            return await self._resync_payment(key)
        if kind == "expense":
            return await self._resync_expense(key)
        try:
            await self.ingest.resync(kind, key)
        except LookupError:
            return False
        self.reconciler.resync(kind, key)
        return True

    async def _resync_payment(self, key: str) -> bool:
        """Read the paid status of the booked invoices from e-conomic now (one read, as every
        round) and reconcile invoice ``key``'s in Moment; False when the log knows no such
        payment (the invoice was not booked by the daemon, or was never paid)."""
        if self.payments is not None:
            try:
                await self.payments.refresh()
            except economic_errors.EconomicError as exc:
                self.payments.last_error = str(exc)
        if key not in self.log.tables.payments():
            return False
        self.reconciler.resync("payment", key)
        return True

    async def _resync_expense(self, key: str) -> bool:
        """Read booked entry ``YEAR:ENTRY`` from e-conomic again (recorded when the log lacks
        it) and reconcile it now; False when it is neither in the log nor in e-conomic."""
        parsed = xp.parse_key(key)
        if parsed is None:
            return False
        if self.expenses is not None:
            await self.expenses.read_entry(parsed[1])
        if key not in self.log.tables.expenses():
            return False
        self.reconciler.resync("expense", key)
        return True

    async def backfill_expenses(self, since: dt.date) -> int:
        """Read booked entries dated ``since`` on and queue the expenses missing from Moment;
        returns how many entries the read recorded (ValueError when expenses are off)."""
        if self.expenses is None:
            raise ValueError("expenses are off: set [expenses] enabled = true")
        reading = await self.expenses.backfill(since)
        return reading.recorded

    async def reconcile(self) -> int:
        return await self.reconciler.reconcile_now()

    async def plan(self, kind: str | None) -> Mapping[str, object]:
        answer: dict[str, object] = msgspec.to_builtins(await self.reconciler.plan(kind))
        return answer
