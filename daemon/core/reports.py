"""The ``GET /status`` and ``GET /parked`` documents as typed structs (DESIGN.md, Status socket),
one definition for the daemon that answers and the CLI that reads.

The daemon builds a :class:`StatusReport` (the reconciler its two sections, as a
:class:`ReconcilerStatus`; :mod:`daemon.ops.answering` the rest) and the status socket encodes
it as it is: every field is on the wire, ``None`` as ``null``. The CLI decodes leniently
(unknown fields are ignored, every field has a default), so a newer daemon that adds fields, or
an older one that lacks some, still renders; decoding raises :class:`StatusDecodeError` for an
answer that is not the documented shape at all. Pure data: no I/O, no clock.
"""

from __future__ import annotations

import msgspec

from daemon.core import plans


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
    """``rate_limit``, ``paused_until`` as in :class:`Economic`: the pace the client keeps
    (Moment publishes none of its own) and the end of the pause a 429 imposed;
    ``rate_limited``: the 429s Moment answered since the start."""

    last_webhook_at: str | None = None
    last_poll_at: str | None = None
    poll_cursor: dict[str, str | None] = msgspec.field(default_factory=dict)
    clock_skew_s: float = 0.0
    rate_limit: RateLimit = RateLimit()
    paused_until: str | None = None
    rate_limited: int = 0


class BookedEntries(msgspec.Struct, frozen=True):
    """The booked-entries poller (expenses): the highest entry number read, when it last read
    e-conomic, and the error of its last round (None: it went well)."""

    cursor: int | None = None
    last_read_at: str | None = None
    last_full_scan_at: str | None = None
    last_error: str | None = None


class BookedMismatch(msgspec.Struct, frozen=True):
    """A booked invoice that differs from Moment or from e-conomic's booked entry."""

    number: int
    fields: list[str]
    note: str


class Webhooks(msgspec.Struct, frozen=True):
    """The daemon's e-conomic webhooks: the event types installed and enabled, whether all it
    wants are (``ok``), each type's state (``installed``, ``missing``, ``disabled``,
    ``differs``, ``foreign``, ``unknown``: not offered by e-conomic) and a sentence."""

    installed: list[str] = msgspec.field(default_factory=list)
    ok: bool = False
    states: dict[str, str] = msgspec.field(default_factory=dict)
    detail: str = ""


class Reconcile(msgspec.Struct, frozen=True):
    last_full_at: str | None = None
    last_incremental_at: str | None = None
    drift_repaired: int = 0
    last_hint_at: str | None = None
    #: None when ``webhook_url`` is empty (no webhooks)
    webhooks: Webhooks | None = None
    #: reported, never deleted (the same struct ``plan`` lists them with)
    strays: list[plans.PlanStray] = msgspec.field(default_factory=list)
    #: reported once each, never edited
    booked_mismatches: list[BookedMismatch] = msgspec.field(default_factory=list)
    queue: dict[str, int] = msgspec.field(default_factory=dict)
    waiting: int = 0
    last_error: str | None = None


class ReconcilerStatus(msgspec.Struct, frozen=True):
    """The reconciler's part of the report: ``entities`` and ``reconcile``."""

    entities: dict[str, EntityCounts]
    reconcile: Reconcile


class Replication(msgspec.Struct, frozen=True):
    """Litestream's replica of the log, as the daemon last saw it (``[replication]``)."""

    watched: bool = False
    ok: bool = True
    lag_s: float = 0.0
    last_error: str | None = None


class Check(msgspec.Struct, frozen=True):
    """One preflight verdict (``at``: when it was recorded; ``None`` for ``config``)."""

    name: str
    ok: bool
    detail: str = ""
    at: str | None = None


class StatusReport(msgspec.Struct, frozen=True):
    state: str = "unknown"
    version: str = ""
    uptime_s: float = 0.0
    log: LogInfo = LogInfo()
    projections: Projections = Projections()
    entities: dict[str, EntityCounts] = msgspec.field(default_factory=dict)
    economic: Economic = Economic()
    moment: Moment = Moment()
    booked_entries: BookedEntries = BookedEntries()
    reconcile: Reconcile = Reconcile()
    replication: Replication = Replication()
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
