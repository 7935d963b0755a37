"""Per-item retry arithmetic: exponential backoff with jitter, capped, and when to park.

Pure: the random draw is injected (a float in [0, 1]), so tests assert exact delays.
The delay after the ``attempt``-th failure is ``base * 2**(attempt-1)``, capped at ``cap``,
scaled by "equal jitter" into ``[d/2, d]``; a server's ``Retry-After`` is a floor. An item is
parked once it has failed ``max_attempts`` times.
"""

from __future__ import annotations

import msgspec


class Policy(msgspec.Struct, frozen=True, kw_only=True):
    base_s: float = 1.0
    cap_s: float = 300.0
    max_attempts: int = 8


def delay(policy: Policy, attempt: int, draw: float, retry_after: float | None = None) -> float:
    """Seconds to wait before attempt ``attempt + 1``; never below ``retry_after``."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if not 0.0 <= draw <= 1.0:
        raise ValueError("draw must lie in [0, 1]")
    full = min(policy.cap_s, policy.base_s * 2.0 ** min(attempt - 1, 62))
    jittered = full / 2.0 + draw * full / 2.0
    return max(jittered, retry_after or 0.0)


def exhausted(policy: Policy, attempt: int) -> bool:
    """True when the item has failed often enough to be parked."""
    return attempt >= policy.max_attempts
