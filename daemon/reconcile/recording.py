"""The outcome recorder: every outcome of talking to e-conomic (or, for the kinds that flow the
other way, to Moment), committed to the log before the next step.

An intent (with its idempotency key) before the first send; then applied, failed (with the
backoff it earned) or parked (with a reason a person can act on). A failure never stops other
items. Retryable failures back the item off exponentially with jitter (:mod:`daemon.core
.backoff`); after ``policy.max_attempts`` the item is parked. Terminal failures park at once.

Guarantees: a method returns only once its events are durable; the queue is told (deferred,
discarded, dependents released) only after that; the observer hears of a parked item only
after its ``Parked`` is durable. Never sends anything to e-conomic.
"""

from __future__ import annotations

import functools
import random
import uuid
from collections.abc import Callable, Sequence

import anyio

from daemon.core import backoff, clocks, plans
from daemon.core import events as ev
from daemon.economic import errors
from daemon.moment import errors as moment_errors
from daemon.reconcile import observers, reasons
from daemon.reconcile.queueing import WorkQueue
from daemon.store.eventlog import EventLog

#: An error of either client: both say ``retryable``; a retryable one may carry ``retry_after``.
Refusal = errors.EconomicError | moment_errors.MomentError


class Recorder:
    """Records intents and outcomes of one log, and tells the queue what they mean."""

    def __init__(self, *, log: EventLog, queue: WorkQueue, observer: observers.Observer,
                 clock: clocks.Clock, policy: backoff.Policy | None = None,
                 rng: random.Random | None = None) -> None:
        self.log = log
        self.queue = queue
        self.observer = observer
        self.policy = policy or backoff.Policy()
        self.rng = rng or random.Random()
        self.clock = clock

    # --- intents ------------------------------------------------------------------------
    def open_intent(self, kind: str, key: str, action: str) -> str | None:
        """The idempotency key of an intent recorded but not yet closed by ``Applied``."""
        return self.log.tables.state(kind, key).intents.get(action) or None

    async def intent(self, kind: str, key: str, action: str, content: str) -> str:
        """The key to send: the open intent's when it was for the same ``content``, else a new
        one, committed durably (``WriteIntended``) before this returns."""
        open_key = self.open_intent(kind, key, action)
        if open_key is not None and open_key.startswith(f"{kind}:{key}:{action}:{content}:"):
            return open_key
        return await self.new_intent(kind, key, action, content)

    async def new_intent(self, kind: str, key: str, action: str, content: str) -> str:
        """A fresh idempotency key for ``content``, committed as a ``WriteIntended``."""
        ikey = f"{kind}:{key}:{action}:{content}:{uuid.uuid4().hex[:12]}"
        await self.log.append(ev.WriteIntended(kind=kind, key=key, action=action,
                                               idempotency_key=ikey, content_hash=content),
                              idempotency_key=f"intent:{ikey}")
        return ikey

    async def _intended_content(self, kind: str, key: str, ikey: str) -> str:
        """The content hash the ``WriteIntended`` of ``ikey`` recorded for this entity."""
        for record in reversed(await self.log.read_entity(kind, key)):
            event = record.event
            if isinstance(event, ev.WriteIntended) and event.idempotency_key == ikey:
                return event.content_hash
        return ""

    # --- outcomes -----------------------------------------------------------------------
    async def applied(self, kind: str, key: str, events: Sequence[ev.Event], *,
                      idempotency_key: Callable[[ev.Event], str]) -> None:
        """Commit ``events`` (an ``Applied``, with what came of it) in one transaction, then
        queue what waited on the item."""
        if events:
            await self.log.append_many([(e, idempotency_key(e), None) for e in events])
        self.queue.release(kind, key)

    async def strays(self, strays: Sequence[plans.Stray]) -> int:
        """A ``StrayReported`` for each stray not reported before; returns how many. A stray is
        reported, never deleted."""
        known = self.log.tables.daemon()
        new = [s for s in strays if f"stray:{s.kind}:{s.number}" not in known]
        if new:
            await self.log.append_many([
                (ev.StrayReported(kind=s.kind, key=s.managed_key, number=s.number, note=s.note),
                 f"stray:{s.kind}:{s.number}:{s.managed_key}", None) for s in new])
        return len(new)

    async def fail(self, kind: str, key: str, action: str, err: Refusal, *,
                   draw: float | None = None) -> None:
        """A retryable failure: back off, or park once the attempts are spent. Items of one
        batch call share ``draw``, so they come due together and go in one call again."""
        attempt = self.log.tables.state(kind, key).attempts + 1
        if backoff.exhausted(self.policy, attempt):
            await self.park(kind, key, reason=reasons.kept_failing(
                action, attempt, service=reasons.service_of(err)),
                            attempts=attempt, last_error=str(err))
            return
        retry_after = getattr(err, "retry_after", None)
        wait = backoff.delay(self.policy, attempt, self.rng.random() if draw is None else draw,
                             retry_after if isinstance(retry_after, int | float) else None)
        await self.log.append(
            ev.Failed(kind=kind, key=key, action=action, error=str(err), retryable=True,
                      attempt=attempt, retry_at=self.clock.now() + wait),
            idempotency_key=f"failed:{kind}:{key}:{uuid.uuid4().hex}")
        self.queue.defer(kind, key, wait)

    async def park(self, kind: str, key: str, *, reason: str, attempts: int = 0,
                   last_error: str = "") -> None:
        """Stop working on the item until an operator retries it; alert; release dependents
        (they park with the same reason when they are looked at)."""
        state = self.log.tables.state(kind, key)
        if state.parked and state.reason == reason:
            return
        await self.log.append(
            ev.Parked(kind=kind, key=key, reason=reason, attempts=attempts or state.attempts,
                      last_error=last_error),
            idempotency_key=f"parked:{kind}:{key}:{uuid.uuid4().hex}")
        self.queue.discard(kind, key)
        self.observer.parked(kind, key, reason)
        self.queue.release(kind, key)

    async def refused(self, kind: str, key: str, action: str, err: Refusal, *,
                      draw: float | None = None) -> None:
        """Route an error: retryable → :meth:`fail`; terminal → park with an explanation and
        a fresh intent key for the same content (the hash its ``WriteIntended`` recorded), so
        the retry after the fix is not answered from e-conomic's idempotency cache with the
        old refusal."""
        if err.retryable:
            await self.fail(kind, key, action, err, draw=draw)
            return
        open_key = self.open_intent(kind, key, action)
        if open_key is not None and isinstance(err, errors.EconomicError):
            content = await self._intended_content(kind, key, open_key)
            await self.new_intent(kind, key, action, content)
        await self.park(kind, key, reason=reasons.explain(kind, key, action, err),
                        attempts=self.log.tables.state(kind, key).attempts + 1,
                        last_error=str(err))

    async def refused_many(self, kind: str, keys: Sequence[str], action: str,
                           err: errors.EconomicError, *, retry: bool = False) -> None:
        """:meth:`refused` (or :meth:`fail` with ``retry``) for many items at once: their
        outcomes commit together (the log groups concurrent appends into one transaction)."""
        draw = self.rng.random()
        record = self.fail if retry else self.refused
        async with anyio.create_task_group() as tg:
            for key in keys:
                tg.start_soon(functools.partial(record, kind, key, action, err, draw=draw))
