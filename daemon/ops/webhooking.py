"""Keeping the e-conomic webhooks installed while the daemon runs, and saying how they stand.

With ``[economic] webhook_url`` set, :class:`Keeper` installs the daemon's webhooks
(:func:`daemon.economic.installing.install`) as soon as the daemon starts, in its own task, so
a failure there holds nothing else up, and again every ``full_reconcile_interval`` (every
``reconcile_interval`` while something is wrong), which also re-enables one e-conomic disabled
meanwhile. Each verdict is the ``webhooks`` check (recorded as a ``CheckReported`` when it
changes, alerting when it newly fails; shown in ``check`` and ``/status``) and
``reconcile.webhooks`` of ``/status``. What an install changed is logged, a re-enabled webhook
as a warning. Kinds a webhook does not cover rely on the sweeps. No text here holds the token.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from daemon import settings as config
from daemon.core import clocks, reports
from daemon.core import webhooks as hooks
from daemon.core.secrets import Secret
from daemon.economic import client as economic_client
from daemon.economic import errors, installing
from daemon.ops import preflight
from daemon.store import eventlog

_log = structlog.get_logger(__name__)


def wanted_kinds(settings: config.Settings) -> list[hooks.Kind]:
    """The kinds whose webhook the daemon installs: customers and projects, and the day book
    when something reads booked entries (expenses or payments on)."""
    events = settings.economic.webhook_events
    kinds: list[hooks.Kind] = [k for k in ("customer", "project") if k in events]
    reads_books = any(getattr(getattr(settings, section, None), "enabled", False)
                      for section in ("expenses", "payments"))
    if reads_books and "daybook" in events:
        kinds.append("daybook")
    return kinds


def plan(settings: config.Settings, token: Secret | None) -> installing.Plan | None:
    """What the daemon wants installed (None: ``webhook_url`` empty or no token)."""
    url = settings.economic.webhook_url
    if not url or token is None:
        return None
    return installing.Plan(url=url, token=token, events=dict(settings.economic.webhook_events),
                           kinds=wanted_kinds(settings))


def status(report: installing.Report | None) -> reports.Webhooks:
    """``reconcile.webhooks`` of ``/status`` (before the first install: not ok, saying so)."""
    if report is None:
        return reports.Webhooks(detail="not installed yet: the daemon installs them at start")
    detail = report.summary()
    if report.done:
        detail += "; at the last install: " + "; ".join(report.done)
    return reports.Webhooks(installed=report.installed, ok=report.ok,
                            states={e.event_type: e.state for e in report.entries},
                            detail=detail)


class Keeper:
    """See the module docstring. ``settings`` is read on every round (a reload applies)."""

    def __init__(self, *, log: eventlog.EventLog, client: economic_client.EconomicClient,
                 settings: Callable[[], config.Settings], token: Secret,
                 alerter: preflight.Alerting, clock: clocks.Clock) -> None:
        self.log = log
        self.client = client
        self.settings = settings
        self.token = token
        self.alerter = alerter
        self.clock = clock
        self.report: installing.Report | None = None
        self.rounds = 0

    def status(self) -> reports.Webhooks:
        return status(self.report)

    async def install(self) -> installing.Report:
        """One round: install, record the verdict, log what changed."""
        wanted = plan(self.settings(), self.token)
        if wanted is None:  # webhook_url emptied by a reload: nothing is kept any more
            report = installing.Report()
        else:
            try:
                report = await installing.install(self.client, wanted)
            except errors.EconomicError as err:  # a write refused for good, or a bug's twin
                report = installing.Report(error=wanted.scrub(str(err)))
        self.report = report
        self.rounds += 1
        for said in report.done:
            if "disabled" in said:
                _log.warning("e-conomic webhook re-enabled", detail=said)
            else:
                _log.info("e-conomic webhook installed", detail=said)
        if wanted is not None:
            await preflight.record_checks(self.log, [preflight.webhooks_check(report)],
                                          self.alerter, clock=self.clock)
        return report

    async def run(self) -> None:
        """Install now, then keep them installed until cancelled."""
        while True:
            report = await self.install()
            e = self.settings().economic
            wait = e.full_reconcile_interval if report.ok else e.reconcile_interval
            await self.clock.sleep(float(wait))
