"""Programmable faults for the Moment sandbox: 429 with ``Retry-After``, 5xx, and
commit-then-drop on demand; and the sandbox's throttling (:class:`Throttle`), which answers 429
with ``Retry-After`` to a client that goes over its limit.

A :class:`Fault` answers a matching API request with its status instead of serving it (or, a
``drop`` fault, serves it, keeps its effect, and cuts the connection before the answer), with a
given probability, for at most ``count`` requests (``None``: until cleared). Randomness comes
from a seeded generator, so a run with the same seed and the same requests fails the same
requests. Faults never apply to the admin surface. No I/O.
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Final

FAULT_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})


@dataclasses.dataclass
class Fault:
    """Answer ``status`` (with ``Retry-After: retry_after`` when set) to requests
    whose method matches (None: any) and whose path contains ``path_contains`` (None: any);
    with ``drop`` (and no ``status``), serve the request and then cut the connection."""

    status: int | None
    count: int | None = 1
    probability: float = 1.0
    retry_after: int | None = None
    path_contains: str | None = None
    method: str | None = None
    hits: int = 0
    drop: bool = False

    def __post_init__(self) -> None:
        if self.drop:
            if self.status is not None or self.retry_after is not None:
                raise ValueError("a drop fault has no status and no retry_after: the request "
                                 "is served and the answer never arrives")
        elif self.status not in FAULT_STATUSES:
            raise ValueError(f"status must be one of {sorted(FAULT_STATUSES)}, got {self.status}")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1, or None for no limit")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within 0..1")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("retry_after must not be negative")

    @property
    def spent(self) -> bool:
        return self.count is not None and self.hits >= self.count

    def matches(self, method: str, path: str) -> bool:
        return ((self.method is None or self.method.upper() == method.upper())
                and (self.path_contains is None or self.path_contains in path))

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


class FaultInjector:
    """The active faults, checked in the order they were added; spent faults drop out."""

    def __init__(self, *, seed: int = 0) -> None:
        self._random = random.Random(seed)
        self.faults: list[Fault] = []

    def add(self, status: int | None, *, count: int | None = 1, probability: float = 1.0,
            retry_after: int | None = None, path_contains: str | None = None,
            method: str | None = None, drop: bool = False) -> Fault:
        fault = Fault(status=status, count=count, probability=probability,
                      retry_after=retry_after, path_contains=path_contains, method=method,
                      drop=drop)
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        self.faults.clear()

    def pick(self, method: str, path: str) -> Fault | None:
        """The fault to answer this request with, counting it as hit, or None."""
        for fault in self.faults:
            if fault.spent or not fault.matches(method, path):
                continue
            if fault.probability < 1.0 and self._random.random() >= fault.probability:
                continue
            fault.hits += 1
            return fault
        self.faults = [f for f in self.faults if not f.spent]
        return None


@dataclasses.dataclass
class Throttle:
    """Moment's throttling as the sandbox plays it: a bucket of ``limit`` requests that drains
    continuously at ``limit / window_s`` a second. A request that would overflow it is refused
    (not counted) with the whole seconds until one request fits, for ``Retry-After``.

    Moment publishes no number (``moment/RESEARCH.md``); :data:`DOCUMENTED_LIMIT` is the one
    this sandbox documents for itself and serves with under ``moment-sync sandbox`` and the
    demo. Times are POSIX seconds from the sandbox's own clock. No I/O.
    """

    limit: int
    window_s: float
    level: float = 0.0
    at: float | None = None
    refused: int = 0

    def __post_init__(self) -> None:
        if self.limit < 1 or not self.window_s > 0:
            raise ValueError("a rate limit needs limit >= 1 and window_s > 0")

    def admit(self, now: float) -> int | None:
        """None when a request at ``now`` fits (it is counted); else the seconds to wait."""
        rate = self.limit / self.window_s
        if self.at is not None and now > self.at:
            self.level = max(0.0, self.level - (now - self.at) * rate)
        self.at = now if self.at is None else max(self.at, now)
        if self.level + 1 <= self.limit + 1e-9:
            self.level += 1
            return None
        self.refused += 1
        return max(1, math.ceil((self.level + 1 - self.limit) / rate - 1e-9))

    def to_json(self) -> dict[str, object]:
        return {"limit": self.limit, "windowS": self.window_s}


#: The limit the sandbox documents for itself: 600 requests a minute, in bursts of up to 600.
DOCUMENTED_LIMIT: Final = (600, 60.0)
