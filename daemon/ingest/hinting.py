"""Hint processing: every committed hint leads to one fetch of the object and its facts.

What it does: a consumer of the log (:mod:`daemon.store.consuming`) reads every
:class:`~daemon.core.events.HintReceived` (whoever appended it) after the hint watermark, queues
the Moment object it names, and a bounded pool of workers fetches each queued object's snapshot
and hands it to :class:`~daemon.ingest.ingesting.Ingestor`. Moment's retryable errors are
retried with exponential backoff and jitter (never sooner than ``Retry-After``); after
:attr:`Backoff.max_attempts` the object is parked with a reason. A 404 records the object as
gone. Any other failure (a bug, a log refusing a write) is retried with the same backoff, and
after :attr:`Backoff.max_attempts` the object is parked saying so: one object never holds the
watermark back.

Guarantees:

* Coalescing: while an object is queued, more hints for it add nothing; while it is being
  fetched, more hints add exactly one more fetch after this one (the change may have come
  after the fetch started). Fetches of one object start at least ``refetch_interval_s`` apart
  (the first at once), so a burst of hints lasting ``T`` seconds costs about
  ``1 + T / refetch_interval_s`` fetches of that object, however many hints it holds.
* At most ``concurrency`` Moment requests at a time (fetches and PDF downloads together); an
  object waiting for its refetch interval or a backoff holds no request slot.
* Crash safety: a watermark ``W`` (every hint with ``seq <= W`` has been processed to an
  outcome) is the consumer's tracking record, persisted as
  :class:`~daemon.core.events.HintWatermarkAdvanced` (a log from before that event kept it as
  ``PollCursorAdvanced(kind="hints")``, read the same way); on start the consumer reads again
  from ``W``, in its own task, so a start never waits for it. ``W`` moves past events that are
  not hints too (saved at least every :data:`SAVE_EVERY` events), so a restart re-reads little.
  A hint is processed at least once; processing is idempotent, so twice does no harm.
* Waits and the refetch interval go through the injected ``clock``, jitter through the injected
  ``jitter``, so tests run on virtual time. No task outlives :meth:`HintProcessor.run`.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import Final

import anyio
import anyio.abc
import structlog

from daemon.core import backoff, clocks
from daemon.core import events as ev
from daemon.core import rows as rw
from daemon.ingest import ingesting, normalizing, pdfs
from daemon.ingest.ingesting import Outcome
from daemon.moment import client as moment_client
from daemon.moment import errors
from daemon.store import consuming, eventlog, records

_log = structlog.get_logger(__name__)

#: Save the watermark at least this many events after the last save, hints or not.
SAVE_EVERY: Final = 10_000
_Key = tuple[normalizing.Kind, int]


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Exponential backoff with equal jitter (:func:`daemon.core.backoff.delay`): attempt ``n``
    waits between half and all of ``min(cap_s, base_s * 2**(n-1))``, and never less than
    Moment's ``Retry-After``."""

    base_s: float = 1.0
    cap_s: float = 60.0
    max_attempts: int = 8

    def delay(self, attempt: int, retry_after: float | None, jitter: float) -> float:
        policy = backoff.Policy(base_s=self.base_s, cap_s=self.cap_s,
                                max_attempts=self.max_attempts)
        return backoff.delay(policy, max(1, attempt), min(max(jitter, 0.0), 1.0), retry_after)


class HintProcessor:
    """Queue, coalesce, fetch and ingest Moment objects named by hints (see module doc).

    Start it with ``await tg.start(processor.run)``; :meth:`submit`, :meth:`process` and
    :meth:`ingest` are also what the poller and ``resync`` use, so every path produces the same
    events.
    """

    def __init__(self, *, log: eventlog.EventLog, client: moment_client.MomentClient,
                 concurrency: int = 4, backoff: Backoff = Backoff(),
                 clock: clocks.Clock,
                 jitter: Callable[[], float] = random.random,
                 checkpoint_interval_s: float = 10.0, refetch_interval_s: float = 1.0,
                 pdf_max_bytes: int = pdfs.MAX_PDF_BYTES) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.log = log
        self.ingestor = ingesting.Ingestor(log=log, client=client,
                                           limiter=anyio.CapacityLimiter(concurrency),
                                           pdf_max_bytes=pdf_max_bytes)
        self._client = client
        self._backoff = backoff
        self._clock = clock
        self._jitter = jitter
        self._checkpoint_interval_s = checkpoint_interval_s
        self._refetch_interval_s = refetch_interval_s
        self._last_start: dict[_Key, float] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._backlog: list[_Key] = []
        self._queued: set[_Key] = set()
        self._inflight: set[_Key] = set()
        self._again: set[_Key] = set()
        self._numbers: dict[_Key, str] = {}
        self._changed = anyio.Event()
        self._progress = anyio.Event()
        self._saving = False
        # hint bookkeeping for the watermark
        self._waiting_seqs: dict[_Key, list[int]] = {}
        self._outstanding: set[int] = set()
        self._persisted = saved_watermark(log)
        self._read_through = self._persisted
        self.fetches = 0
        self.consumer = consuming.Consumer(name="hints", log=log, handle=self._on_events,
                                           clock=clock,
                                           position=self._persisted)

    # --- intake ---------------------------------------------------------------------------

    def submit(self, kind: str, moment_id: int, *, number: str = "",
               hint_seq: int | None = None) -> bool:
        """Queue one object; False when it coalesced into work already pending."""
        if kind not in ev.KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        key: _Key = (kind, moment_id)
        if hint_seq is not None:
            self._waiting_seqs.setdefault(key, []).append(hint_seq)
            self._outstanding.add(hint_seq)
        if number:
            self._numbers[key] = number
        if key in self._queued or key in self._again:
            return False
        if key in self._inflight:
            self._again.add(key)
            return True
        self._start(key)
        return True

    def _start(self, key: _Key) -> None:
        self._queued.add(key)
        if self._tg is None:
            self._backlog.append(key)
        else:
            self._tg.start_soon(self._handle, key)

    async def _on_events(self, batch: Sequence[records.Committed]) -> None:
        """The consumer's handler: queue what each hint names; note how far the log was read
        (the processor's own watermark events do not count, so saving one saves no other)."""
        for seq, event in batch:
            if isinstance(event, ev.HintWatermarkAdvanced):
                continue
            if isinstance(event, ev.HintReceived) and event.kind in ev.KINDS:
                self.submit(event.kind, event.moment_id, number=event.number, hint_seq=seq)
            self._read_through = seq
        if self.watermark - self._persisted >= SAVE_EVERY:
            self._progress.set()
        self._poke()

    @property
    def pending(self) -> int:
        """Objects queued or being fetched."""
        return len(self._queued) + len(self._inflight)

    @property
    def watermark(self) -> int:
        """Every hint with ``seq <=`` this has been processed."""
        if self._outstanding:
            return min(self._outstanding) - 1
        return self._read_through

    @property
    def _busy(self) -> bool:
        return bool(self._queued or self._inflight or self._again)

    def _poke(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def idle(self) -> None:
        """Return once every event committed so far has been read, nothing is queued or being
        fetched, and the watermark save that progress asked for is done (the processor must be
        running)."""
        while True:
            await self.consumer.caught_up()
            changed = self._changed
            if self.consumer.position < self.log.last_seq:
                continue
            if not (self._busy or self._progress.is_set() or self._saving):
                return
            await changed.wait()

    # --- running --------------------------------------------------------------------------

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
                  ) -> None:
        """Follow the log from the watermark and fetch forever; started at once (the hints
        after the watermark are read again in the consumer's task). On cancellation the
        watermark reached is persisted."""
        if self.consumer.lag:
            _log.info("reading the log again from the hint watermark",
                      since=self.consumer.position, events=self.consumer.lag)
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                backlog, self._backlog = self._backlog, []
                for key in backlog:
                    tg.start_soon(self._handle, key)
                tg.start_soon(self._checkpoints)
                await tg.start(self.consumer.run)
                task_status.started()
        finally:
            self._tg = None
            with anyio.CancelScope(shield=True):
                try:
                    await self._persist()
                except Exception as exc:  # the log may already be closed at shutdown
                    _log.warning("hint watermark not saved", error=type(exc).__name__)

    async def _handle(self, key: _Key) -> None:
        """Wait out the object's refetch interval, then fetch and ingest it once."""
        wait = (self._last_start.get(key, float("-inf")) + self._refetch_interval_s
                - self._clock.monotonic())
        if wait > 0:
            await self._clock.sleep(wait)
        self._queued.discard(key)
        self._inflight.add(key)
        self._remember_start(key)
        taken = self._waiting_seqs.pop(key, [])
        done = False
        try:
            done = await self._until_an_outcome(key)
        finally:
            self._inflight.discard(key)
            if done:
                self._outstanding.difference_update(taken)
                self._progress.set()
            else:  # cancelled: the hints stay outstanding, so the watermark stays below them
                self._waiting_seqs.setdefault(key, []).extend(taken)
            if key in self._again:
                self._again.discard(key)
                self._start(key)
            else:
                self._numbers.pop(key, None)
            self._poke()

    async def _until_an_outcome(self, key: _Key) -> bool:
        """Fetch and ingest ``key``; a failure that is not Moment's (a bug, a log refusing a
        write) is retried with backoff, and after :attr:`Backoff.max_attempts` the object is
        parked saying so. True once an outcome is recorded; while even parking fails (the log
        is down), it keeps trying at the backoff's cap."""
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._fetch_and_ingest(*key, number=self._numbers.get(key, ""))
                return True
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                if attempt < self._backoff.max_attempts:
                    _log.warning("hint processing failed; retried", kind=key[0],
                                 moment_id=key[1], attempt=attempt, error=error, exc_info=True)
                elif await self._record_failure(key, attempts=attempt, error=error):
                    return True
            await self._clock.sleep(self._backoff.delay(attempt, None, self._jitter()))

    async def _record_failure(self, key: _Key, *, attempts: int, error: str) -> bool:
        kind, moment_id = key
        _log.error("hint processing failed; the object is parked", kind=kind,
                   moment_id=moment_id, attempts=attempts, error=error, exc_info=True)
        try:
            await self._park(
                kind, moment_id, number=self._numbers.get(key, ""), attempts=attempts,
                last_error=error,
                reason=f"moment-sync could not record Moment's {kind} id {moment_id} "
                       f"({error}; {attempts} attempts); it is fetched again on its next "
                       f"hint or poll, or resync it once the cause in the daemon's log is "
                       f"fixed")
        except Exception:
            _log.exception("parking the object failed too", kind=kind, moment_id=moment_id)
            return False
        return True

    def _remember_start(self, key: _Key) -> None:
        now = self._clock.monotonic()
        if len(self._last_start) > 10_000:
            horizon = now - self._refetch_interval_s
            self._last_start = {k: t for k, t in self._last_start.items() if t > horizon}
        self._last_start[key] = now

    async def _checkpoints(self) -> None:
        while True:
            await self._progress.wait()
            self._saving = True
            self._progress = anyio.Event()
            try:
                await self._persist()
            except Exception as exc:  # the log refused: the next progress saves it
                _log.warning("hint watermark not saved", error=f"{type(exc).__name__}: {exc}")
            finally:
                self._saving = False
                self._poke()
            await self._clock.sleep(self._checkpoint_interval_s)

    async def _persist(self) -> None:
        mark = self.watermark
        if mark <= self._persisted:
            return
        await self.log.append(ev.HintWatermarkAdvanced(through=mark),
                              idempotency_key=f"hints:watermark:{mark}")
        self._persisted = mark

    # --- one object -----------------------------------------------------------------------

    async def process(self, kind: str, moment_id: int, *, number: str = "") -> Outcome:
        """Fetch one object now (in the caller's task, with retries) and record it."""
        if kind not in ev.KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        return await self._fetch_and_ingest(kind, moment_id,
                                            number=number)

    async def ingest(self, snapshot: normalizing.Snapshot) -> Outcome:
        """Record a snapshot already fetched (by the poller); when the PDF download fails in a
        retryable way, the object is queued for the usual retries instead."""
        try:
            return await self.ingestor.ingest(snapshot)
        except errors.RetryableError:
            self.submit(normalizing.kind_of(snapshot), snapshot.id,
                        number=normalizing.number_of(snapshot))
            return Outcome.QUEUED

    async def _fetch(self, kind: normalizing.Kind, moment_id: int) -> normalizing.Snapshot:
        self.fetches += 1
        async with self.ingestor.limiter:
            if kind == "customer":
                return await self._client.get_customer(moment_id)
            if kind == "project":
                return await self._client.get_project(moment_id)
            return await self._client.get_invoice(moment_id)

    async def _fetch_and_ingest(self, kind: normalizing.Kind, moment_id: int, *,
                                number: str) -> Outcome:
        attempt = 0
        while True:
            attempt += 1
            try:
                snapshot = await self._fetch(kind, moment_id)
                return await self.ingestor.ingest(snapshot)
            except errors.NotFound:
                return await self.ingestor.gone(kind, moment_id)
            except errors.RetryableError as exc:
                if attempt >= self._backoff.max_attempts:
                    return await self._park(
                        kind, moment_id, number=number, attempts=attempt, last_error=str(exc),
                        reason=f"Moment did not answer for {kind} id {moment_id} after "
                               f"{attempt} attempts (last: {exc}); it is fetched again on "
                               f"its next hint or poll, or resync it once Moment answers")
                delay = self._backoff.delay(attempt, exc.retry_after, self._jitter())
                _log.info("moment fetch retried", kind=kind, moment_id=moment_id,
                          attempt=attempt, delay_s=round(delay, 3), error=str(exc))
                await self._clock.sleep(delay)
            except errors.Unauthorized as exc:
                return await self._park(
                    kind, moment_id, number=number, attempts=attempt, last_error=str(exc),
                    reason=f"Moment refused the API key when fetching {kind} id {moment_id} "
                           f"({exc}); check [moment] api_key_file (or the moment-api-key "
                           f"credential) and company, then resync it")
            except errors.TerminalError as exc:
                return await self._park(
                    kind, moment_id, number=number, attempts=attempt, last_error=str(exc),
                    reason=f"Moment's answer for {kind} id {moment_id} cannot be used ({exc}); "
                           f"check the object in Moment, then resync it")

    async def _park(self, kind: normalizing.Kind, moment_id: int, *, number: str, reason: str,
                    attempts: int, last_error: str) -> Outcome:
        # by what Moment's API said of this object (the log), never by the hint's number: a
        # hint's body is untrusted, and its number could name another object
        key = self.ingestor.known_key(kind, moment_id, include_gone=True) or f"id:{moment_id}"
        return await self.ingestor.park(kind, moment_id, key=key, reason=reason,
                                        attempts=attempts, last_error=last_error)


def saved_watermark(log: eventlog.EventLog) -> int:
    """The hint watermark the log holds (0 when none was ever saved)."""
    row = log.tables.daemon().get(rw.HINT_WATERMARK)
    return int(row.value) if row is not None and row.value.isdigit() else 0
