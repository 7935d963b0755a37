"""What every controller shares: its context, and how outcomes are recorded.

Every outcome of talking to e-conomic is an event committed to the log before the next step:
an intent (with its idempotency key) before the first send, then applied, failed (with the
backoff it earned) or parked (with a reason a person can act on). A failure never stops other
items. Retryable failures back the item off exponentially with jitter; after
``policy.max_attempts`` the item is parked. Terminal failures park at once.

Also the test-only hooks: ``MOMENT_SYNC_TEST_CRASH_AT=<step>`` kills the process with SIGKILL
the first time the invoice transfer reaches that named step (see :data:`CRASH_POINTS`), and
``MOMENT_SYNC_TEST_WEDGE=1`` makes the reconcile loop hang without beating its watchdog pulse.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import signal
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import anyio

from daemon.core import backoff
from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.economic import errors
from daemon.economic.client import EconomicClient
from daemon.reconcile.queueing import WorkQueue
from daemon.store.eventlog import EventLog

CRASH_ENV: Final = "MOMENT_SYNC_TEST_CRASH_AT"
WEDGE_ENV: Final = "MOMENT_SYNC_TEST_WEDGE"
_log = logging.getLogger(__name__)
CRASH_POINTS: Final = (
    "invoice.after_intent",        # transfer intent committed, nothing sent
    "invoice.after_send",          # bulk draft entries created, outcome not recorded
    "invoice.after_entry",         # InvoiceEntryCreated committed
    "invoice.after_attach_send",   # PDF attached, outcome not recorded
    "invoice.after_attach",        # InvoicePdfAttached committed
    "invoice.after_book_intent",   # booking intent committed, nothing sent
    "invoice.after_book_send",     # booked, outcome not recorded
    "invoice.after_book",          # InvoiceBooked committed, completion not yet
)


def crash_point(step: str) -> None:
    """Test hook: SIGKILL this process when ``$MOMENT_SYNC_TEST_CRASH_AT`` names ``step``."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def wedged() -> bool:
    return os.environ.get(WEDGE_ENV) == "1"


class Observer(Protocol):
    """Where alerts and metrics go (the app adapts :mod:`daemon.ops` to this)."""

    def parked(self, kind: str, key: str, reason: str) -> None: ...

    def pdf_skipped(self, invoice: str, reason: str) -> None: ...

    def drift_repaired(self, kind: str, key: str, fields: list[str]) -> None: ...


class SafeObserver:
    """Calls an observer and keeps its failures away from the reconcile loop."""

    def __init__(self, inner: Observer) -> None:
        self.inner = inner

    def parked(self, kind: str, key: str, reason: str) -> None:
        try:
            self.inner.parked(kind, key, reason)
        except Exception:
            _log.exception("observer failed on parked %s:%s", kind, key)

    def pdf_skipped(self, invoice: str, reason: str) -> None:
        try:
            self.inner.pdf_skipped(invoice, reason)
        except Exception:
            _log.exception("observer failed on pdf_skipped %s", invoice)

    def drift_repaired(self, kind: str, key: str, fields: list[str]) -> None:
        try:
            self.inner.drift_repaired(kind, key, fields)
        except Exception:
            _log.exception("observer failed on drift_repaired %s:%s", kind, key)


class NullObserver:
    def parked(self, kind: str, key: str, reason: str) -> None:
        pass

    def pdf_skipped(self, invoice: str, reason: str) -> None:
        pass

    def drift_repaired(self, kind: str, key: str, fields: list[str]) -> None:
        pass


@dataclass
class Context:
    log: EventLog
    client: EconomicClient
    options: mp.Options
    queue: WorkQueue
    observer: Observer = field(default_factory=NullObserver)
    policy: backoff.Policy = field(default_factory=backoff.Policy)
    rng: random.Random = field(default_factory=random.Random)
    wall: Callable[[], float] = time.time
    max_in_flight: int = 8
    stopping: bool = False  # set on shutdown: start no new write, finish the ones in flight
    # The reconcile loop's watchdog pulse: beaten for progress inside long passes (a sweep's
    # pages), not only between them.
    beat: Callable[[], None] = field(default=lambda: None)

    # --- intents ------------------------------------------------------------------------
    def open_intent(self, kind: str, key: str, action: str) -> str | None:
        """The idempotency key of an intent recorded but not yet closed by ``Applied``."""
        return self.log.tables.state(kind, key).intents.get(action) or None

    async def intent(self, kind: str, key: str, action: str, content: str) -> str:
        """The key to send: the open intent's when it was for the same ``content``, else a new
        one, committed durably (``WriteIntended``) before this returns."""
        prefix = f"{kind}:{key}:{action}:{content}:"
        open_key = self.open_intent(kind, key, action)
        if open_key is not None and open_key.startswith(prefix):
            return open_key
        return await self.new_intent(kind, key, action, content)

    async def new_intent(self, kind: str, key: str, action: str, content: str) -> str:
        ikey = f"{kind}:{key}:{action}:{content}:{uuid.uuid4().hex[:12]}"
        await self.log.append(ev.WriteIntended(kind=kind, key=key, action=action,
                                               idempotency_key=ikey, content_hash=content),
                              idempotency_key=f"intent:{ikey}")
        return ikey

    # --- failures -----------------------------------------------------------------------
    async def fail(self, kind: str, key: str, action: str, err: errors.EconomicError, *,
                   draw: float | None = None) -> None:
        """A retryable failure: back off, or park once the attempts are spent. Items of one
        batch call share ``draw``, so they come due together and go in one call again."""
        state = self.log.tables.state(kind, key)
        attempt = state.attempts + 1
        if backoff.exhausted(self.policy, attempt):
            await self.park(kind, key, reason=f"e-conomic kept failing ({attempt} attempts) "
                                              f"while {describe(action)}; it will be tried "
                                              "again when retried", attempts=attempt,
                            last_error=str(err))
            return
        wait = backoff.delay(self.policy, attempt, self.rng.random() if draw is None else draw,
                             err.retry_after)
        await self.log.append(
            ev.Failed(kind=kind, key=key, action=action, error=str(err), retryable=True,
                      attempt=attempt, retry_at=self.wall() + wait),
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

    async def refused(self, kind: str, key: str, action: str, err: errors.EconomicError, *,
                      draw: float | None = None) -> None:
        """Route an error: retryable → :meth:`fail`; terminal → park with an explanation and
        a fresh intent key, so the retry after the fix is not answered from e-conomic's
        idempotency cache with the old refusal."""
        if err.retryable:
            await self.fail(kind, key, action, err, draw=draw)
            return
        open_key = self.open_intent(kind, key, action)
        if open_key is not None:
            content = open_key.split(":")[3] if open_key.count(":") >= 4 else ""
            await self.new_intent(kind, key, action, content)
        await self.park(kind, key, reason=explain(kind, key, action, err),
                        attempts=self.log.tables.state(kind, key).attempts + 1,
                        last_error=str(err))


    async def refused_many(self, kind: str, keys: Sequence[str], action: str,
                           err: errors.EconomicError, *, retry: bool = False) -> None:
        """:meth:`refused` (or :meth:`fail` with ``retry``) for many items at once: their
        outcomes commit together (the log groups concurrent appends into one transaction)."""
        draw = self.rng.random()
        async with anyio.create_task_group() as tg:
            for key in keys:
                if retry:
                    tg.start_soon(functools.partial(self.fail, kind, key, action, err,
                                                    draw=draw))
                else:
                    tg.start_soon(functools.partial(self.refused, kind, key, action, err,
                                                    draw=draw))


_ACTIONS: Final = {"put": "writing the customer", "create": "creating the project",
                   "update": "updating the project", "transfer": "creating the journal entry",
                   "attach": "attaching the PDF", "book": "booking the entry",
                   "read": "reading e-conomic"}


def describe(action: str) -> str:
    return _ACTIONS.get(action, action)


def explain(kind: str, key: str, action: str, err: errors.EconomicError) -> str:
    """A sentence an accountant can act on, for a terminal refusal."""
    what = f"{kind} {key}"
    if isinstance(err, errors.MissingModule):
        return (f"{what}: the e-conomic agreement has no project module (Projektstyring); "
                "enable it in e-conomic, then retry")
    if isinstance(err, errors.Unauthorized):
        return (f"{what}: e-conomic refused the daemon's tokens; install the app again and "
                "update the agreement grant token, then retry")
    if isinstance(err, errors.Forbidden):
        return (f"{what}: the app's role in e-conomic does not allow {describe(action)}; "
                "give the app the SuperUser role, then retry")
    if isinstance(err, errors.ValidationError):
        detail = "; ".join(f"{k or 'request'}: {' '.join(v)}" for k, v in err.fields.items())
        return (f"{what}: e-conomic refused {describe(action)}"
                f"{' (' + err.code + ')' if err.code else ''}: {detail or err.message}; "
                "fix the data in Moment or the settings in e-conomic, then retry")
    return f"{what}: e-conomic refused {describe(action)}: {err}"
