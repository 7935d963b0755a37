"""Watching Litestream replicate the event log (``[replication] metrics_url``).

Litestream copies each WAL frame of the log into its shadow WAL beside the file, then uploads
it to every replica; its ``/metrics`` say how far each has got:
``litestream_shadow_wal_index`` and ``litestream_shadow_wal_size`` (what it has taken from the
log, by database path) and ``litestream_replica_wal_index`` and ``litestream_replica_wal_offset``
(what a replica holds, by database path and replica name). A replica that cannot be written (no
bucket, refused credentials) never gets those series, or stops moving.

:class:`Watch` samples the metrics and remembers each shadow position it saw, with when; the
replica is behind by the age of the oldest position it does not hold yet, so a busy log that
the replica follows a second later is never called failing, and a replica that stopped moving
is behind by the time since. Replication fails when that lag, or the time Litestream's metrics
have not been readable, exceeds ``max_lag``. Nothing here slows or stops syncing: the daemon
keeps working, and the verdict goes to ``/status``, the ``replication`` check and an alert.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Final

import aiohttp
import msgspec
from prometheus_client.parser import text_string_to_metric_families

from daemon.core import clocks, reports

FETCH_TIMEOUT_S: Final = 5.0

Position = tuple[int, int]  # (WAL index, byte offset) within Litestream's current generation


class Sample(msgspec.Struct, frozen=True, kw_only=True):
    """One reading of Litestream's metrics for one database."""

    shadow: Position | None = None  # None: Litestream does not replicate this database
    replicas: dict[str, Position] = msgspec.field(default_factory=dict)


def read_sample(text: str, db_path: str) -> Sample:
    """The positions of ``db_path`` in Litestream's metrics text (Prometheus format)."""
    want = os.path.realpath(db_path)
    values: dict[str, dict[str, float]] = {}  # series -> replica name ("" for the db) -> value
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            db = s.labels.get("db")
            if db is None or os.path.realpath(db) != want:
                continue
            values.setdefault(s.name, {})[s.labels.get("name", "")] = s.value
    index = values.get("litestream_shadow_wal_index", {}).get("")
    size = values.get("litestream_shadow_wal_size", {}).get("")
    shadow = (int(index), int(size)) if index is not None and size is not None else None
    offsets = values.get("litestream_replica_wal_offset", {})
    replicas = {name: (int(i), int(offsets[name]))
                for name, i in values.get("litestream_replica_wal_index", {}).items()
                if name in offsets}
    return Sample(shadow=shadow, replicas=replicas)


async def fetch(url: str) -> str:
    """Litestream's metrics text (raises ``aiohttp.ClientError`` or ``TimeoutError``)."""
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as reply:
        reply.raise_for_status()
        return await reply.text()


class Watch:
    """The replication verdict over time; :meth:`observe` takes one sample."""

    def __init__(self, *, url: str, db_path: str, max_lag: float, clock: clocks.Clock,
                 fetch_text: Callable[[str], Awaitable[str]] = fetch) -> None:
        self.url = url
        self.db_path = db_path
        self.max_lag = max_lag
        self.clock = clock
        self._fetch = fetch_text
        self._since = clock.monotonic()  # the oldest moment the replica may lag from
        self._pending: list[tuple[float, Position]] = []  # shadow positions not yet replicated
        self.problem = ""  # why the replica is not keeping up, when it is not
        self.lag_s = 0.0
        self.observed = False

    @property
    def watched(self) -> bool:
        return bool(self.url)

    @property
    def ok(self) -> bool:
        return self.lag_s <= self.max_lag

    def report(self) -> reports.Replication:
        if not self.watched:
            return reports.Replication()
        return reports.Replication(watched=True, ok=self.ok, lag_s=round(self.lag_s, 1),
                                   last_error=self.problem or None)

    async def observe(self) -> None:
        now = self.clock.monotonic()
        self.observed = True
        try:
            text = await self._fetch(self.url)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            self._behind(now, f"Litestream's metrics at {self.url} did not answer ({reason}): "
                              "Litestream is not running beside the daemon, or listens elsewhere")
            return
        try:
            sample = read_sample(text, self.db_path)
        except ValueError as exc:
            self._behind(now, f"{self.url} does not serve Prometheus metrics ({exc})")
            return
        if sample.shadow is None:
            self._behind(now, f"Litestream at {self.url} does not replicate {self.db_path}: "
                              "add it to the dbs of its configuration")
            return
        if self._pending and sample.shadow < self._pending[-1][1]:
            self._pending.clear()  # a new generation (a fresh snapshot): positions start over
        if not self._pending or self._pending[-1][1] != sample.shadow:
            # after a spell without readable positions, the lag runs from before it
            self._pending.append((self._since if self.problem and not self._pending else now,
                                  sample.shadow))
        best = max(sample.replicas.values(), default=None)
        if best is not None:
            self._pending = [(t, p) for t, p in self._pending if p > best]
        if not self._pending:
            self._since = now
            self.lag_s = 0.0
            self.problem = ""
            return
        if best is None:
            self._behind(now, "Litestream has not written any of the log to its replica: the "
                              "bucket may not exist or the credentials may be refused "
                              "(Litestream's own log says which)")
        else:
            self._behind(now, "the replica has not caught up with the log: Litestream cannot "
                              "upload (Litestream's own log says why)")

    def _behind(self, now: float, problem: str) -> None:
        """Behind since the oldest position not replicated, else since last caught up."""
        start = self._pending[0][0] if self._pending else self._since
        self.lag_s = max(0.0, now - start)
        self.problem = problem

    def check(self) -> tuple[bool, str]:
        """The ``replication`` check: its verdict and a sentence that stays the same while
        the verdict does (the lag itself is in ``/status``)."""
        if self.ok:
            return True, f"Litestream keeps the replica up with the log ({self.url})"
        return False, (f"replication is failing: the replica is more than "
                       f"{self.max_lag:.0f}s behind the log. {self.problem}")


def interval(max_lag: float) -> float:
    """How often the metrics are read: four times within ``max_lag``, between 1 s and 15 s
    (every second while the replica is behind or Litestream does not answer)."""
    return max(1.0, min(15.0, max_lag / 4))


async def watching(watch: Watch, record: Callable[[bool, str], Awaitable[None]], *,
                   clock: clocks.Clock,
                   measure: Callable[[float, bool], None] = lambda _lag, _ok: None) -> None:
    """Sample Litestream's metrics until cancelled, recording the ``replication`` check (as
    :func:`daemon.ops.preflight.record_checks` does: a changed verdict, an alert when it
    newly fails) and giving ``measure`` the lag and verdict (the daemon's gauges)."""
    while True:
        await watch.observe()
        measure(watch.lag_s, watch.ok)
        await record(*watch.check())
        # while something is wrong (Litestream still starting, say), look again soon
        await clock.sleep(min(interval(watch.max_lag), 1.0) if watch.problem
                          else interval(watch.max_lag))


async def check_once(url: str, db_path: str, *, window: float, clock: clocks.Clock,
                     every: float = 0.5,
                     fetch_text: Callable[[str], Awaitable[str]] = fetch) -> tuple[bool, str]:
    """``moment-sync check`` without a running daemon to ask: watch for up to ``window``
    seconds; passes as soon as the replica holds all the log Litestream has taken."""
    watch = Watch(url=url, db_path=db_path, max_lag=window, clock=clock, fetch_text=fetch_text)
    deadline = clock.monotonic() + window
    while True:
        await watch.observe()
        if not watch.problem:
            return watch.check()
        if clock.monotonic() >= deadline:
            return False, (f"replication is failing: the replica did not catch up with the log "
                           f"in {window:.0f}s of watching. {watch.problem}")
        await clock.sleep(every)
