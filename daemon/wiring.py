"""Building and running the daemon: every component, one root task group, a defined shutdown.

:func:`run` is ``moment-sync run``. It returns the process exit code: 0 after a clean stop, 1
when the start fails (the message says why; nothing is left half-started: the log is closed and
the lock released).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import anyio
import structlog

from daemon import answering, app
from daemon import settings as config
from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.economic import client as economic_client
from daemon.economic import errors as economic_errors
from daemon.ingest import running as ingest_running
from daemon.moment import client as moment_client
from daemon.ops import alerting, alerts, metrics, notifying, preflight, statusserver
from daemon.ops import logging as logsetup
from daemon.reconcile import running as reconcile_running
from daemon.store import eventlog, opening

_log = structlog.get_logger("daemon")

METRICS_EVERY_S: Final = 5.0


def options(settings: config.Settings) -> mp.Options:
    e = settings.economic
    return mp.Options(customer_group=e.customer_group, project_group=e.project_group,
                      payment_terms=e.payment_terms, currency=e.currency, vat_zone=e.vat_zone,
                      vat_zones=dict(e.vat_zones), journal_number=e.journal_number,
                      invoice_vat_code=e.invoice_vat_code, default_account=e.default_account,
                      include_pdf=e.include_pdf, auto_book=e.auto_book)


class Observer:
    """Turns reconcile outcomes into alerts and metrics."""

    def __init__(self, alerter: alerting.Alerter, meter: metrics.Metrics) -> None:
        self.alerter = alerter
        self.meter = meter

    def parked(self, kind: str, key: str, reason: str) -> None:
        self.alerter.alert(alerts.item_parked(kind=kind, key=key, reason=reason, at=time.time()))

    def pdf_skipped(self, invoice: str, reason: str) -> None:
        self.alerter.alert(alerts.pdf_not_attached(invoice=invoice, reason=reason,
                                                   at=time.time()))

    def drift_repaired(self, kind: str, key: str, fields: list[str]) -> None:
        self.meter.drift_repaired(kind)
        self.alerter.alert(alerts.drift_repaired(kind=kind, key=key, fields=fields,
                                                 at=time.time()))


class Secrets:
    def __init__(self, settings: config.Settings) -> None:
        self.economic_app = config.load_secret(settings, "economic-app-secret-token")
        self.economic_grant = config.load_secret(settings, "economic-agreement-grant-token")
        self.moment_api_key = config.load_secret(settings, "moment-api-key")
        self.webhook_token = config.load_secret(settings, "moment-webhook-token")
        for secret in (self.economic_app, self.economic_grant, self.moment_api_key,
                       self.webhook_token):
            logsetup.register_secret(secret)


async def record_checks(log: eventlog.EventLog, results: list[preflight.Check],
                        alerter: alerting.Alerter) -> None:
    """Append a ``CheckReported`` for each check whose verdict or detail changed; alert on a
    check that newly fails."""
    rows = log.tables.daemon()
    for check in results:
        row = rows.get(f"check:{check.name}")
        verdict = "ok" if check.ok else "failed"
        if row is not None and row.value == verdict and row.extra.get("detail") == check.detail:
            continue
        await log.append(ev.CheckReported(name=check.name, ok=check.ok, detail=check.detail),
                         idempotency_key=f"check:{check.name}:{log.last_seq}")
        if not check.ok:
            at = time.time()
            # a tokens check that failed on a 5xx or a timeout is not a refusal of the tokens
            refused = check.name == "tokens" and check.detail.startswith("e-conomic refused")
            alerter.alert(alerts.tokens_rejected(detail=check.detail, at=at) if refused else
                          alerts.check_failed(name=check.name, detail=check.detail, at=at))


async def checking(log: eventlog.EventLog, economic: economic_client.EconomicClient,
                   settings: Callable[[], config.Settings], alerter: alerting.Alerter,
                   *, beat: Callable[[], None], every: Callable[[], float],
                   again: Callable[[], float] | None = None,
                   idle_beat_s: float = 1.0) -> None:
    """Preflight at start and then once per full reconcile interval, or after ``again``
    seconds (the incremental interval) while a check fails, so that a transient failure or a
    problem fixed in e-conomic does not stay reported until the next full interval; beats at
    least every ``idle_beat_s`` seconds while it waits."""
    while True:
        failing = True
        try:
            results = await preflight.run_checks(economic, settings())
            await record_checks(log, results, alerter)
            failing = not all(check.ok for check in results)
        except economic_errors.EconomicError as exc:
            _log.warning("preflight could not run", error=str(exc))
        beat()
        wait = min(every(), again()) if failing and again is not None else every()
        with anyio.move_on_after(wait):
            while True:
                await anyio.sleep(idle_beat_s)
                beat()


async def measuring(log: eventlog.EventLog, economic: economic_client.EconomicClient,
                    reconciler: reconcile_running.Reconciler, meter: metrics.Metrics) -> None:
    """Refresh the gauges every few seconds (counters are bumped where things happen)."""
    while True:
        meter.set_projection_lag(log.last_seq - log.tables.checkpoint)
        stats = economic.stats()
        meter.set_rate_limit(stats.rate_limit.used, stats.rate_limit.limit)
        meter.set_calls_today(stats.calls_today)
        for kind in ev.KINDS:
            meter.set_queue_depth(kind, reconciler.queue.depth(kind))
            meter.set_parked(kind, sum(1 for s in log.tables.states().values()
                                       if s.kind == kind and s.parked))
        if reconciler.last_full_at is not None:
            meter.reconcile_succeeded(reconciler.last_full_at)
        await anyio.sleep(METRICS_EVERY_S)


async def run(settings: config.Settings) -> int:
    notifier = notifying.Notifier()
    runtime = app.Runtime(settings)
    try:
        secrets = Secrets(settings)
    except config.ConfigError as exc:
        _log.error("cannot start", error=str(exc))
        return 1
    try:
        log = await app.open_log(settings, notifier)
    except opening.StoreError as exc:
        _log.error("cannot start", error=str(exc))
        return 1
    meter = metrics.Metrics()

    def count(batch: list[tuple[int, ev.Event]]) -> None:
        for _seq, event in batch:
            meter.event_appended(ev.type_name(event))

    log.listeners.append(count)
    alerter = alerting.Alerter(settings.alerts, label=settings.moment.company)
    watchdog = notifying.Watchdog.from_environment(notifier)
    async with log, \
            economic_client.EconomicClient(
                rest_url=settings.economic.rest_url, apis_url=settings.economic.apis_url,
                app_secret_token=secrets.economic_app,
                agreement_grant_token=secrets.economic_grant,
                daily_call_budget=settings.economic.daily_call_budget,
                on_call=meter.economic_call) as economic, \
            moment_client.MomentClient(api_url=settings.moment.api_url,
                                       company=settings.moment.company,
                                       api_key=secrets.moment_api_key) as moment:
        ingest = ingest_running.Ingest(settings=settings, log=log, client=moment,
                                       webhook_token=secrets.webhook_token)
        reconcile_pulse = watchdog.pulse("reconcile")
        reconciler = reconcile_running.Reconciler(
            log=log, client=economic, options=options(settings),
            reconcile_interval=settings.economic.reconcile_interval,
            full_reconcile_interval=settings.economic.full_reconcile_interval,
            observer=Observer(alerter, meter), beat=reconcile_pulse.beat,
            idle_beat_s=watchdog.beat_every)
        answers = answering.Answers(runtime=runtime, log=log, economic=economic, ingest=ingest,
                                    reconciler=reconciler)
        server = statusserver.StatusServer(answers, meter)
        current = [settings]

        def reload(fresh: config.Settings) -> None:
            current[0] = fresh
            alerter.reconfigure(fresh.alerts)
            reconciler.ctx.options = options(fresh)

        check_pulse = watchdog.pulse("preflight")
        try:
            await server.start(Path(settings.daemon.status_socket))
            async with anyio.create_task_group() as tg:
                await tg.start(ingest.run)
                await tg.start(reconciler.run)
                tg.start_soon(alerter.run)
                tg.start_soon(watchdog.run)
                tg.start_soon(measuring, log, economic, reconciler, meter)
                tg.start_soon(lambda: checking(
                    log, economic, lambda: current[0], alerter, beat=check_pulse.beat,
                    every=lambda: current[0].economic.full_reconcile_interval,
                    again=lambda: current[0].economic.reconcile_interval,
                    idle_beat_s=watchdog.beat_every))

                async def finish_in_flight() -> None:
                    """Stop intake, then let the reconcile pass in flight record its outcome."""
                    await ingest.receiver.stop()
                    await reconciler.stop(grace=app.SHUTDOWN_GRACE_S)

                await app.supervise(runtime, notifier, [], on_reload=reload,
                                    on_stopping=finish_in_flight)
                tg.cancel_scope.cancel()
        except Exception as exc:
            _log.exception("the daemon stopped on an error", error=str(exc))
            return 1
        finally:
            with anyio.CancelScope(shield=True):
                await server.stop()
                with anyio.move_on_after(10):
                    await alerter.flush(force=True)
    _log.info("stopped")
    return 0


async def cmd_run(args: argparse.Namespace) -> int:
    """``moment-sync run``: the daemon in the foreground."""
    settings = config.load(config.config_path(args.config))
    logsetup.configure(settings.daemon.log_format)
    return await run(settings)
