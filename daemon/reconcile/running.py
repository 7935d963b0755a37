"""The reconciler the app runs: level-triggered loops over one work queue.

Keys are queued (never events): when desired state changes (the log's listeners), by an
incremental sweep every ``reconcile_interval``, by a full sweep every
``full_reconcile_interval`` (and once at start), and by an operator (retry, resync, reconcile
now). The worker takes due keys kind by kind — customers, then projects, then invoices — at
most ``batch`` of each per pass (the bound on work in flight, with ``max_in_flight`` calls at
once), so dependencies go first. Every outcome is an event in the log; nothing here keeps
state the log does not have, except the queue itself, which a restart rebuilds from the log.

Use::

    rec = Reconciler(log=log, client=client, options=opts, reconcile_interval=600.0,
                     full_reconcile_interval=21600.0, observer=obs, beat=pulse.beat)
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, Final

import anyio
import anyio.abc

from daemon.core import backoff
from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.economic import errors
from daemon.economic.client import EconomicClient
from daemon.reconcile import planning, statuses, sweeping
from daemon.reconcile.customers import Customers
from daemon.reconcile.invoices import Invoices
from daemon.reconcile.outcomes import Context, NullObserver, Observer, SafeObserver, wedged
from daemon.reconcile.projects import Projects
from daemon.reconcile.queueing import KINDS, WorkQueue
from daemon.store.eventlog import EventLog

OVERLAP_S: Final = 120.0
#: Outcomes the controllers record: each is progress, so it beats the watchdog pulse (a pass
#: over thousands of writes outlasts any freshness window; a wedged pass records none).
PROGRESS: Final = (ev.WriteIntended, ev.Applied, ev.Failed, ev.Parked, ev.DriftRepaired,
                   ev.InvoiceEntryCreated, ev.InvoicePdfAttached, ev.InvoicePdfSkipped,
                   ev.InvoiceBooked)
BATCH: Final = {"customer": 2000, "project": 2000, "invoice": 2000}


class Reconciler:
    def __init__(self, *, log: EventLog, client: EconomicClient, options: mp.Options,
                 reconcile_interval: float = 600.0, full_reconcile_interval: float = 21600.0,
                 observer: Observer | None = None, policy: backoff.Policy | None = None,
                 max_in_flight: int = 8, batch: dict[str, int] | None = None,
                 rng: random.Random | None = None, beat: Callable[[], None] | None = None,
                 idle_beat_s: float = 5.0, wall: Callable[[], float] = time.time) -> None:
        self.queue = WorkQueue(now=time.monotonic)  # asyncio's loop clock is monotonic too
        self.ctx = Context(log=log, client=client, options=options, queue=self.queue,
                           observer=SafeObserver(observer or NullObserver()),
                           policy=policy or backoff.Policy(), rng=rng or random.Random(),
                           wall=wall, max_in_flight=max_in_flight,
                           beat=beat or (lambda: None))
        self.controllers: dict[str, Customers | Projects | Invoices] = {
            "customer": Customers(self.ctx), "project": Projects(self.ctx),
            "invoice": Invoices(self.ctx)}
        self.reconcile_interval = reconcile_interval
        self.full_reconcile_interval = full_reconcile_interval
        self.batch = {**BATCH, **(batch or {})}
        self.beat = self.ctx.beat
        # how long an idle worker may wait between beats (the watchdog's beat_every)
        self.idle_beat_s = idle_beat_s
        self.wall = wall
        self.last_full_at: float | None = None
        self.last_incremental_at: float | None = None
        self.last_error: str | None = None
        self.busy = False
        self._retried: list[tuple[str, str]] = []
        self._changed: list[tuple[str, str]] = []
        # A sweep's reads must not race a pass's writes (a stale read would queue a write
        # that was just made): sweeps run between passes.
        self._turn = anyio.Lock()
        self._first_sweep = anyio.Event()
        self._full_now = anyio.Event()
        log.listeners.append(self._on_events)

    # --- intake ---------------------------------------------------------------------------
    def _on_events(self, batch: list[tuple[int, ev.Event]]) -> None:
        """Queue keys when desired state changes or an operator asks (sync, after commit);
        beat the pulse when a controller recorded progress."""
        q = self.queue
        if any(isinstance(e, PROGRESS) for _seq, e in batch):
            self.beat()
        for _seq, e in batch:
            match e:
                case ev.CustomerUpserted() | ev.ProjectUpserted() | ev.InvoiceFinalized():
                    kind, key = ev.entity_of(e)
                    q.add(kind, key)
                    if self.ctx.log.tables.state(kind, key).parked:
                        self._changed.append((kind, key))  # fixed in Moment, perhaps
                case ev.EntityGone(kind=kind, key=key):
                    q.discard(kind, key)
                case ev.ResyncRequested(kind=kind, key=key):
                    q.add(kind, key, force=True)
                case ev.RetryRequested(kind=kind, key=key) | ev.Unparked(kind=kind, key=key):
                    q.add(kind, key, force=True)
                    self._retried.append((kind, key))
                case ev.Applied(kind=kind, key=key) | ev.Parked(kind=kind, key=key):
                    q.release(kind, key)
                case _:
                    pass

    async def _unpark(self, items: list[tuple[str, str]], by: str) -> None:
        """Un-park the parked ones among ``items`` (one transaction); the listener queues them
        and takes what waited on them along."""
        states = self.ctx.log.tables
        events = [(ev.Unparked(kind=kind, key=key, by=by),
                   f"unparked:{kind}:{key}:{time.time_ns()}", None)
                  for kind, key in dict.fromkeys(items) if states.state(kind, key).parked]
        if events:
            await self.ctx.log.append_many(events)

    async def _unpark_dependents(self) -> None:
        """A parked item whose Moment data changed is tried again; a retried customer or
        project takes the items parked waiting on it along."""
        changed, self._changed = self._changed, []
        await self._unpark(changed, "changed in Moment")
        while self._retried:
            kind, key = self._retried.pop()
            marker = f"waiting on {kind}:{key}"
            for st in list(self.ctx.log.tables.states().values()):
                if st.parked and st.last_error == marker:
                    await self.ctx.log.append(
                        ev.Unparked(kind=st.kind, key=st.key, by=f"{kind} {key} retried"),
                        idempotency_key=f"unparked:{st.kind}:{st.key}:{time.time_ns()}")

    # --- operator -------------------------------------------------------------------------
    async def retry(self, kind: str, key: str, *, by: str = "operator") -> None:
        """Un-park ``kind:key`` and reconcile it now (and what waited on it)."""
        await self.ctx.log.append(ev.RetryRequested(kind=kind, key=key, by=by),
                                  idempotency_key=f"retry:{kind}:{key}:{time.time_ns()}")

    def resync(self, kind: str, key: str) -> None:
        """Reconcile ``kind:key`` now (after ingest re-fetched it from Moment)."""
        self.queue.add(kind, key, force=True)

    async def reconcile_now(self) -> int:
        """A full sweep now; returns how many keys it queued. When e-conomic fails the sweep
        (refused tokens, 5xx, a timeout), the keys the log knows to be out of sync are queued
        instead, so their controllers record the error per item, and the error is kept in
        ``last_error`` for ``/status``; it is not raised (``POST /reconcile`` answered 500)."""
        try:
            return await self.full_sweep()
        except errors.EconomicError as err:
            self.last_error = str(err)
            keys = sweeping.out_of_sync(self.ctx)
            for kind, kind_keys in keys.items():
                self.queue.add_many(kind, kind_keys)
            return sum(len(kind_keys) for kind_keys in keys.values())

    async def plan(self, kind: str | None = None) -> dict[str, Any]:
        return await planning.plan_report(self.ctx, kind=kind)

    def status(self) -> dict[str, Any]:
        """``entities`` and ``reconcile`` of ``GET /status``."""
        return {"entities": statuses.entity_counts(self.ctx.log.tables, self.ctx.options),
                "reconcile": {
                    "last_full_at": statuses.iso(self.last_full_at),
                    "last_incremental_at": statuses.iso(self.last_incremental_at),
                    "drift_repaired": statuses.drift_repaired(self.ctx.log.tables),
                    "strays": statuses.strays(self.ctx.log.tables),
                    "queue": {k: self.queue.depth(k) for k in KINDS},
                    "waiting": self.queue.waiting(),
                    "last_error": self.last_error}}

    # --- sweeps ---------------------------------------------------------------------------
    async def full_sweep(self) -> int:
        """Read everything, queue what differs; returns how many keys were queued. A kind
        e-conomic refuses to list (no project module, say) does not stop the others: its
        keys are queued unread, so its controller parks them with the reason."""
        return await self._sweep(None)

    async def incremental_sweep(self) -> int:
        return await self._sweep((self.last_incremental_at or self.wall()) - OVERLAP_S)

    async def _sweep(self, since: float | None) -> int:
        """One sweep. A kind e-conomic refuses to list for good (no project module) is noted
        in ``last_error`` and its keys are queued unread, so its controller parks them with
        the reason; the sweep still counts as done. A retryable failure raises after the
        other kinds were swept, and the schedule tries again soon."""
        async with self._turn:
            started = self.wall()
            queued = 0
            retry: errors.EconomicError | None = None
            refused: errors.EconomicError | None = None
            for kind, sweep in (("customer", sweeping.sweep_customers),
                                ("project", sweeping.sweep_projects)):
                try:
                    queued += await sweep(self.ctx, since=since)
                except errors.EconomicError as err:
                    if err.retryable:
                        retry = err
                        continue
                    refused = err
                    keys = sweeping.out_of_sync(self.ctx)[kind]
                    self.queue.add_many(kind, keys)
                    queued += len(keys)
            if since is None:
                if retry is None:
                    # a full reconcile tries parked items again (their cause may be fixed)
                    parked = [(st.kind, st.key) for st in self.ctx.log.tables.states().values()
                              if st.parked]
                    await self._unpark(parked, "full reconcile")
                    queued += len(parked)
                queued += sweeping.queue_invoices(self.ctx)
            self._first_sweep.set()
            failure = retry or refused
            self.last_error = str(failure) if failure is not None else None
            if retry is not None:
                raise retry
            self.last_incremental_at = started
            if since is None:
                self.last_full_at = started
            return queued

    # --- loops ----------------------------------------------------------------------------
    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                  ) -> None:
        """Run until cancelled: the worker and the sweep schedule."""
        for kind, keys in sweeping.out_of_sync(self.ctx).items():
            self.queue.add_many(kind, keys)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._work)
            tg.start_soon(self._schedule)
            task_status.started()

    async def step(self) -> bool:
        """One pass over the due keys, dependencies first; True when it did something."""
        async with self._turn:
            await self._unpark_dependents()
            did = False
            for kind in KINDS:
                keys = self.queue.take(kind, self.batch[kind])
                if keys:
                    did = True
                    await self.controllers[kind].reconcile(keys)
            return did

    async def _work(self) -> None:
        # the first full sweep reads what a backfill would otherwise read key by key
        with anyio.move_on_after(30.0):
            while not self._first_sweep.is_set():
                self.beat()  # waiting for the first sweep is idle waiting, not a wedge
                with anyio.move_on_after(self.idle_beat_s):
                    await self._first_sweep.wait()
        while True:
            if wedged():
                await anyio.sleep_forever()  # test hook: the watchdog must notice
            self.beat()
            if self.ctx.stopping:
                await anyio.sleep_forever()  # stopped: the task group is about to cancel us
            self.busy = True
            try:
                did = await self.step()
            finally:
                self.busy = False
            if did:
                continue
            nxt = self.queue.next_due()
            idle = self.idle_beat_s
            wait = idle if nxt is None else min(idle, max(0.0, nxt - time.monotonic()))
            await self.queue.wait(wait)

    async def _schedule(self) -> None:
        next_full = 0.0
        next_incr = self.reconcile_interval
        clock = time.monotonic
        start = clock()
        retry_s = min(30.0, self.reconcile_interval)
        while True:
            now = clock() - start
            full = self._full_now.is_set() or now >= next_full
            try:
                if full:
                    self._full_now = anyio.Event()
                    await self.full_sweep()
                    next_full = now + self.full_reconcile_interval
                    next_incr = now + self.reconcile_interval
                elif now >= next_incr:
                    await self.incremental_sweep()
                    next_incr = now + self.reconcile_interval
            except errors.EconomicError:  # e-conomic unreachable: try again soon
                next_incr = now + retry_s
                if full:
                    next_full = now + retry_s
            now = clock() - start
            with anyio.move_on_after(max(0.0, min(next_full, next_incr) - now)):
                await self._full_now.wait()

    def request_full(self) -> None:
        """Ask the schedule for a full sweep now (``POST /reconcile``)."""
        self._full_now.set()

    async def stop(self, *, grace: float = 10.0) -> bool:
        """Shutdown, step one: start no new write, and wait up to ``grace`` seconds for the
        calls in flight to finish and their outcomes to be recorded. Returns True when the
        pass ended in time; then cancel the task group. Whatever is left unfinished is
        found again from the log on the next start (open intents are looked up first)."""
        self.ctx.stopping = True
        with anyio.move_on_after(grace):
            while self.busy:  # noqa: ASYNC110 - the pass ends when its last call returns
                await anyio.sleep(0.02)
        return not self.busy

    # --- for tests and the demo -----------------------------------------------------------
    def idle(self) -> bool:
        return (not self.busy and self.queue.empty() and not self._retried
                and not self._changed)

    async def until_idle(self, *, settle: float = 0.05) -> None:
        """Return once nothing is queued, waiting or in flight (twice in a row)."""
        calm = 0
        while calm < 2:
            calm = calm + 1 if self.idle() else 0
            await anyio.sleep(settle)
