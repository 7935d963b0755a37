"""The part of a customer or project pass that is the same for both: find each key's live
record (the sweep's hint when it has one, else one filtered read for all the rest), then apply
the keys with at most ``max_in_flight`` at once.

Guarantees: a key whose live record could not be read is recorded as refused (retryable errors
back off) and not applied; once shutdown has begun no new key starts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio

from daemon.economic import errors
from daemon.reconcile.outcomes import Context

R = TypeVar("R")
M = TypeVar("M")


async def read_live(ctx: Context, kind: str, todo: dict[str, Any], record_type: type[R],
                    fetch: Callable[[Context, Sequence[int]], Awaitable[dict[int, R]]],
                    action: str) -> dict[str, R | None]:
    """Live records for the keys of ``todo`` (mapped desired values with ``.value.number``);
    keys that could not be read are refused and removed from ``todo``."""
    live: dict[str, R | None] = {}
    unread: list[str] = []
    for key in todo:
        has, rec = ctx.queue.hint(kind, key)
        if has and (rec is None or isinstance(rec, record_type)):
            live[key] = rec
        else:
            unread.append(key)
    if unread:
        try:
            found = await fetch(ctx, [todo[k].value.number for k in unread])
        except errors.EconomicError as err:
            await ctx.refused_many(kind, unread, action, err)
            for key in unread:
                del todo[key]
        else:
            for key in unread:
                live[key] = found.get(todo[key].value.number)
    return live


async def apply_all(ctx: Context, todo: dict[str, M], live: dict[str, R | None],
                    apply: Callable[[str, M, R | None], Awaitable[None]]) -> None:
    """``apply`` every key of ``todo``, at most ``ctx.max_in_flight`` at once."""
    limiter = anyio.Semaphore(ctx.max_in_flight)

    async def one(key: str) -> None:
        async with limiter:
            if ctx.stopping:
                return  # shutting down: the restart queues it again from the log
            await apply(key, todo[key], live.get(key))

    async with anyio.create_task_group() as tg:
        for key in todo:
            tg.start_soon(one, key)
