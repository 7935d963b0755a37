"""The composition root: every part of the daemon is built here, run in one root task group,
and stopped in a defined order. ``moment-sync run`` is :func:`run`; the commands that work
without a running daemon build their clients and reconciler with the same factories.

Start order: logging (the caller's); secrets (every one the configuration uses, before anything
opens, so a missing one stops the start at once); the event log (lock, schema, projections
caught up, with ``EXTEND_TIMEOUT_USEC`` while that takes long); clients; the status socket;
the loops (the e-conomic webhooks are installed by one of them, so a failure there holds
nothing else up); signal handlers; then ``READY=1`` — so READY means the socket already
answers and a signal meets our handlers.

Shutdown order (STYLE.md 13) on SIGTERM or SIGINT: ``STOPPING=1`` and state ``stopping``; the
webhook receiver stops taking hints; the reconciler gets ``SHUTDOWN_GRACE_S`` seconds to finish
the calls in flight and record their outcomes (shielded); then every loop is cancelled; the
status socket closes; alerts are flushed; the log closes last. SIGHUP reloads the
configuration: a file that does not validate is refused, the running configuration stays, and
``/status`` shows a failed ``config`` check.

:func:`run` returns the process exit code: 0 after a clean stop, 1 when the start fails (the
message says why; nothing is left half-started: the log is closed and the lock released).
Nothing here decides what to sync or how: that is ingest's and reconcile's.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Final

import anyio
import anyio.abc
import structlog

from daemon import settings as config
from daemon.core import clocks
from daemon.core import events as ev
from daemon.core import secrets as core_secrets
from daemon.economic import client as economic_client
from daemon.ingest import expensing, hinting, paying, polling
from daemon.ingest import running as ingest_running
from daemon.moment import client as moment_client
from daemon.moment import limiting as moment_limiting
from daemon.ops import (
    alerting,
    answering,
    clocking,
    exposing,
    limits,
    metrics,
    notifying,
    observing,
    preflight,
    rendering,
    replicating,
    statusserver,
    webhooking,
)
from daemon.ops import logging as logsetup
from daemon.reconcile import hooks
from daemon.reconcile import running as reconcile_running
from daemon.store import consuming, eventlog, opening, records

_log = structlog.get_logger("daemon")

SHUTDOWN_GRACE_S: Final = 20.0
EXTEND_EVERY_EVENTS: Final = 50_000
#: How often systemd's StatusText is brought up to date.
STATUS_TEXT_EVERY_S: Final = 5.0


class Runtime:
    """Shared, mutable facts about the running daemon that the status socket reports
    (:class:`daemon.ops.answering.Lifecycle`)."""

    def __init__(self, settings: config.Settings, *, clock: clocks.Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.state = "starting"
        self.started = clock.monotonic()
        self.stop = anyio.Event()
        self.config_error = ""

    @property
    def uptime_s(self) -> float:
        return self.clock.monotonic() - self.started


# --- factories: the one place each client and component is built ---------------------------


class Secrets:
    """Reads each secret once, when first asked for, and registers it with the log's scrubber
    (:func:`daemon.ops.logging.register_secret`), so no log line carries it. Raises
    :class:`daemon.settings.ConfigError` naming the setting, never the value."""

    def __init__(self, settings: config.Settings) -> None:
        self._settings = settings
        self._read: dict[str, core_secrets.Secret] = {}

    def __getitem__(self, name: str) -> core_secrets.Secret:
        if name not in self._read:
            secret = config.load_secret(self._settings, name)
            logsetup.register_secret(secret)
            self._read[name] = secret
        return self._read[name]

    def read_all(self) -> None:
        """Read every secret the configuration uses now (:func:`daemon.settings.needed_secrets`:
        the e-conomic webhook token only with ``webhook_url`` set)."""
        for name in config.needed_secrets(self._settings):
            self[name]


def economic(settings: config.Settings, secrets: Secrets, *, clock: clocks.Clock,
             on_call: Callable[[str, str, int | None], None] | None = None,
             ) -> economic_client.EconomicClient:
    """The e-conomic client of ``[economic]``: its URLs, tokens and daily call budget (and the
    call timeout a test hook may shorten)."""
    timeout = hooks.economic_timeout_s() or economic_client.TIMEOUT_S
    return economic_client.EconomicClient(
        rest_url=settings.economic.rest_url, apis_url=settings.economic.apis_url,
        app_secret_token=secrets["economic-app-secret-token"],
        agreement_grant_token=secrets["economic-agreement-grant-token"], clock=clock,
        daily_call_budget=settings.economic.daily_call_budget, on_call=on_call,
        timeout_s=timeout)


def economic_webhook_token(settings: config.Settings, secrets: Secrets
                           ) -> core_secrets.Secret | None:
    """The e-conomic webhook token, when ``webhook_url`` is set (None: no webhooks)."""
    if not settings.economic.webhook_url:
        return None
    return secrets["economic-webhook-token"]


def moment(settings: config.Settings, secrets: Secrets, *, clock: clocks.Clock
           ) -> moment_client.MomentClient:
    """The Moment client of ``[moment]``."""
    return moment_client.MomentClient(api_url=settings.moment.api_url,
                                      company=settings.moment.company,
                                      api_key=secrets["moment-api-key"], clock=clock,
                                      pace=moment_limiting.DEFAULT_PACE)


def reconciler(settings: config.Settings, *, log: eventlog.EventLog,
               client: economic_client.EconomicClient, clock: clocks.Clock,
               observer: observing.Observer | None = None,
               watchdog: notifying.Watchdog | None = None,
               moment_api: moment_client.MomentClient | None = None,
               ) -> reconcile_running.Reconciler:
    """The reconciler of ``[economic]``; with a ``watchdog``, its ``reconcile`` pulse, excused
    while e-conomic or Moment keeps its own calls waiting (a Retry-After pause, the pace, a
    call in flight); with ``moment_api``, it writes the kinds that flow into Moment (expenses,
    the paid status)."""
    limiters: tuple[notifying.Waits, ...] = (
        client.limiter, *(() if moment_api is None else (moment_api.limiter,)))
    pulse = None if watchdog is None else watchdog.pulse(
        "reconcile", excused=notifying.waiting_on("reconcile", *limiters))
    return reconcile_running.Reconciler(
        log=log, client=client, options=config.mapping_options(settings), clock=clock,
        reconcile_interval=settings.economic.reconcile_interval,
        full_reconcile_interval=settings.economic.full_reconcile_interval,
        observer=observer, beat=None if pulse is None else pulse.beat,
        idle_beat_s=notifying.DEFAULT_IDLE_BEAT if watchdog is None else watchdog.beat_every,
        moment=moment_api)


def paid_status(settings: config.Settings, *, log: eventlog.EventLog,
                client: economic_client.EconomicClient, clock: clocks.Clock,
                ) -> paying.PaidStatus:
    """The paid-status reader of ``[payments]``."""
    return paying.PaidStatus(log=log, client=client, clock=clock,
                             poll_interval_s=float(settings.payments.poll_interval))


def booked_entries(settings: config.Settings, *, log: eventlog.EventLog,
                   client: economic_client.EconomicClient, clock: clocks.Clock,
                   ) -> expensing.BookedEntries:
    """The booked-entries poller of ``[expenses]``."""
    x = settings.expenses
    return expensing.BookedEntries(log=log, client=client, clock=clock, accounts=x.accounts,
                                   lookback_s=float(x.lookback),
                                   poll_interval_s=float(x.poll_interval),
                                   full_scan_interval_s=float(x.full_scan_interval))


def poller(settings: config.Settings, *, log: eventlog.EventLog,
           client: moment_client.MomentClient, clock: clocks.Clock) -> polling.Poller:
    """A poller of ``[moment]`` with its own hint processor, for a command that fetches from
    Moment without the daemon (the daemon's poller is part of
    :class:`~daemon.ingest.running.Ingest`)."""
    return polling.Poller(log=log, client=client,
                          processor=hinting.HintProcessor(log=log, client=client, clock=clock),
                          poll_interval_s=settings.moment.poll_interval,
                          full_scan_interval_s=settings.moment.full_scan_interval, clock=clock)


def replication_watch(settings: config.Settings, *, clock: clocks.Clock
                      ) -> replicating.Watch | None:
    """The watch on Litestream of ``[replication]``; None when it is not watched."""
    rep = settings.replication
    if not rep.metrics_url:
        return None
    return replicating.Watch(url=rep.metrics_url, db_path=str(settings.db_path),
                             max_lag=rep.max_lag, clock=clock)


def _catch_up_progress(notifier: notifying.Notifier) -> Callable[[int, int], None]:
    last = [0]

    def progress(done: int, total: int) -> None:
        if done - last[0] >= EXTEND_EVERY_EVENTS:
            last[0] = done
            notifier.extend_timeout(30_000_000)
            notifier.status(f"catching up projections: {done} of {total} events")

    return progress


async def open_log(settings: config.Settings, notifier: notifying.Notifier, *,
                   clock: clocks.Clock) -> eventlog.EventLog:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    notifier.status("opening the event log")
    # a log Litestream replicates is checkpointed by Litestream alone (README, "Backups and
    # restore")
    return await eventlog.EventLog.open(settings.db_path, clock=clock,
                                        progress=_catch_up_progress(notifier),
                                        checkpoints=not settings.replication.metrics_url)


async def telling(answers: answering.Answers, notifier: notifying.Notifier, *,
                  clock: clocks.Clock, every: float = STATUS_TEXT_EVERY_S) -> None:
    """Keep systemd's StatusText (``systemctl status``) the one-line summary of
    :func:`daemon.ops.rendering.status_line`, sent when it changes; nothing without systemd."""
    if not notifier.enabled:
        return
    told = ""
    while True:
        line = rendering.status_line(await answers.status())
        if line != told and notifier.status(line):
            told = line
        await clock.sleep(every)


# --- supervision ------------------------------------------------------------------------------


async def _signals(runtime: Runtime, on_reload: Callable[[config.Settings], None], *,
                   task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        task_status.started()  # the handlers are in place: READY may go out
        async for signum in signals:
            if signum == signal.SIGHUP:
                try:
                    fresh = config.load(Path(runtime.settings.source))
                except config.ConfigError as exc:
                    runtime.config_error = str(exc)
                    _log.error("configuration reload refused; the running one stays",
                               error=str(exc))
                    continue
                runtime.config_error = ""
                on_reload(fresh)
                _log.info("configuration reloaded", source=fresh.source)
            else:
                _log.info("stopping", signal=signal.Signals(signum).name)
                runtime.stop.set()
                return


async def supervise(runtime: Runtime, notifier: notifying.Notifier, *,
                    grace: float = SHUTDOWN_GRACE_S,
                    on_reload: Callable[[config.Settings], None] = lambda _s: None,
                    on_stopping: Callable[[], Awaitable[None]] | None = None) -> None:
    """Install the signal handlers, say READY, and wait for a stop signal; then say STOPPING
    and give ``on_stopping`` up to ``grace`` seconds (shielded) to finish the work in flight.
    The caller cancels what still runs."""
    async with anyio.create_task_group() as tg:
        # started, not start_soon: a SIGTERM, SIGINT or SIGHUP right after READY=1 must meet
        # our handlers, not Python's defaults (which kill the process or raise
        # KeyboardInterrupt)
        await tg.start(_signals, runtime, on_reload)
        runtime.state = "running"
        await notifier.ready("running")
        _log.info("running")
        await runtime.stop.wait()
        runtime.state = "stopping"
        await notifier.stopping("stopping")
        if on_stopping is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(grace):
                await on_stopping()
        tg.cancel_scope.cancel()


def listen_refused(exc: BaseException) -> config.ListenError | None:
    """The :class:`~daemon.settings.ListenError` ``exc`` is, or the first of the task
    group(s) ``exc`` is made of when it holds nothing else: an address that cannot be listened
    on (``daemon.listen``, ``daemon.metrics_listen``) is a start refused with its sentence, not
    an error with a traceback. ``None`` for anything else."""
    if isinstance(exc, config.ListenError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(config.ListenError)
        if matched is not None and rest is None:
            return listen_refused(matched.exceptions[0])
    return None


async def run(settings: config.Settings) -> int:
    """``moment-sync run``: build everything, run until a stop signal, stop in order."""
    clock = clocking.SystemClock()  # the one real clock: every component gets it from here
    notifier = notifying.Notifier()
    runtime = Runtime(settings, clock=clock)
    secrets = Secrets(settings)
    try:
        secrets.read_all()
        log = await open_log(settings, notifier, clock=clock)
    except (config.ConfigError, opening.StoreError) as exc:
        _log.error("cannot start", error=str(exc))
        return 1
    meter = metrics.Metrics()

    async def count(batch: Sequence[records.Committed]) -> None:
        for _seq, event in batch:
            meter.event_appended(ev.type_name(event))

    counting = consuming.Consumer(name="metrics", log=log, handle=count, clock=clock)
    alerter = alerting.Alerter(settings.alerts, label=settings.moment.company, clock=clock)
    watchdog = notifying.Watchdog.from_environment(notifier, clock=clock)
    async with log, economic(settings, secrets, clock=clock,
                             on_call=meter.economic_call) as economic_api, \
            moment(settings, secrets, clock=clock) as moment_api:
        limits.seed(log, economic_api.limiter)  # a pause and the calls an earlier run recorded
        ingest = ingest_running.Ingest(settings=settings, log=log, client=moment_api,
                                       webhook_token=secrets["moment-webhook-token"],
                                       economic_webhook_token=economic_webhook_token(
                                           settings, secrets),
                                       clock=clock, on_webhook=meter.webhook_answered)
        reconcile = reconciler(settings, log=log, client=economic_api, clock=clock,
                               observer=observing.Observer(alerter, meter, clock=clock),
                               watchdog=watchdog, moment_api=moment_api)
        watch = replication_watch(settings, clock=clock)
        current = [settings]
        hook_token = economic_webhook_token(settings, secrets)
        keeper = None if hook_token is None else webhooking.Keeper(
            log=log, client=economic_api, settings=lambda: current[0], token=hook_token,
            alerter=alerter, clock=clock)
        payments = (paid_status(settings, log=log, client=economic_api, clock=clock)
                    if settings.payments.enabled else None)
        expenses = (booked_entries(settings, log=log, client=economic_api, clock=clock)
                    if settings.expenses.enabled else None)
        answers = answering.Answers(runtime=runtime, log=log, economic=economic_api,
                                    moment=moment_api, clock=clock,
                                    ingest=ingest, reconciler=reconcile, replication=watch,
                                    webhooks=None if keeper is None else keeper.status,
                                    payments=payments, expenses=expenses)
        server = statusserver.StatusServer(answers, meter)
        metrics_at = settings.daemon.metrics_address
        scraped = None if metrics_at is None else exposing.MetricsListener(
            meter, metrics_at, state=answers.state)

        def reload(fresh: config.Settings) -> None:
            current[0] = fresh
            alerter.reconfigure(fresh.alerts)
            reconcile.options = config.mapping_options(fresh)

        check_pulse = watchdog.pulse("preflight", excused=notifying.waiting_on(
            "preflight", economic_api.limiter, moment_api.limiter))
        try:
            await server.start(Path(settings.daemon.status_socket))
            if scraped is not None:
                await scraped.start()
            async with anyio.create_task_group() as tg:
                await tg.start(counting.run)
                await tg.start(ingest.run)
                await tg.start(reconcile.run)
                if payments is not None:
                    await tg.start(payments.run)
                if expenses is not None:
                    await tg.start(expenses.run)
                    # a day-book webhook's hint (in the log) starts a read of booked entries
                    await tg.start(consuming.Consumer(name="booked-entries", log=log,
                                                      handle=expenses.on_events,
                                                      clock=clock).run)
                tg.start_soon(lambda: limits.recording(log, economic_api.limiter, clock=clock))
                tg.start_soon(alerter.run)
                tg.start_soon(watchdog.run)
                tg.start_soon(lambda: telling(answers, notifier, clock=clock))
                tg.start_soon(lambda: observing.measuring(log, economic_api, reconcile, meter,
                                                          clock=clock, moment=moment_api))
                tg.start_soon(lambda: preflight.checking(
                    log, economic_api, lambda: current[0], alerter, clock=clock,
                    beat=check_pulse.beat,
                    every=lambda: current[0].economic.full_reconcile_interval,
                    again=lambda: current[0].economic.reconcile_interval,
                    idle_beat_s=watchdog.beat_every))
                if keeper is not None:  # its own task: a failure holds nothing else up
                    tg.start_soon(keeper.run)
                if watch is not None:
                    tg.start_soon(lambda: replicating.watching(
                        watch, lambda ok, detail: preflight.record_checks(
                            log, [preflight.replication_check(ok, detail)], alerter,
                            clock=clock), clock=clock, measure=meter.set_replication))

                async def finish_in_flight() -> None:
                    """Stop intake, then let the reconcile pass in flight record its outcome."""
                    await ingest.receiver.stop()
                    await reconcile.stop(grace=SHUTDOWN_GRACE_S)

                await supervise(runtime, notifier, on_reload=reload,
                                on_stopping=finish_in_flight)
                tg.cancel_scope.cancel()
        except Exception as exc:
            refused = listen_refused(exc)
            if refused is not None:
                _log.error("cannot start", error=str(refused))
            else:
                _log.exception("the daemon stopped on an error", error=str(exc))
            return 1
        finally:
            with anyio.CancelScope(shield=True):
                if scraped is not None:
                    await scraped.stop()
                await server.stop()
                with anyio.move_on_after(10):
                    await alerter.flush(force=True)
    _log.info("stopped")
    return 0
