"""The reconciler the app runs: level-triggered loops over one work queue.

Keys are queued (never events): when desired state changes (the reconciler's consumer of the
log, :attr:`Reconciler.intake`, which a pass also pulls before it takes keys), by an
incremental sweep every ``reconcile_interval``, by a full sweep every
``full_reconcile_interval`` (and once at start), and by an operator (retry, resync, reconcile
now). The worker takes due keys kind by kind — customers, then projects, then invoices — at
most ``batch`` of each per pass (the bound on work in flight, with ``max_in_flight`` calls at
once), so dependencies go first. Every outcome is an event in the log; nothing here keeps
state the log does not have, except the queue itself, which a restart rebuilds from the log.

Use::

    rec = Reconciler(log=log, client=client, options=opts, clock=clock,
                     reconcile_interval=600.0, full_reconcile_interval=21600.0, observer=obs,
                     beat=pulse.beat)
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)

Time is the injected clock's (wall time recorded, monotonic time for due times; every wait is on
it). Idle and busy are events, never polls: :meth:`~Reconciler.until_settled` (nothing can happen
before time passes: what a fake clock awaits), :meth:`~Reconciler.until_idle`, :meth:`~.stop`.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence
from typing import Final

import anyio
import anyio.abc

from daemon import waiting
from daemon.core import backoff, callers, clocks, plans, reports
from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.economic import errors
from daemon.economic.client import EconomicClient
from daemon.moment.client import MomentClient
from daemon.reconcile import (
    auditing,
    controlling,
    controls,
    expenses,
    hearing,
    hooks,
    intake,
    invoices,
    kinds,
    observers,
    payments,
    planning,
    recording,
    specs,
    statuses,
    sweeping,
    unparking,
)
from daemon.reconcile.queueing import WorkQueue
from daemon.store import consuming, records
from daemon.store.eventlog import EventLog

OVERLAP_S: Final = 120.0
BATCH: Final = 2000  # keys of one kind per pass, unless ``batch`` says otherwise


class Reconciler:
    def __init__(self, *, log: EventLog, client: EconomicClient, options: mp.Options,
                 clock: clocks.Clock, reconcile_interval: float = 600.0,
                 full_reconcile_interval: float = 21600.0,
                 observer: observers.Observer | None = None, policy: backoff.Policy | None = None,
                 max_in_flight: int = 8, batch: dict[str, int] | None = None,
                 rng: random.Random | None = None, beat: Callable[[], None] | None = None,
                 idle_beat_s: float = 5.0, moment: MomentClient | None = None) -> None:
        self.clock = clock
        self.queue = WorkQueue(clock=clock)
        safe = observers.SafeObserver(observer or observers.NullObserver())
        self.controls = controls.Controls(
            log=log, client=client, options=options, queue=self.queue,
            outcomes=recording.Recorder(log=log, queue=self.queue, observer=safe,
                                        policy=policy, rng=rng, clock=clock),
            observer=safe, max_in_flight=max_in_flight, moment=moment)
        self.controllers: dict[str, controls.Controller] = {
            spec.kind: self._controller(spec) for spec in kinds.SPECS}
        self.hints = hearing.Hints(self.controls)  # e-conomic's webhook hints
        self.reconcile_interval = reconcile_interval
        self.full_reconcile_interval = full_reconcile_interval
        self.batch = {**{k: BATCH for k in kinds.NAMES}, **(batch or {})}
        self.beat = beat or (lambda: None)
        # how long an idle worker may wait between beats (the watchdog's beat_every)
        self.idle_beat_s = idle_beat_s
        self.last_full_at: float | None = None
        self.last_incremental_at: float | None = None
        self.last_error: str | None = None
        self.busy = False  # a pass is in flight
        self._sweeping = 0  # sweeps in flight (or waiting for their turn)
        self._pass_over = anyio.Event()  # set while no pass is in flight
        self._pass_over.set()
        self._settled = waiting.Condition(self.settled)
        self._idle = waiting.Condition(self.idle)
        self.unparker = unparking.Unparker(log)
        # A sweep's reads must not race a pass's writes (a stale read would queue a write
        # that was just made): sweeps run between passes.
        self._turn = anyio.Lock()
        self._away = False  # the worker is between its passes, neither passing nor idle
        self._first_sweep = anyio.Event()
        self._full_now = anyio.Event()
        # from the head: what came before is in the projections, which run() queues from
        self.intake = consuming.Consumer(name="reconcile", log=log, handle=self._on_events,
                                         clock=clock, on_moved=self._recheck)
        self._recheck()

    def _controller(self, spec: kinds.AnySpec) -> controls.Controller:
        """The controller of ``spec``'s kind: the record controller for a record kind, the
        transfer for invoices."""
        if isinstance(spec, specs.RecordSpec):
            return controlling.Records(spec, self.controls)
        if spec.kind == invoices.KIND:
            return invoices.Invoices(self.controls)
        if spec.kind == payments.KIND:
            return payments.Payments(self.controls)
        if spec.kind == expenses.KIND:
            return expenses.Expenses(self.controls)
        raise ValueError(f"kind {spec.kind} has no controller")

    @property
    def options(self) -> mp.Options:
        return self.controls.options

    @options.setter
    def options(self, value: mp.Options) -> None:
        """A reloaded configuration: the next pass and sweep map with it, and every entity it
        puts out of sync (say a country now named in another language) is queued at once, not
        left pending until the next sweep. Turning ``auto_book`` or ``include_pdf`` on is one
        such change: the invoices left with that step to take are out of sync
        (:meth:`~daemon.reconcile.entries.InvoiceSpec.out_of_sync`), so drafts applied while
        booking was off are booked in the next pass."""
        before = self.controls.options
        self.controls.options = value
        if value != before:
            self.queue_out_of_sync()

    def queue_out_of_sync(self) -> None:
        """Queue every key the log knows to be out of sync (what a start does first)."""
        for kind, keys in sweeping.out_of_sync(self.controls.log.tables, self.options).items():
            self.queue.add_many(kind, keys)

    # --- intake ---------------------------------------------------------------------------
    async def _on_events(self, batch: Sequence[records.Committed]) -> None:
        """Queue what ``batch`` asks for (see :mod:`.intake`); beat the pulse when a
        controller recorded progress."""
        if intake.take(batch, self.controls, unparker=self.unparker, hints=self.hints):
            self._progress()
        self._recheck()

    # --- operator -------------------------------------------------------------------------
    async def retry(self, kind: str, key: str, *, by: str = "operator") -> None:
        """Un-park ``kind:key`` and reconcile it now (and what waited on it)."""
        await self.controls.log.append(ev.RetryRequested(kind=kind, key=key, by=by),
                                  idempotency_key=f"retry:{kind}:{key}:{uuid.uuid4().hex}")

    def resync(self, kind: str, key: str) -> None:
        """Reconcile ``kind:key`` now (after ingest re-fetched it from Moment)."""
        self.queue.add(kind, key, force=True)
        self._recheck()

    async def reconcile_now(self) -> int:
        """A full sweep now; returns how many keys it queued. When e-conomic fails the sweep
        (refused tokens, 5xx, a timeout), the keys the log knows to be out of sync are queued
        instead, so their controllers record the error per item, and the error is kept in
        ``last_error`` for ``/status``; it is not raised (``POST /reconcile`` answered 500)."""
        try:
            return await self.full_sweep()
        except errors.EconomicError as err:
            self.last_error = str(err)
            keys = sweeping.out_of_sync(self.controls.log.tables, self.options)
            for kind, kind_keys in keys.items():
                self.queue.add_many(kind, kind_keys)
            return sum(len(kind_keys) for kind_keys in keys.values())

    async def plan(self, kind: str | None = None) -> plans.PlanReport:
        """``GET /plan``: what the daemon would do (read-only; see :mod:`.planning`)."""
        return await planning.plan(self.controls.log, self.controls.client, self.options,
                                   kind=kind)

    def status(self) -> reports.ReconcilerStatus:
        """``entities`` and ``reconcile`` of ``GET /status``."""
        tables = self.controls.log.tables
        return reports.ReconcilerStatus(
            entities=statuses.entity_counts(tables, self.options),
            reconcile=reports.Reconcile(
                last_full_at=clocks.iso_posix(self.last_full_at),
                last_incremental_at=clocks.iso_posix(self.last_incremental_at),
                last_hint_at=statuses.last_hint_at(tables),
                drift_repaired=statuses.drift_repaired(tables),
                strays=statuses.strays(tables),
                booked_mismatches=statuses.booked_mismatches(tables),
                queue={k: self.queue.depth(k) for k in kinds.NAMES},
                waiting=self.queue.waiting(), last_error=self.last_error))

    # --- sweeps ---------------------------------------------------------------------------
    async def full_sweep(self) -> int:
        """Read everything, queue what differs; returns how many keys were queued. A kind
        e-conomic refuses to list (no project module, say) does not stop the others: its
        keys are queued unread, so its controller parks them with the reason."""
        return await self._sweep(None)

    async def incremental_sweep(self) -> int:
        return await self._sweep((self.last_incremental_at or self.clock.now()) - OVERLAP_S)

    async def _sweep(self, since: float | None) -> int:
        """One sweep. A kind e-conomic refuses to list for good (no project module) is noted
        in ``last_error`` and its keys are queued unread, so its controller parks them with
        the reason; the sweep still counts as done. A retryable failure raises after the
        other kinds were swept, and the schedule tries again soon."""
        self._sweeping += 1
        self._recheck()
        if since is None:
            self.controls.chart.forget()  # a full sweep reads the books again
        try:
            return await self._sweep_in_turn(since)
        finally:
            self._sweeping -= 1
            self._recheck()

    async def _sweep_in_turn(self, since: float | None) -> int:
        async with self._turn:
            started = self.clock.now()
            queued, retry, refused = await sweeping.sweep_records(
                self.controls, since=since, beat=self._progress)
            if since is None:
                if retry is None:
                    # a full reconcile tries parked items again (their cause may be fixed)
                    parked = [(st.kind, st.key) for st in self.controls.log.tables.states().values()
                              if st.parked]
                    await self.unparker.unpark(parked, "full reconcile")
                    queued += len(parked)
                queued += sweeping.queue_unread(self.controls)
                await auditing.audit_booked(self.controls)  # reads only; reports differences
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
        self.queue_out_of_sync()
        async with anyio.create_task_group() as tg:
            await tg.start(self.intake.run)
            tg.start_soon(self._work)
            tg.start_soon(self._schedule)
            task_status.started()

    async def step(self) -> bool:
        """One pass over the due keys, dependencies first; True when it did something."""
        async with self._turn:
            await self.intake.pull()
            await self.unparker.round(pull=self.intake.pull)
            did = False
            for kind in kinds.NAMES:
                await self.intake.pull()  # what the last kind's outcomes released
                keys = self.queue.take(kind, self.batch[kind])
                if keys:
                    did = True
                    await self.controllers[kind].reconcile(keys)
            if self.hints.pending:  # after the repairs: a recreated record's stray is there
                did = True
                await self.hints.read_unmanaged()
            return did

    async def _work(self) -> None:
        # the worker's own e-conomic and Moment calls are the "reconcile" caller's, which the
        # watchdog excuses while they wait or run (not the sweeps': they must not hide a
        # wedged worker)
        callers.CALLER.set("reconcile")
        # the first full sweep reads what a backfill would otherwise read key by key
        first_sweep_by = self.clock.monotonic() + 30.0
        while not self._first_sweep.is_set():
            left = first_sweep_by - self.clock.monotonic()
            if left <= 0:
                break
            self.beat()  # waiting for the first sweep is idle waiting, not a wedge
            await waiting.wait_for(self._first_sweep, seconds=min(self.idle_beat_s, left),
                                   clock=self.clock)
        while True:
            self._away = True
            if hooks.wedged():
                await anyio.sleep_forever()  # test hook: the watchdog must notice
            self.beat()
            if self.controls.stopping:
                await anyio.sleep_forever()  # stopped: the task group is about to cancel us
            self._away = False
            self._passing(True)
            try:
                did = await self.step()
            finally:
                self._passing(False)
            if did:
                continue
            nxt = self.queue.next_due()
            idle = self.idle_beat_s
            wait = idle if nxt is None else min(idle, max(0.0, nxt - self.clock.monotonic()))
            await self.queue.wait(wait)

    async def _schedule(self) -> None:
        next_full = 0.0
        next_incr = self.reconcile_interval
        start = self.clock.monotonic()
        retry_s = min(30.0, self.reconcile_interval)
        while True:
            now = self.clock.monotonic() - start
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
            now = self.clock.monotonic() - start
            await waiting.wait_for(self._full_now, seconds=min(next_full, next_incr) - now,
                                   clock=self.clock)

    def request_full(self) -> None:
        """Ask the schedule for a full sweep now (``POST /reconcile``)."""
        self._full_now.set()
        self._recheck()

    async def stop(self, *, grace: float = 10.0) -> bool:
        """Shutdown, step one: start no new write, and wait up to ``grace`` seconds for the
        calls in flight to finish and their outcomes to be recorded. Returns True when the
        pass ended in time; then cancel the task group. Whatever is left unfinished is
        found again from the log on the next start (open intents are looked up first)."""
        self.controls.stopping = True
        return await waiting.wait_for(self._pass_over, seconds=grace, clock=self.clock)

    # --- idle and busy, as events ---------------------------------------------------------
    def _progress(self) -> None:
        """Beat for progress made on the worker's behalf (a sweep's pages, outcomes recorded),
        unless the worker is away from its pass and its idle wait: a worker hung there is a
        wedge, which the sweeps running beside it must not hide from the watchdog."""
        if not self._away:
            self.beat()

    def _passing(self, busy: bool) -> None:
        """A pass starts (True) or ends (False)."""
        self.busy = busy
        if busy:
            self._pass_over = anyio.Event()
        else:
            self._pass_over.set()
        self._recheck()

    def settled(self) -> bool:
        """Nothing can happen any more before time passes: no pass or sweep in flight or asked
        for, no key due now, no un-park pending."""
        nxt = self.queue.next_due()
        return (not self.busy and not self._sweeping and not self._full_now.is_set()
                and not self.unparker.pending and self.intake.lag == 0
                and not self.hints.pending
                and (nxt is None or nxt > self.clock.monotonic()))

    def idle(self) -> bool:
        """Nothing queued (due or backing off), and nothing in flight."""
        return self.settled() and self.queue.empty()

    def _recheck(self) -> None:
        """After anything that may change whether it is settled or idle."""
        self._settled.recheck()
        self._idle.recheck()

    async def until_settled(self) -> None:
        """Return once :meth:`settled` holds (at once when it does)."""
        await self._settled.wait()

    async def until_idle(self) -> None:
        """Return once :meth:`idle` holds (the clock must run for backoffs to come due)."""
        await self._idle.wait()
