"""The ``GET /status`` and ``GET /parked`` documents as typed structs (DESIGN.md, Status socket).

These are the CLI's view of the answers: decoding is lenient (unknown fields are ignored, every
field has a default), so a newer daemon that adds fields, or an older one that lacks some, still
renders. Decoding raises :class:`StatusDecodeError` for an answer that is not the documented
shape at all.
"""

from __future__ import annotations

import msgspec


class StatusDecodeError(ValueError):
    """The daemon's answer does not have the documented shape."""


class LogInfo(msgspec.Struct, frozen=True):
    last_seq: int = 0
    events: int = 0


class Projections(msgspec.Struct, frozen=True):
    checkpoint: int = 0
    lag: int = 0


class EntityCounts(msgspec.Struct, frozen=True):
    desired: int = 0
    in_sync: int = 0
    pending: int = 0
    parked: int = 0


class RateLimit(msgspec.Struct, frozen=True):
    used: float = 0
    limit: float = 0
    window_s: float = 0


class Economic(msgspec.Struct, frozen=True):
    rate_limit: RateLimit = RateLimit()
    calls_today: int = 0
    paused_until: str | None = None
    last_error: str | None = None


class Moment(msgspec.Struct, frozen=True):
    last_webhook_at: str | None = None
    last_poll_at: str | None = None
    poll_cursor: dict[str, str | None] = msgspec.field(default_factory=dict)
    clock_skew_s: float = 0.0


class Stray(msgspec.Struct, frozen=True):
    kind: str = ""
    number: int | str = ""
    note: str = ""


class Reconcile(msgspec.Struct, frozen=True):
    last_full_at: str | None = None
    last_incremental_at: str | None = None
    drift_repaired: int = 0
    strays: list[Stray] = msgspec.field(default_factory=list)


class Check(msgspec.Struct, frozen=True):
    name: str
    ok: bool
    detail: str = ""


class StatusReport(msgspec.Struct, frozen=True):
    state: str = "unknown"
    version: str = ""
    uptime_s: float = 0.0
    log: LogInfo = LogInfo()
    projections: Projections = Projections()
    entities: dict[str, EntityCounts] = msgspec.field(default_factory=dict)
    economic: Economic = Economic()
    moment: Moment = Moment()
    reconcile: Reconcile = Reconcile()
    checks: list[Check] = msgspec.field(default_factory=list)


class ParkedItem(msgspec.Struct, frozen=True):
    kind: str
    key: str
    reason: str = ""
    attempts: int = 0
    last_error: str | None = None
    parked_at: str | None = None


def decode_status(data: bytes) -> StatusReport:
    """``GET /status`` JSON into a :class:`StatusReport`."""
    try:
        return msgspec.json.decode(data, type=StatusReport)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise StatusDecodeError(f"the daemon's /status answer is not understood: {exc}") from None


def decode_parked(data: bytes) -> list[ParkedItem]:
    """``GET /parked`` JSON into a list of :class:`ParkedItem`."""
    try:
        return msgspec.json.decode(data, type=list[ParkedItem])
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise StatusDecodeError(f"the daemon's /parked answer is not understood: {exc}") from None
