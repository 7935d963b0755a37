"""Rate-limit arithmetic for e-conomic: a mirror of its token bucket and the daily budget.

Pure functions of data and a time value; no I/O, no sleeping. The shell (``daemon.economic``)
reads the clock, asks :func:`delay` how long to wait, charges the call before sending it and
feeds every answer's ``X-RateLimiting``/``X-CallCost`` back through :func:`observe`.

Invariants:
- ``used`` never drops below what the server last reported inside the same window, so the
  mirror can only be more cautious than the server, never less.
- A window we did not see start is assumed to have started when we first saw it (the latest
  possible start), so the estimated roll time is never earlier than the server's.
- After a 429 nothing is sent before ``paused_until`` (Retry-After, else the window's end).
- Calls still in flight when a window rolls may land in the next one: their reserved tokens
  (``pending``) stay counted until their answers arrive, and their answers, which may report
  the old window's use, do not set the new window's (``epoch``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Final

_HEADER: Final = re.compile(r"token-limit-(\d+)-per-(\d+)-seconds\s*:\s*(\d+)\s*/\s*(\d+)")
DAY_S: Final = 86_400.0


@dataclass(frozen=True, slots=True)
class Bucket:
    """What we know of the agreement's bucket. ``window_started_at`` is None until first seen."""

    limit: int = 10_000
    window_s: float = 60.0
    used: int = 0
    window_started_at: float | None = None
    last_reported_used: int = 0
    paused_until: float = 0.0
    cost_estimate: int = 1
    pending: int = 0  # tokens reserved by calls sent and not answered yet
    epoch: int = 0  # windows rolled so far; a call's answer speaks for its epoch only


@dataclass(frozen=True, slots=True)
class Reading:
    """One ``X-RateLimiting`` header: ``token-limit-L-per-W-seconds: U/L``."""

    limit: int
    window_s: float
    used: int


def parse_rate_header(value: str | None) -> Reading | None:
    """The reading in an ``X-RateLimiting`` value, or None when absent or unparseable."""
    if not value:
        return None
    m = _HEADER.search(value)
    if m is None:
        return None
    return Reading(limit=int(m.group(1)), window_s=float(m.group(2)), used=int(m.group(3)))


def parse_cost(value: str | None) -> int | None:
    """``X-CallCost`` as a non-negative int, or None."""
    if value is None:
        return None
    try:
        cost = int(value.strip())
    except ValueError:
        return None
    return cost if cost >= 0 else None


def rolled(bucket: Bucket, now: float) -> Bucket:
    """The bucket as of ``now``: a window that has ended is emptied."""
    start = bucket.window_started_at
    if start is not None and now >= start + bucket.window_s:
        return replace(bucket, used=bucket.pending, window_started_at=None, last_reported_used=0,
                       epoch=bucket.epoch + 1)
    return bucket


def delay(bucket: Bucket, now: float, cost: int | None = None) -> float:
    """Seconds to wait before a call of ``cost`` tokens may be sent (0.0 means now)."""
    wait = max(0.0, bucket.paused_until - now)
    b = rolled(bucket, now)
    need = bucket.cost_estimate if cost is None else cost
    if b.window_started_at is not None and b.used + need > b.limit:
        wait = max(wait, b.window_started_at + b.window_s - now)
    return wait


def charge(bucket: Bucket, now: float, cost: int | None = None) -> Bucket:
    """Reserve the tokens of a call about to be sent."""
    b = rolled(bucket, now)
    need = bucket.cost_estimate if cost is None else cost
    # Built directly, not with replace(): this runs before every call.
    return Bucket(limit=b.limit, window_s=b.window_s, used=b.used + need,
                  window_started_at=b.window_started_at, last_reported_used=b.last_reported_used,
                  paused_until=b.paused_until, cost_estimate=b.cost_estimate,
                  pending=b.pending + need, epoch=b.epoch)


def reservation(bucket: Bucket, cost: int | None = None) -> int:
    """The tokens :func:`charge` reserves for a call of ``cost`` (the estimate when None)."""
    return bucket.cost_estimate if cost is None else cost


def settle(bucket: Bucket, reserved: int) -> Bucket:
    """A call that reserved ``reserved`` tokens has finished (answered or not)."""
    if not reserved:
        return bucket
    b = bucket
    return Bucket(limit=b.limit, window_s=b.window_s, used=b.used,
                  window_started_at=b.window_started_at, last_reported_used=b.last_reported_used,
                  paused_until=b.paused_until, cost_estimate=b.cost_estimate,
                  pending=max(0, b.pending - reserved), epoch=b.epoch)


def observe(bucket: Bucket, now: float, reading: Reading | None, cost: int | None,
            reserved: int = 0, epoch: int | None = None) -> Bucket:
    """Re-synchronise from an answer received at ``now`` to a call that reserved ``reserved``
    tokens when the bucket was in ``epoch`` (None: the current one). An answer to a call sent
    before the last roll may report the old window, so it only settles its reservation. In a
    new window the calls still in flight count on top of the reported use."""
    b = settle(rolled(bucket, now), reserved)
    if cost is not None and max(1, cost) != b.cost_estimate:
        b = replace(b, cost_estimate=max(1, cost))
    if reading is None or (epoch is not None and epoch != b.epoch):
        return b
    new_window = b.window_started_at is None or reading.used < b.last_reported_used
    if new_window:
        # The server's window began at or before now; assuming now keeps our roll time late.
        return replace(b, limit=reading.limit, window_s=reading.window_s,
                       used=reading.used + b.pending, window_started_at=now,
                       last_reported_used=reading.used)
    return replace(b, limit=reading.limit, window_s=reading.window_s,
                   used=max(b.used, reading.used), last_reported_used=reading.used)


def pause(bucket: Bucket, now: float, retry_after: float | None) -> Bucket:
    """After a 429: pause until Retry-After, else until the window rolls; never less."""
    b = rolled(bucket, now)
    if retry_after is not None and retry_after > 0:
        until = now + retry_after
    elif b.window_started_at is not None:
        until = b.window_started_at + b.window_s
    else:
        until = now + b.window_s
    until = max(until, b.paused_until)
    # Mirror a full bucket whose window rolls exactly when the pause ends, so the next call
    # neither goes early nor waits longer than the server asked.
    return replace(b, paused_until=until, used=max(b.used, b.limit),
                   window_started_at=until - b.window_s, last_reported_used=b.limit)


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
