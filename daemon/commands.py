"""Every ``moment-sync`` command (DESIGN.md, Command line): ``cmd_<name>(args) -> exit code``.

The parser in :mod:`daemon.cli` calls them. ``run`` and the direct paths of ``plan`` and
``resync`` build what they need with the factories of :mod:`daemon.app`. Commands that only read
the log or ask the socket (``status``, ``events``, ``parked``, ``replay``) never read secrets.
``plan`` and ``resync`` go through the running daemon's socket when it runs, and work directly
on the log otherwise (taking the state directory's lock, so never beside a running daemon).
``plan`` is read-only either way: it appends nothing and writes nothing to e-conomic. A command
that cannot do its job raises :class:`CommandError` with a sentence for the operator.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import msgspec

from daemon import app
from daemon import settings as config
from daemon.core import clocks, plans, reports
from daemon.core import events as ev
from daemon.core import expenses as xp
from daemon.economic import client as economic_client
from daemon.economic import installing
from daemon.moment import client as moment_client
from daemon.ops import asking, clocking, preflight, rendering, replicating, webhooking
from daemon.ops import logging as logsetup
from daemon.reconcile import planning
from daemon.store import eventlog, reading, records, replaying, restoring


class CommandError(Exception):
    """A command cannot do its job; the message is for the operator."""


def _settings(args: argparse.Namespace) -> config.Settings:
    return config.load(config.config_path(args.config))


def _print(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _client(settings: config.Settings) -> asking.StatusClient:
    return asking.StatusClient(Path(settings.daemon.status_socket))


# --- the daemon, and the demo around it --------------------------------------------------------


async def cmd_run(args: argparse.Namespace) -> int:
    """``moment-sync run``: the daemon in the foreground."""
    settings = _settings(args)
    logsetup.configure(settings.daemon.log_format)
    return await app.run(settings)


async def cmd_demo(args: argparse.Namespace) -> int:
    from daemon import demo  # the sandboxes load only for the demo

    return await demo.run(args)


async def cmd_sandbox(args: argparse.Namespace) -> int:
    from daemon.sandbox import economic as economic_sandbox
    from daemon.sandbox import moment as moment_sandbox
    from daemon.sandbox import moment_faults

    async with economic_sandbox.EconomicSandbox.running(port=args.economic_port) as esb, \
            moment_sandbox.MomentSandbox.running(
                port=args.moment_port, rate_limit=moment_faults.DOCUMENTED_LIMIT) as msb:
        line = {**esb.describe(), "moment_api_url": msb.api_url,
                "moment_company": msb.company, "moment_api_key": msb.api_key}
        _print(msgspec.json.encode(line).decode())
        await anyio.sleep_forever()
    return 0


# --- commands that read the log --------------------------------------------------------------


def _record_json(record: records.Record) -> bytes:
    return msgspec.json.encode({
        "seq": record.seq, "type": record.type, "kind": record.kind, "key": record.key,
        "idempotency_key": record.idempotency_key, "occurred_at": record.occurred_at,
        "recorded_at": record.recorded_at, "payload": msgspec.Raw(record.payload)})


async def cmd_events(args: argparse.Namespace) -> int:
    settings = _settings(args)
    kind = key = None
    if args.entity:
        kind, sep, key = args.entity.partition(":")
        if not sep or (kind not in ev.ALL_KINDS and kind != "daemon") or not key:
            raise CommandError(f"--entity {args.entity!r}: use KIND:KEY, KIND one of "
                               f"{', '.join(ev.ALL_KINDS)} (for example customer:10001)")
    out = sys.stdout.buffer
    async for record in reading.events(settings.db_path, since=args.since, kind=kind, key=key):
        if args.json:
            out.write(_record_json(record) + b"\n")
        else:
            out.write(f"{record.seq:>8}  {record.occurred_at}  {record.type:<22} "
                      f"{record.kind}:{record.key}\n".encode())
    out.flush()
    return 0


async def cmd_replay(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.verify:
        result = await replaying.replay_verify(settings.db_path)
        for diff in result.differences[:20]:
            _print(f"DIFF {diff.table} {diff.key}\n  live:     {diff.live}\n"
                   f"  replayed: {diff.replayed}")
        if result.live_checkpoint != result.last_seq:
            _print(f"checkpoint {result.live_checkpoint} is behind the log ({result.last_seq}): "
                   "the daemon catches up on its next start")
        verdict = "OK" if result.ok else f"MISMATCH ({len(result.differences)} rows differ)"
        _print(f"replayed {result.events} events into {result.rows} rows: {verdict}")
        return 0 if result.ok else 1
    count = await replaying.rebuild(settings.db_path)
    _print(f"rebuilt the projections from {count} events")
    return 0


async def cmd_restore(args: argparse.Namespace) -> int:
    """``moment-sync restore``: refuse a damaged file, else mark the entities in doubt."""
    settings = _settings(args)
    outcome = await restoring.restore(settings.db_path, clock=clocking.SystemClock())
    _print(f"{outcome.marked} entities marked in doubt")
    if outcome.marked:
        _print(f"(of {outcome.entities} the log has written to, through event "
               f"{outcome.last_seq - 1}: each one's next write to e-conomic is preceded by a "
               "lookup; Moment is read again from the log's cursors)")
    return 0


# --- commands that ask the running daemon ----------------------------------------------------


async def cmd_status(args: argparse.Namespace) -> int:
    path = config.config_path(args.config)
    socket, problem = config.status_socket(path)
    if problem:
        sys.stderr.write(f"moment-sync status: {path} does not validate: {problem}. The daemon "
                         f"keeps the configuration it last accepted; asking it at {socket}\n")
    client = asking.StatusClient(Path(socket))
    raw = await client.status()
    if args.json:
        sys.stdout.buffer.write(raw + b"\n")
        return 0
    parked = reports.decode_parked(await client.parked())
    _print(rendering.render_status(reports.decode_status(raw), parked))
    return 0


async def cmd_parked(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.retry:
        kind, key = args.retry
        if kind not in ev.ALL_KINDS:
            raise CommandError(f"{kind!r} is not a kind: use one of {', '.join(ev.ALL_KINDS)}")
        try:
            await _client(settings).retry(kind, key)
            _print(f"{kind} {key}: un-parked and queued")
            return 0
        except asking.DaemonNotRunning:
            return await _retry_directly(settings, kind, key)
    try:
        items = reports.decode_parked(await _client(settings).parked())
    except asking.DaemonNotRunning:
        tables = await reading.tables(settings.db_path)
        items = [reports.ParkedItem(kind=s.kind, key=s.key, reason=s.reason,
                                     attempts=s.attempts, last_error=s.last_error,
                                     parked_at=s.parked_at)
                 for s in tables.states().values() if s.parked]
    _print(rendering.render_parked(items))
    return 0


async def _retry_directly(settings: config.Settings, kind: str, key: str) -> int:
    async with await eventlog.EventLog.open(settings.db_path,
                                            clock=clocking.SystemClock()) as log:
        if not log.tables.state(kind, key).parked:
            raise CommandError(f"{kind} {key} is not parked")
        await log.append(ev.RetryRequested(kind=kind, key=key),
                         idempotency_key=f"retry:{kind}:{key}:{log.last_seq}")
    _print(f"{kind} {key}: un-parked; the daemon retries it when it next starts")
    return 0


# --- commands that talk to e-conomic or Moment -----------------------------------------------


async def cmd_check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    clock = clocking.SystemClock()
    # the dates of invoices not yet booked, from the log when this host has one
    pending = preflight.pending_dates(await reading.tables(settings.db_path)) \
        if Path(settings.db_path).exists() else set()
    secrets = app.Secrets(settings)
    hooks_plan = webhooking.plan(settings, app.economic_webhook_token(settings, secrets))
    async with app.economic(settings, secrets, clock=clock) as client:
        checks = await preflight.run_checks(client, settings,
                                            today=clocks.utc(clock.now()).date(),
                                            pending=pending, webhooks=hooks_plan)
    if settings.replication.metrics_url:
        checks.append(await _replication_check(settings, clock))
    _print(preflight.render(checks))
    return 0 if all(c.ok for c in checks) else 1


async def cmd_webhooks(args: argparse.Namespace) -> int:
    """``moment-sync webhooks [status|install|remove]``: one line per event type; exit 0 only
    when every wanted webhook is installed and enabled (``remove``: when none of the daemon's
    is left)."""
    settings = _settings(args)
    secrets = app.Secrets(settings)
    wanted = webhooking.plan(settings, app.economic_webhook_token(settings, secrets))
    if wanted is None:
        raise CommandError("[economic] webhook_url is empty: the daemon uses no e-conomic "
                           "webhooks (set it to the TLS proxy's https address to use them)")
    action = args.action or "status"
    async with app.economic(settings, secrets, clock=clocking.SystemClock()) as client:
        if action == "install":
            report = await installing.install(client, wanted)
        elif action == "remove":
            report = await installing.remove(client, wanted)
        else:
            report = await installing.survey(client, wanted)
    for line in report.done:
        _print(line)
    _print("\n".join(report.lines()) or "no webhooks wanted")
    if action == "remove":
        left = [e for e in report.entries if e.state not in ("missing", "foreign", "unknown")]
        return 1 if report.error or left else 0
    return 0 if report.ok else 1


async def _replication_check(settings: config.Settings, clock: clocks.Clock) -> preflight.Check:
    """The running daemon's verdict, which has watched Litestream over time; without a
    daemon, a watch of up to 10 s (or ``max_lag`` when shorter)."""
    try:
        rep = reports.decode_status(await _client(settings).status()).replication
    except asking.DaemonNotRunning:
        ok, detail = await replicating.check_once(
            settings.replication.metrics_url, str(settings.db_path),
            window=min(10.0, settings.replication.max_lag), clock=clock)
        return preflight.replication_check(ok, detail)
    if rep.ok:
        return preflight.replication_check(True, f"the running daemon sees the replica "
                                                 f"{rep.lag_s:g}s behind the log")
    return preflight.replication_check(False, f"replication is failing: the replica is "
                                              f"{rep.lag_s:g}s behind the log. {rep.last_error}")


def render_plan(report: plans.PlanReport) -> str:
    lines: list[str] = []
    for kind, section in report.kinds.items():
        lines.append(f"{kind}: {section.desired} managed, {section.pending} to change")
        for action in section.actions[:50]:
            detail = action.detail or ", ".join(action.fields)
            lines.append(f"  {action.action:<12} {kind} {action.key}"
                         + (f"  ({detail})" if detail else ""))
        if len(section.actions) > 50:
            lines.append(f"  … and {len(section.actions) - 50} more")
    for item in report.parked:
        lines.append(f"parked   {item.kind} {item.key}: {item.reason}")
    for item in report.problems:
        lines.append(f"problem  {item.kind} {item.key}: {item.reason}")
    for stray in report.strays:
        lines.append(f"stray    {stray.kind} {stray.number}: {stray.note} "
                     "(reported, never deleted)")
    lines.append("in sync" if report.pending == 0 else f"{report.pending} changes pending")
    return "\n".join(lines)


async def _plan_directly(settings: config.Settings, kind: str | None) -> plans.PlanReport:
    clock = clocking.SystemClock()
    async with await eventlog.EventLog.open(settings.db_path, clock=clock) as log, \
            app.economic(settings, app.Secrets(settings), clock=clock) as client:
        return await planning.plan(log, client, config.mapping_options(settings), kind=kind)


async def cmd_plan(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        raw = await _client(settings).plan(args.kind)
        report = plans.decode_plan(raw)
    except asking.DaemonNotRunning:
        report = await _plan_directly(settings, args.kind)
    except plans.PlanDecodeError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        _print(msgspec.json.encode(report).decode())
    else:
        _print(render_plan(report))
    return planning.exit_code(report)


@contextlib.asynccontextmanager
async def _directly(settings: config.Settings) -> AsyncIterator[
        tuple[eventlog.EventLog, moment_client.MomentClient, economic_client.EconomicClient,
              clocks.Clock]]:
    """The log, the Moment and e-conomic clients and the clock a command works with when no
    daemon runs (``resync``, ``backfill expenses``), closed on the way out."""
    secrets = app.Secrets(settings)
    clock = clocking.SystemClock()
    async with await eventlog.EventLog.open(settings.db_path, clock=clock) as log, \
            app.moment(settings, secrets, clock=clock) as moment, \
            app.economic(settings, secrets, clock=clock) as client:
        yield log, moment, client, clock


async def _resync_directly(settings: config.Settings, kind: str, key: str) -> str:
    if kind == "expense":
        return await _resync_expense_directly(settings, key)
    if kind == "payment" and not settings.payments.enabled:
        # as the daemon, which reads no paid status with payments off
        raise CommandError("payments are off: set [payments] enabled = true first")
    async with _directly(settings) as (log, moment, client, clock):
        if kind == "payment":  # read e-conomic's customer rows, not Moment
            facts = await app.paid_status(settings, log=log, client=client,
                                          clock=clock).refresh()
            if key not in log.tables.payments():
                raise CommandError(f"payment {key}: the log has no paid status of invoice {key} "
                                   "(not booked by the daemon, or never paid)")
            outcome = f"{facts} new paid status{'' if facts == 1 else 'es'}"
        else:
            await log.append(ev.ResyncRequested(kind=kind, key=key),
                             idempotency_key=f"resync:{kind}:{key}:{log.last_seq}")
            try:
                outcome = await app.poller(settings, log=log, client=moment,
                                           clock=clock).resync(kind, key)
            except LookupError as exc:
                raise CommandError(str(exc)) from None
        reconciler = app.reconciler(settings, log=log, client=client, clock=clock,
                                    moment_api=moment)
        reconciler.resync(kind, key)
        await reconciler.step()
        state = log.tables.state(kind, key)
        verdict = f"parked: {state.reason}" if state.parked else (
            f"failed: {state.last_error}" if state.last_error else "reconciled")
        source = "read from e-conomic" if kind == "payment" else "fetched from Moment"
        return f"{kind} {key}: {source} ({outcome}); {verdict}"


async def _expenses_directly(settings: config.Settings, *, key: str | None = None,
                             since: dt.date | None = None) -> str:
    """Read booked entries (entry ``key``, or every one dated ``since`` on) and write the
    expenses Moment lacks, without a daemon: what ``resync expense`` and ``backfill expenses``
    do when none runs."""
    if not settings.expenses.enabled:
        raise CommandError("expenses are off: set [expenses] enabled = true first")
    async with _directly(settings) as (log, moment, client, clock):
        reader = app.booked_entries(settings, log=log, client=client, clock=clock)
        parsed = xp.parse_key(key) if key is not None else None
        if key is not None and parsed is None:
            raise CommandError(f"expense {key!r}: use YEAR:ENTRY, e.g. 2026:4711")
        reading = await (reader.read_entry(parsed[1]) if parsed is not None
                         else reader.backfill(since or dt.date.today()))
        reconciler = app.reconciler(settings, log=log, client=client, clock=clock,
                                    moment_api=moment)
        reconciler.queue_out_of_sync()
        if key is not None:
            if key not in log.tables.expenses():
                raise CommandError(f"expense {key}: e-conomic has no such booked entry that "
                                   "the daemon reads (a cost on a project, of a supplier "
                                   "invoice or finance voucher)")
            reconciler.resync("expense", key)
        while await reconciler.step():
            pass
        counts = reconciler.status().entities["expense"]
        return (f"read {reading.listed} booked entries ({reading.recorded} new); expenses: "
                f"{counts.in_sync} in Moment, {counts.pending} pending, {counts.parked} parked")


async def _resync_expense_directly(settings: config.Settings, key: str) -> str:
    return f"expense {key}: " + await _expenses_directly(settings, key=key)


async def cmd_backfill(args: argparse.Namespace) -> int:
    """``moment-sync backfill expenses --since DATE``: through the running daemon, else
    directly."""
    settings = _settings(args)
    try:
        since = dt.date.fromisoformat(args.since)
    except ValueError:
        raise CommandError(f"--since {args.since!r}: use a date YYYY-MM-DD") from None
    try:
        queued = await _client(settings).backfill_expenses(since.isoformat())
        _print(f"backfill from {since}: {queued} booked entries recorded; the daemon brings "
               "their expenses into Moment")
    except asking.DaemonNotRunning:
        _print(f"backfill from {since}: " + await _expenses_directly(settings, since=since))
    return 0


async def cmd_resync(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        await _client(settings).resync(args.kind, args.key)
        source = "e-conomic" if args.kind in ("expense", "payment") else "Moment"
        _print(f"{args.kind} {args.key}: re-fetched from {source} and queued for reconcile")
    except asking.DaemonNotRunning:
        _print(await _resync_directly(settings, args.kind, args.key))
    return 0
