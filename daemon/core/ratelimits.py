"""Rate-limit arithmetic for e-conomic: a mirror of its token bucket and the daily budget.

Pure functions of data and a time value; no I/O, no sleeping. The shell (``daemon.economic``)
reads the clock, asks :func:`delay` how long to wait, charges the call before sending it and
feeds every answer's ``X-RateLimiting``/``X-CallCost`` back through :func:`observe`.

The bucket holds ``limit`` tokens and drains continuously at ``limit / window_s`` tokens a
second (REFERENCE.md section 7: a cost-based token bucket); a call fits when the tokens in the
bucket plus its cost do not exceed ``limit``.

Invariants:
- The mirror charges a call when it is sent, before the server can, and drains at the
  server's rate, so alone on the agreement it never holds fewer tokens than the server.
- An answer's reading only ever raises the mirror: to what the server reported plus the calls
  still in flight (which it may not have counted yet). A stale or reordered answer therefore
  makes the client more cautious, never less.
- After a 429 nothing is sent before ``paused_until`` (Retry-After, else until a full bucket
  has drained enough for the next call, within [1 s, one window]).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Final

_HEADER: Final = re.compile(r"token-limit-(\d+)-per-(\d+)-seconds\s*:\s*(\d+)\s*/\s*(\d+)")
DAY_S: Final = 86_400.0
# Float slack, in tokens: waiting exactly the computed time must not leave a call 1e-13
# tokens short and waiting again.
EPSILON: Final = 1e-6
MIN_PAUSE_S: Final = 1.0  # the shortest pause after a 429 that named no Retry-After


@dataclass(frozen=True, slots=True)
class Bucket:
    """What we know of the agreement's bucket: ``used`` tokens in it as of ``at`` (None until
    the first call), draining at ``limit / window_s`` a second."""

    limit: int = 10_000
    window_s: float = 60.0
    used: float = 0.0
    at: float | None = None
    paused_until: float = 0.0
    cost_estimate: int = 1
    pending: int = 0  # tokens reserved by calls sent and not answered yet


@dataclass(frozen=True, slots=True)
class Reading:
    """One ``X-RateLimiting`` header: ``token-limit-L-per-W-seconds: U/L``."""

    limit: int
    window_s: float
    used: int


def parse_rate_header(value: str | None) -> Reading | None:
    """The reading in an ``X-RateLimiting`` value, or None when absent, unparseable or empty
    (a zero limit or window describes no bucket we could pace to)."""
    if not value:
        return None
    m = _HEADER.search(value)
    if m is None:
        return None
    limit, window = int(m.group(1)), float(m.group(2))
    if limit <= 0 or window <= 0:
        return None
    return Reading(limit=limit, window_s=window, used=int(m.group(3)))


def parse_cost(value: str | None) -> int | None:
    """``X-CallCost`` as a non-negative int, or None."""
    if value is None:
        return None
    try:
        cost = int(value.strip())
    except ValueError:
        return None
    return cost if cost >= 0 else None


def rate(bucket: Bucket) -> float:
    """Tokens the bucket drains per second."""
    return bucket.limit / bucket.window_s


def level(bucket: Bucket, now: float) -> float:
    """Tokens in the bucket at ``now``."""
    if bucket.at is None or now <= bucket.at:
        return bucket.used
    return max(0.0, bucket.used - (now - bucket.at) * rate(bucket))


def drained(bucket: Bucket, now: float) -> Bucket:
    """The bucket as of ``now``."""
    return replace(bucket, used=level(bucket, now), at=now)


def _need(bucket: Bucket, cost: int | None) -> int:
    # A call costing more than the whole bucket is paced as if it cost the whole bucket:
    # otherwise it could never be sent.
    return min(bucket.cost_estimate if cost is None else cost, bucket.limit)


def delay(bucket: Bucket, now: float, cost: int | None = None) -> float:
    """Seconds to wait before a call of ``cost`` tokens may be sent (0.0 means now)."""
    wait = max(0.0, bucket.paused_until - now)
    excess = level(bucket, now) + _need(bucket, cost) - bucket.limit
    if excess > EPSILON:
        wait = max(wait, excess / rate(bucket))
    return wait


def charge(bucket: Bucket, now: float, cost: int | None = None) -> Bucket:
    """Reserve the tokens of a call about to be sent."""
    need = bucket.cost_estimate if cost is None else cost
    b = bucket
    # Built directly, not with replace(): this runs before every call.
    return Bucket(limit=b.limit, window_s=b.window_s, used=level(b, now) + need, at=now,
                  paused_until=b.paused_until, cost_estimate=b.cost_estimate,
                  pending=b.pending + need)


def reservation(bucket: Bucket, cost: int | None = None) -> int:
    """The tokens :func:`charge` reserves for a call of ``cost`` (the estimate when None)."""
    return bucket.cost_estimate if cost is None else cost


def settle(bucket: Bucket, reserved: int) -> Bucket:
    """A call that reserved ``reserved`` tokens has finished (answered or not)."""
    if not reserved:
        return bucket
    b = bucket
    return Bucket(limit=b.limit, window_s=b.window_s, used=b.used, at=b.at,
                  paused_until=b.paused_until, cost_estimate=b.cost_estimate,
                  pending=max(0, b.pending - reserved))


def observe(bucket: Bucket, now: float, reading: Reading | None, cost: int | None,
            reserved: int = 0) -> Bucket:
    """Re-synchronise from an answer received at ``now`` to a call that reserved ``reserved``
    tokens. The server counted its use at some moment between sending and now, perhaps before
    calls still in flight arrived: those count on top of what it reported."""
    b = bucket
    used = level(b, now)
    pending = max(0, b.pending - reserved) if reserved else b.pending
    limit, window_s = b.limit, b.window_s
    if reading is not None:
        limit, window_s = reading.limit, reading.window_s
        used = max(used, float(reading.used + pending))
    # Built directly, not with replace(): this runs after every call.
    return Bucket(limit=limit, window_s=window_s, used=used, at=now,
                  paused_until=b.paused_until,
                  cost_estimate=b.cost_estimate if cost is None else max(1, cost),
                  pending=pending)


def pause(bucket: Bucket, now: float, retry_after: float | None, cost: int | None = None
          ) -> Bucket:
    """After a 429: pause until Retry-After; without one, take the bucket to be full and pause
    until it has drained enough for the next call, but at least a second (the refusal may
    come from a limit the mirror does not see) and at most a window. Never shortens a pause in
    force."""
    b = drained(bucket, now)
    if retry_after is not None and retry_after > 0:
        until = now + retry_after
    else:
        b = replace(b, used=max(b.used, float(b.limit)))
        until = now + min(b.window_s, max(MIN_PAUSE_S, _need(b, cost) / rate(b)))
    return replace(b, paused_until=max(until, b.paused_until))


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` seconds (integer or decimal); HTTP dates are not used by e-conomic."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if math.isnan(seconds) or seconds < 0:
        return None
    return seconds


@dataclass(frozen=True, slots=True)
class Budget:
    """The daily fair-use budget; ``reserve`` calls are kept for invoice work."""

    daily: int = 50_000
    reserve: int = 5_000
    day: int = -1
    used: int = 0


def day_of(now: float) -> int:
    """The UTC day number of a POSIX time."""
    return int(now // DAY_S)


def budget_today(budget: Budget, now: float) -> Budget:
    """The budget for the day of ``now`` (a new day starts at zero)."""
    d = day_of(now)
    return budget if budget.day == d else replace(budget, day=d, used=0)


def budget_allows(budget: Budget, now: float, *, priority: bool) -> bool:
    """Whether one more call fits: priority (invoice) calls may use the reserve."""
    b = budget_today(budget, now)
    ceiling = b.daily if priority else max(0, b.daily - b.reserve)
    return b.used < ceiling


def budget_spend(budget: Budget, now: float) -> Budget:
    """Count one call against today."""
    b = budget_today(budget, now)
    return Budget(daily=b.daily, reserve=b.reserve, day=b.day, used=b.used + 1)


def seconds_to_next_day(now: float) -> float:
    """Seconds until the next UTC midnight."""
    return (day_of(now) + 1) * DAY_S - now
