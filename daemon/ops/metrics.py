"""Prometheus metrics of one daemon, on its own registry, rendered for ``GET /metrics``.

Guarantees: every metric lives on the :class:`Metrics` instance's own
:class:`~prometheus_client.CollectorRegistry` (never the process-global one), so two daemons or
two tests in one process never share counts; label values are bounded (kinds are checked, an
endpoint's numeric path segments are folded into ``{n}``), so no entity number can grow the
series count; nothing here reads a secret, and label values never carry header or body text.

The other packages call the typed methods below; they never touch ``prometheus_client``.
"""

from __future__ import annotations

import re
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from daemon.core import events as ev
from daemon.ops import providing

PREFIX: Final = "moment_sync"
#: Where webhooks come from (the ``source`` label of ``moment_sync_webhook_requests_total``).
WEBHOOK_SOURCES: Final = ("moment", "economic")
_NUMBER_SEGMENT = re.compile(r"/(?:[0-9]+|[0-9a-fA-F-]{32,36})(?=/|$)")


def endpoint_template(method: str, path: str) -> str:
    """``"PUT /customers/10001"`` -> ``"PUT /customers/{n}"``: a bounded label value.

    The query string is dropped; all-digit segments and UUIDs become ``{n}``.
    """
    path = path.split("?", 1)[0]
    return f"{method.upper()} {_NUMBER_SEGMENT.sub('/{n}', path)}"


def _check_kind(kind: str) -> str:
    if providing.as_kind(kind) is None:
        raise ValueError(f"unknown kind {kind!r}: use one of {', '.join(ev.ALL_KINDS)}")
    return kind


class Metrics:
    """The daemon's metrics. Counters only grow; gauges are set to what the caller last saw."""

    #: The Content-Type of :meth:`render`'s output (the classic text format, version 0.0.4).
    content_type: str = CONTENT_TYPE_PLAIN_0_0_4

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # process_resident_memory_bytes, process_cpu_seconds_total, process_start_time_seconds,
        # open files: what a fleet's capacity is measured in (read from /proc at each scrape)
        ProcessCollector(registry=r)
        self._events = Counter(
            f"{PREFIX}_events_appended", "Events appended to the event log, by event type.",
            ["type"], registry=r,
        )
        self._lag = Gauge(
            f"{PREFIX}_projection_lag_events",
            "Events in the log that the projections have not consumed yet.", registry=r,
        )
        self._queue = Gauge(
            f"{PREFIX}_queue_depth", "Items waiting in the reconcile work queue, by kind.",
            ["kind"], registry=r,
        )
        self._parked = Gauge(
            f"{PREFIX}_parked_items", "Items parked until a person acts, by kind.",
            ["kind"], registry=r,
        )
        self._calls = Counter(
            f"{PREFIX}_economic_calls",
            "Calls to e-conomic, by endpoint template and HTTP status (or 'error' without one).",
            ["endpoint", "status"], registry=r,
        )
        self._throttled = Counter(
            f"{PREFIX}_economic_rate_limited",
            "Answers 429 Too Many Requests from e-conomic.", registry=r,
        )
        self._tokens = Gauge(
            f"{PREFIX}_economic_rate_limit_used",
            "Rate-limit tokens used in the current e-conomic window.", registry=r,
        )
        self._token_limit = Gauge(
            f"{PREFIX}_economic_rate_limit_limit",
            "Rate-limit tokens allowed per e-conomic window.", registry=r,
        )
        self._today = Gauge(
            f"{PREFIX}_economic_calls_today",
            "Calls to e-conomic in the last rolling 24 hours (the fair-use budget's count).",
            registry=r,
        )
        self._budget = Gauge(
            f"{PREFIX}_economic_daily_call_budget",
            "Calls to e-conomic the daemon allows itself per rolling 24 hours "
            "([economic] daily_call_budget).",
            registry=r,
        )
        self._moment_throttled = Counter(
            f"{PREFIX}_moment_rate_limited",
            "Answers 429 Too Many Requests from Moment.", registry=r,
        )
        self._moment_waited = Counter(
            f"{PREFIX}_moment_rate_limit_wait_seconds",
            "Seconds Moment calls were held back by the client's pace or a 429 pause, summed "
            "over calls.", registry=r,
        )
        self._moment_used = Gauge(
            f"{PREFIX}_moment_rate_limit_used",
            "Calls in the Moment client's current pace window.", registry=r,
        )
        self._moment_limit = Gauge(
            f"{PREFIX}_moment_rate_limit_limit",
            "Calls the Moment client allows itself per window (0: no pace).", registry=r,
        )
        self._moment_paused = Gauge(
            f"{PREFIX}_moment_paused",
            "1 while a 429 from Moment holds every Moment call back, else 0.", registry=r,
        )
        self._moment_seen = (0, 0.0)  # the client's totals the counters have been advanced to
        self._webhooks = Counter(
            f"{PREFIX}_webhook_requests",
            "Webhook requests answered, by source (moment, economic) and HTTP status "
            "(202: the hint was recorded).", ["source", "status"], registry=r,
        )
        self._drift = Counter(
            f"{PREFIX}_drift_repaired",
            "Fields or records changed in e-conomic and put back, by kind.", ["kind"], registry=r,
        )
        self._reconciled = Gauge(
            f"{PREFIX}_last_successful_reconcile_timestamp_seconds",
            "Unix time when the last full reconcile finished without error (0: never).",
            registry=r,
        )
        self._replica_lag = Gauge(
            f"{PREFIX}_replication_lag_seconds",
            "How far Litestream's replica is behind the event log ([replication] metrics_url; "
            "absent when replication is not watched).", ["replicator"], registry=r,
        )
        self._replica_ok = Gauge(
            f"{PREFIX}_replication_ok",
            "1 while the replica keeps within [replication] max_lag of the log, else 0 "
            "(absent when replication is not watched).", ["replicator"], registry=r,
        )
        for kind in ev.ALL_KINDS:
            self._queue.labels(kind=kind).set(0)
            self._parked.labels(kind=kind).set(0)
            self._drift.labels(kind=kind)

    def event_appended(self, event_type: str, count: int = 1) -> None:
        """``count`` events of ``event_type`` were committed to the log."""
        self._events.labels(type=event_type).inc(count)

    def set_projection_lag(self, events: int) -> None:
        self._lag.set(events)

    def set_queue_depth(self, kind: str, items: int) -> None:
        self._queue.labels(kind=_check_kind(kind)).set(items)

    def set_parked(self, kind: str, items: int) -> None:
        self._parked.labels(kind=_check_kind(kind)).set(items)

    def economic_call(self, method: str, path: str, status: int | None) -> None:
        """One call to e-conomic finished; ``status`` ``None`` means no HTTP answer (transport
        error or timeout). A 429 also counts in the rate-limited counter."""
        self._calls.labels(
            endpoint=endpoint_template(method, path),
            status="error" if status is None else str(status),
        ).inc()
        if status == 429:
            self._throttled.inc()

    def set_rate_limit(self, used: float, limit: float) -> None:
        """Tokens used in the current window, and the window's limit."""
        self._tokens.set(used)
        self._token_limit.set(limit)

    def set_calls_today(self, calls: int) -> None:
        self._today.set(calls)

    def set_daily_call_budget(self, calls: int) -> None:
        self._budget.set(calls)

    def set_moment_rate_limit(self, *, used: float, limit: float, paused: bool,
                              rate_limited: int, waited_s: float) -> None:
        """The Moment client's limiter as it stands: calls ``used`` of ``limit`` in its window,
        whether a 429 pause is in force, and its running totals of 429s and seconds waited
        (the counters advance to them; totals never go back)."""
        self._moment_used.set(used)
        self._moment_limit.set(limit)
        self._moment_paused.set(1 if paused else 0)
        seen_429, seen_wait = self._moment_seen
        if rate_limited > seen_429:
            self._moment_throttled.inc(rate_limited - seen_429)
        if waited_s > seen_wait:
            self._moment_waited.inc(waited_s - seen_wait)
        self._moment_seen = (max(rate_limited, seen_429), max(waited_s, seen_wait))

    def webhook_answered(self, source: str, status: int) -> None:
        """One webhook request from ``source`` (one of :data:`WEBHOOK_SOURCES`) was answered
        with HTTP ``status``."""
        if source not in WEBHOOK_SOURCES:
            raise ValueError(f"unknown webhook source {source!r}: use one of "
                             f"{', '.join(WEBHOOK_SOURCES)}")
        self._webhooks.labels(source=source, status=str(status)).inc()

    def drift_repaired(self, kind: str, count: int = 1) -> None:
        self._drift.labels(kind=_check_kind(kind)).inc(count)

    def set_replication(self, lag_s: float, ok: bool) -> None:
        """Litestream's replica, as :mod:`daemon.ops.replicating` last saw it."""
        self._replica_lag.labels(replicator="litestream").set(lag_s)
        self._replica_ok.labels(replicator="litestream").set(1 if ok else 0)

    def reconcile_succeeded(self, at: float) -> None:
        """A full reconcile finished without error at Unix time ``at``."""
        self._reconciled.set(at)

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)
