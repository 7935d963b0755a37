"""Rate-limit arithmetic for e-conomic: a mirror of its token bucket and the daily budget.

The daily budget is a rolling 24 hours (DESIGN.md, "Limits survive restarts"), counted per
minute: :func:`budget_used` is the calls made in the 24 hours before now, to the minute.

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


#: The rolling budget counts calls per minute: a call counts from its minute for the next 1,440
#: whole minutes, so it falls out between 24 h and 24 h + 1 min after it was made (never early).
MINUTE_S: Final = 60.0
WINDOW_MINUTES: Final = int(DAY_S // MINUTE_S)

Counts = tuple[tuple[int, int], ...]  # (minute number since the epoch, calls in it), ascending


@dataclass(frozen=True, slots=True)
class Budget:
    """The fair-use budget over a rolling 24 hours; ``reserve`` calls are kept for invoice work.

    ``counts`` holds at most :data:`WINDOW_MINUTES` + 1 minutes with calls (bounded memory);
    ``used`` is their sum. Exact to the minute: see :data:`MINUTE_S`."""

    daily: int = 50_000
    reserve: int = 5_000
    counts: Counts = ()
    used: int = 0


def minute_of(now: float) -> int:
    """The minute number of a POSIX time."""
    return int(now // MINUTE_S)


def budget_window(budget: Budget, now: float) -> Budget:
    """The budget as of ``now``: minutes more than 24 hours before ``now``'s minute dropped."""
    counts = budget.counts
    if not counts:
        return budget
    oldest = minute_of(now) - WINDOW_MINUTES
    if counts[0][0] >= oldest:
        return budget
    keep = 0
    while keep < len(counts) and counts[keep][0] < oldest:
        keep += 1
    kept = counts[keep:]
    return replace(budget, counts=kept, used=sum(c for _m, c in kept))


def budget_used(budget: Budget, now: float) -> int:
    """Calls made in the rolling 24 hours before ``now``."""
    return budget_window(budget, now).used


def _ceiling(budget: Budget, priority: bool) -> int:
    return budget.daily if priority else max(0, budget.daily - budget.reserve)


def budget_allows(budget: Budget, now: float, *, priority: bool) -> bool:
    """Whether one more call fits: priority (invoice) calls may use the reserve."""
    return budget_used(budget, now) < _ceiling(budget, priority)


def budget_spend(budget: Budget, now: float) -> Budget:
    """Count one call at ``now``."""
    b = budget_window(budget, now)
    m = minute_of(now)
    counts = b.counts
    if counts and counts[-1][0] == m:
        counts = (*counts[:-1], (m, counts[-1][1] + 1))
    elif counts and counts[-1][0] > m:  # a clock stepped back: count it in the latest minute
        counts = (*counts[:-1], (counts[-1][0], counts[-1][1] + 1))
    else:
        counts = (*counts, (m, 1))
    return Budget(daily=b.daily, reserve=b.reserve, counts=counts, used=b.used + 1)


def budget_frees_in(budget: Budget, now: float, *, priority: bool) -> float:
    """Seconds from ``now`` until one more call fits (0.0 when one fits now): when enough of the
    oldest minutes have fallen out of the window."""
    b = budget_window(budget, now)
    ceiling = _ceiling(b, priority)
    used = b.used
    if used < ceiling:
        return 0.0
    for minute, calls in b.counts:
        used -= calls
        if used < ceiling:
            return max(0.0, (minute + WINDOW_MINUTES + 1) * MINUTE_S - now)
    return DAY_S  # a ceiling of 0 never frees: ask again in a day


def budget_restore(budget: Budget, counts: Counts, now: float) -> Budget:
    """``budget`` with the calls of a saved ``counts`` added (a restart seeding its count from the
    log), as of ``now``: minutes outside the window are dropped."""
    merged = dict(budget.counts)
    for minute, calls in counts:
        if calls > 0:
            merged[minute] = merged.get(minute, 0) + calls
    joined = tuple(sorted(merged.items()))
    return budget_window(replace(budget, counts=joined, used=sum(merged.values())), now)
