"""What the controllers that write to Moment (payments, expenses) share: the pass over queued
keys and the recording of each item's outcome.

A pass (:meth:`MomentWrites.reconcile`) does nothing on a reconciler without Moment (a command
of e-conomic's only); otherwise it admits the keys (:mod:`daemon.reconcile.admitting`) and
applies them with at most ``max_in_flight`` at once, starting no new key once shutdown has
begun (the restart queues it again from the log). How an item is applied is the kind's own
(:meth:`MomentWrites.apply`).

Outcomes: a retryable failure (429, 5xx, transport, an answer that cannot be read) backs the
item off and leaves its intent open, so the next attempt reads before it writes; Moment refusing
parks it with the kind's sentence (:meth:`MomentWrites.explain`); a write done (or found done)
is recorded as ``Applied`` with Moment's id.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Sequence
from typing import Any, ClassVar, Generic

import anyio

from daemon.core import events as ev
from daemon.moment import errors as moment_errors
from daemon.reconcile import admitting, specs
from daemon.reconcile.controls import Controls
from daemon.reconcile.specs import D, F


class MomentWrites(abc.ABC, Generic[F, D]):
    """The controller of a kind written to Moment; a subclass names its ``kind``, ``action``
    and ``spec``, and says how an item is applied and why Moment refused it."""

    kind: ClassVar[str]
    #: the write's action, as ``Applied`` and ``WriteIntended`` record it
    action: ClassVar[str]
    spec: ClassVar[specs.Spec[Any, Any, Any]]

    def __init__(self, ctx: Controls) -> None:
        self.ctx = ctx

    async def reconcile(self, keys: Sequence[str]) -> None:
        ctx = self.ctx
        if ctx.moment is None:  # a reconciler without Moment (a command of e-conomic's only)
            return
        todo: list[specs.Item[F, D]] = await admitting.admit(ctx, self.spec, keys)
        limiter = anyio.Semaphore(ctx.max_in_flight)

        async def one(item: specs.Item[F, D]) -> None:
            async with limiter:
                if ctx.stopping:
                    return  # shutting down: the restart queues it again from the log
                await self.apply(item)

        async with anyio.create_task_group() as tg:
            for item in todo:
                tg.start_soon(one, item)

    @abc.abstractmethod
    async def apply(self, item: specs.Item[F, D]) -> None:
        """Bring one admitted item into Moment, recording its outcome."""

    @abc.abstractmethod
    def explain(self, item: specs.Item[F, D], action: str,
                err: moment_errors.MomentError) -> str:
        """The sentence an item is parked with when Moment refused ``action``."""

    async def refused(self, item: specs.Item[F, D], action: str,
                      err: moment_errors.MomentError) -> None:
        """A retryable ``err`` backs the item off (its intent stays open: the next attempt
        reads first); any other parks it with :meth:`explain`'s sentence."""
        outcomes, kind, key = self.ctx.outcomes, self.kind, item.key
        if err.retryable:
            await outcomes.fail(kind, key, action, err)
            return
        await outcomes.park(kind, key, reason=self.explain(item, action, err),
                            attempts=self.ctx.log.tables.state(kind, key).attempts + 1,
                            last_error=str(err))

    async def applied(self, item: specs.Item[F, D], moment_id: int | None, *,
                      warnings: tuple[str, ...] = (), found_by_lookup: bool = False) -> None:
        """Record that Moment holds the item (``moment_id`` its id there)."""
        kind, key = self.kind, item.key
        applied = ev.Applied(kind=kind, key=key, action=self.action, content_hash=item.content,
                             economic_number=moment_id, warnings=warnings,
                             found_by_lookup=found_by_lookup)
        await self.ctx.outcomes.applied(
            kind, key, [applied],
            idempotency_key=lambda _e: f"applied:{kind}:{key}:{uuid.uuid4().hex}")
