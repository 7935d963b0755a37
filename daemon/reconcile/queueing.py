"""The reconcile work queue: entity keys (not events), deduplicated, with per-item due times.

Invariants:
- a key is in the queue at most once per kind; adding it again keeps one entry, due at the
  earlier time, except that an item in backoff keeps its backoff unless the add is ``force``
  (an operator's retry or resync);
- :meth:`take` hands out only due keys, at most ``limit`` of them (the bound on work in flight
  per pass), customers before projects before invoices when the caller asks kind by kind;
- an item waiting on a dependency is not in the queue at all: it sits under that dependency
  and is queued again when the dependency is released (applied or parked);
- a read the caller already made (a live record, or ``None`` for "known absent") may travel
  with the key as a hint, so a sweep that listed e-conomic need not read the same record
  twice (the sweep gives customers only "known absent": their write has no version check).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import anyio

from daemon import waiting
from daemon.core import clocks

Item = tuple[str, str]


class WorkQueue:
    """Due times are the clock's monotonic time; :meth:`wait` waits on the same clock."""

    def __init__(self, *, clock: clocks.Clock) -> None:
        self._clock = clock
        self._now = clock.monotonic
        self._due: defaultdict[str, dict[str, float]] = defaultdict(dict)  # by kind
        self._backoff: set[Item] = set()
        self._hints: dict[Item, object] = {}
        self._waiting: dict[Item, set[Item]] = {}
        self._wakeup = anyio.Event()

    # --- adding -----------------------------------------------------------------------------
    def add(self, kind: str, key: str, *, force: bool = False, hint: object = ...,
            delay: float = 0.0) -> None:
        """Queue ``kind:key`` (due now, or in ``delay`` seconds). ``hint``: the live record just
        read (``None``: known absent); leave it out when there is none."""
        item = (kind, key)
        due = self._due[kind]
        at = self._now() + delay
        if item in self._backoff and not force:
            at = max(at, due.get(key, at))
        else:
            self._backoff.discard(item)
            at = min(at, due.get(key, at))
        due[key] = at
        if hint is not ...:
            self._hints[item] = hint
        elif force:
            self._hints.pop(item, None)
        self._wake()

    def add_many(self, kind: str, keys: Iterable[str]) -> None:
        for key in keys:
            self.add(kind, key)

    def defer(self, kind: str, key: str, seconds: float) -> None:
        """Back the item off: due again in ``seconds``, whatever adds come meanwhile."""
        item = (kind, key)
        self._due[kind][key] = self._now() + seconds
        self._backoff.add(item)
        self._hints.pop(item, None)
        self._wake()

    def wait_on(self, dependency: Item, dependent: Item) -> None:
        """Hold ``dependent`` until ``dependency`` is released."""
        self._waiting.setdefault(dependency, set()).add(dependent)

    def release(self, kind: str, key: str) -> None:
        """``kind:key`` was applied or parked: queue everything that waited on it."""
        for dep_kind, dep_key in sorted(self._waiting.pop((kind, key), ())):
            self.add(dep_kind, dep_key)

    def discard(self, kind: str, key: str) -> None:
        self._due[kind].pop(key, None)
        self._backoff.discard((kind, key))
        self._hints.pop((kind, key), None)

    # --- taking -----------------------------------------------------------------------------
    def take(self, kind: str, limit: int) -> list[str]:
        """Up to ``limit`` due keys of ``kind`` (oldest due first), removed from the queue."""
        now = self._now()
        due = self._due[kind]
        ready = sorted((at, key) for key, at in due.items() if at <= now)[:limit]
        for _at, key in ready:
            del due[key]
            self._backoff.discard((kind, key))
        return [key for _at, key in ready]

    def hint(self, kind: str, key: str) -> tuple[bool, object]:
        """(True, record-or-None) when a fresh read travelled with the key; consumed."""
        item = (kind, key)
        if item in self._hints:
            return True, self._hints.pop(item)
        return False, None

    def next_due(self) -> float | None:
        times = [at for due in self._due.values() for at in due.values()]
        return min(times) if times else None

    def depth(self, kind: str) -> int:
        return len(self._due[kind])

    def waiting(self) -> int:
        return sum(len(v) for v in self._waiting.values())

    def queued(self, kind: str, key: str) -> bool:
        return key in self._due[kind]

    def empty(self) -> bool:
        return not any(self._due.values())

    # --- waking -----------------------------------------------------------------------------
    def _wake(self) -> None:
        self._wakeup.set()

    def wake(self) -> None:
        """Wake the worker for work that is not a key (a hinted record to read)."""
        self._wake()

    async def wait(self, seconds: float) -> None:
        """Return when something was added, or after ``seconds`` of the clock."""
        if await waiting.wait_for(self._wakeup, seconds=seconds, clock=self._clock):
            self._wakeup = anyio.Event()
