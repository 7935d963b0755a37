"""The controller of every kind whose live state is one e-conomic record (a
:class:`~daemon.reconcile.specs.RecordSpec`: customers, projects): read, plan, write only what
differs, merge into the live record.

A pass over queued keys admits them (:mod:`daemon.reconcile.admitting`), finds each one's live
record (the sweep's read when one travelled with the key, else one filtered read for all the
rest, 200 numbers a call), then applies them with at most ``max_in_flight`` at once. Applying
is the spec's plan (:meth:`~daemon.reconcile.specs.Spec.decide`, the same call ``plan`` makes)
and then: nothing to write → record it in sync; a report (a closed project) → park with the
sentence; a write → intent, write, ``Applied`` (with ``DriftRepaired`` when someone had changed
or deleted the record in e-conomic), and for a recreated record a look for the stray that took
its place.

Guarantees: each write's intent is committed before it is sent and its key reused on retries of
the same content; the live record is always read before writing (the lookup of the natural key
that an unknown earlier outcome requires); a key whose live record could not be read is
recorded as refused, not applied; a 409 is retried after a fresh read; once shutdown has begun
no new key starts.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from typing import Generic

import anyio

from daemon.core import events as ev
from daemon.core import plans
from daemon.economic import errors
from daemon.reconcile import admitting, specs
from daemon.reconcile.controls import Controls
from daemon.reconcile.specs import D, F, L, P


class Records(Generic[F, D, L, P]):
    """Reconciles queued keys of one record kind; see the module docstring."""

    def __init__(self, spec: specs.RecordSpec[F, D, L, P], controls: Controls) -> None:
        self.spec = spec
        self.kind = spec.kind
        self.controls = controls

    async def reconcile(self, keys: Sequence[str]) -> None:
        todo = {i.key: i for i in await admitting.admit(self.controls, self.spec, keys)}
        live = await self.read_live(todo)
        limiter = anyio.Semaphore(self.controls.max_in_flight)

        async def one(key: str) -> None:
            async with limiter:
                if self.controls.stopping:
                    return  # shutting down: the restart queues it again from the log
                await self.apply(todo[key], live.get(key))

        async with anyio.create_task_group() as tg:
            for key in todo:
                tg.start_soon(one, key)

    async def read_live(self, todo: dict[str, specs.Item[F, D]]) -> dict[str, P | None]:
        """Live records for the items of ``todo``; items that could not be read are refused
        and removed from ``todo``."""
        spec, c = self.spec, self.controls
        live: dict[str, P | None] = {}
        unread: list[str] = []
        for key in todo:
            has, rec = c.queue.hint(spec.kind, key)
            if has and rec is None:
                live[key] = None
            elif has and isinstance(rec, spec.record_type):
                live[key] = rec
            else:
                unread.append(key)
        if unread:
            numbers = {key: spec.number(self._desired(todo[key])) for key in unread}
            try:
                found = await spec.fetch(c.client, list(numbers.values()))
            except errors.EconomicError as err:
                await c.outcomes.refused_many(spec.kind, unread, spec.verbs[1], err)
                for key in unread:
                    del todo[key]
            else:
                for key in unread:
                    live[key] = found.get(numbers[key])
        return live

    @staticmethod
    def _desired(item: specs.Item[F, D]) -> D:
        assert item.desired is not None  # admitted items are mapped
        return item.desired

    async def apply(self, item: specs.Item[F, D], live: P | None) -> None:
        spec, c = self.spec, self.controls
        kind, key = spec.kind, item.key
        item = dataclasses.replace(item, state=c.log.tables.state(kind, key))  # as of now
        desired = self._desired(item)
        action = spec.decide(item, spec.live(live) if live is not None else None, c.options)
        if action.name == "nothing":
            await c.outcomes.applied(
                kind, key, spec.in_sync(item, live),
                idempotency_key=lambda _e: f"applied:{kind}:{key}:{item.content}:"
                                           f"{uuid.uuid4().hex}")
            return
        if not action.writes:  # a report: only a person can do it (reopen a closed project)
            await c.outcomes.park(kind, key, reason=action.detail)
            return
        verb = spec.verb(live)
        ikey = await c.outcomes.intent(kind, key, verb, f"{item.content}{spec.version(live)}")
        try:
            await spec.write(c.client, desired, live, idempotency_key=ikey)
        except errors.Conflict as err:  # written in between: read again, then write
            err.retryable = True
            await c.outcomes.fail(kind, key, verb, err)
            return
        except errors.EconomicError as err:
            await c.outcomes.refused(kind, key, verb, err)
            return
        drift = plans.drift(action, applied_hash=item.state.applied_hash, content=item.content)
        out: list[ev.Event] = [ev.Applied(kind=kind, key=key, action=verb,
                                          content_hash=item.content,
                                          economic_number=spec.number(desired),
                                          warnings=item.mapped.warnings)]
        if drift:
            out.append(ev.DriftRepaired(kind=kind, key=key, fields=drift,
                                        detail=action.detail or "changed in e-conomic"))
        await c.outcomes.applied(kind, key, out,
                                 idempotency_key=lambda e: f"{type(e).__name__}:{ikey}")
        if drift:
            c.observer.drift_repaired(kind, key, list(drift))
        if action.name == "recreate":
            await self.report_strays(desired)

    async def report_strays(self, desired: D) -> None:
        """Look for the record that took this one's place (renumbered) and report it."""
        spec, c = self.spec, self.controls
        flt = spec.stray_filter(desired)
        if flt is None:
            return  # the next full sweep reports it
        try:
            candidates = [spec.live(r) async for r in spec.listing(c.client, flt)]
        except errors.EconomicError:
            return  # the full sweep reports it later
        rows = spec.rows(c.log.tables)
        moment = {int(k) for k in rows if k.isdigit()}
        await c.outcomes.strays(spec.strays([desired], candidates, moment))

