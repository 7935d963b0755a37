"""Watching the running daemon: reconcile outcomes become alerts and metrics, and the gauges are
refreshed every few seconds.

:class:`Observer` implements the reconciler's observer port; it only queues alerts and bumps
counters, so it never blocks and never raises into the reconciler (which wraps it in a
``SafeObserver`` as well). :func:`measuring` only reads: the log's projections, the client's
stats (e-conomic's and Moment's) and the work queue; it never calls e-conomic or Moment.
"""

from __future__ import annotations

from typing import Final

from daemon.core import clocks
from daemon.core import events as ev
from daemon.economic import client as economic_client
from daemon.moment import client as moment_client
from daemon.ops import alerting, alerts, metrics
from daemon.reconcile import running as reconcile_running
from daemon.store import eventlog

METRICS_EVERY_S: Final = 5.0


class Observer:
    """Turns reconcile outcomes into alerts (stamped with the clock's wall time) and metrics."""

    def __init__(self, alerter: alerting.Alerter, meter: metrics.Metrics, *,
                 clock: clocks.Clock) -> None:
        self.alerter = alerter
        self.meter = meter
        self.clock = clock

    def parked(self, kind: str, key: str, reason: str) -> None:
        self.alerter.alert(alerts.item_parked(kind=kind, key=key, reason=reason,
                                                 at=self.clock.now()))

    def pdf_skipped(self, invoice: str, reason: str) -> None:
        self.alerter.alert(alerts.pdf_not_attached(invoice=invoice, reason=reason,
                                                   at=self.clock.now()))

    def warned(self, kind: str, key: str, warning: str) -> None:
        self.alerter.alert(alerts.entity_warning(kind=kind, key=key, warning=warning,
                                                 at=self.clock.now()))

    def drift_repaired(self, kind: str, key: str, fields: list[str]) -> None:
        self.meter.drift_repaired(kind)
        self.alerter.alert(alerts.drift_repaired(kind=kind, key=key, fields=fields,
                                                 at=self.clock.now()))

    def booked_mismatch(self, invoice: str, fields: list[str], note: str) -> None:
        self.alerter.alert(alerts.booked_mismatch(invoice=invoice, fields=fields, note=note,
                                                  at=self.clock.now()))


async def measuring(log: eventlog.EventLog, economic: economic_client.EconomicClient,
                    reconciler: reconcile_running.Reconciler, meter: metrics.Metrics, *,
                    clock: clocks.Clock, moment: moment_client.MomentClient) -> None:
    """Refresh the gauges every few seconds of the clock (counters are bumped where things
    happen)."""
    while True:
        meter.set_projection_lag(log.last_seq - log.tables.checkpoint)
        stats = economic.stats()
        meter.set_rate_limit(stats.rate_limit.used, stats.rate_limit.limit)
        meter.set_calls_today(stats.calls_today)
        meter.set_daily_call_budget(economic.limiter.budget.daily)
        paced = moment.stats()
        meter.set_moment_rate_limit(used=paced.used, limit=paced.limit,
                                    paused=paced.paused_until is not None,
                                    rate_limited=paced.rate_limited, waited_s=paced.waited_s)
        for kind in ev.ALL_KINDS:
            meter.set_queue_depth(kind, reconciler.queue.depth(kind))
            meter.set_parked(kind, sum(1 for s in log.tables.states().values()
                                       if s.kind == kind and s.parked))
        if reconciler.last_full_at is not None:
            meter.reconcile_succeeded(reconciler.last_full_at)
        await clock.sleep(METRICS_EVERY_S)
