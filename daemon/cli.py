"""The ``moment-sync`` command line (DESIGN.md, Command line). Also ``python -m daemon``.

Every command takes ``-c CONFIG`` (else ``$MOMENT_SYNC_CONFIG``, else
``/etc/moment-sync/config.toml``). Commands that only read the log or ask the socket
(``status``, ``events``, ``parked``, ``replay``) never read secrets. Exit codes: 0 success,
1 error (the message on stderr says what to do), 2 where a command says so (``plan``: changes
pending), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio
import msgspec

from daemon import commands, wiring
from daemon import settings as config
from daemon.core import events as ev
from daemon.economic import errors as economic_errors
from daemon.moment import errors as moment_errors
from daemon.ops import asking, rendering, statuses
from daemon.store import eventlog, opening, reading, replaying

KIND_CHOICES = list(ev.KINDS)


class CommandError(Exception):
    """A command cannot do its job; the message is for the operator."""


def _settings(args: argparse.Namespace) -> config.Settings:
    return config.load(config.config_path(args.config))


def _print(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


# --- commands that read the log --------------------------------------------------------------


def _record_json(record: eventlog.Record) -> bytes:
    return msgspec.json.encode({
        "seq": record.seq, "type": record.type, "kind": record.kind, "key": record.key,
        "idempotency_key": record.idempotency_key, "occurred_at": record.occurred_at,
        "recorded_at": record.recorded_at, "payload": msgspec.Raw(record.payload)})


async def cmd_events(args: argparse.Namespace) -> int:
    settings = _settings(args)
    kind = key = None
    if args.entity:
        kind, sep, key = args.entity.partition(":")
        if not sep or (kind not in ev.KINDS and kind != "daemon") or not key:
            raise CommandError(f"--entity {args.entity!r}: use KIND:KEY, KIND one of "
                               f"{', '.join(ev.KINDS)} (for example customer:10001)")
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


# --- commands that ask the running daemon ----------------------------------------------------


def _client(settings: config.Settings) -> asking.StatusClient:
    return asking.StatusClient(Path(settings.daemon.status_socket))


async def cmd_status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    client = _client(settings)
    raw = await client.status()
    if args.json:
        sys.stdout.buffer.write(raw + b"\n")
        return 0
    parked = statuses.decode_parked(await client.parked())
    _print(rendering.render_status(statuses.decode_status(raw), parked))
    return 0


async def cmd_parked(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.retry:
        kind, key = args.retry
        if kind not in ev.KINDS:
            raise CommandError(f"{kind!r} is not a kind: use one of {', '.join(ev.KINDS)}")
        try:
            await _client(settings).retry(kind, key)
            _print(f"{kind} {key}: un-parked and queued")
            return 0
        except asking.DaemonNotRunning:
            return await _retry_directly(settings, kind, key)
    try:
        items = statuses.decode_parked(await _client(settings).parked())
    except asking.DaemonNotRunning:
        tables = await reading.tables(settings.db_path)
        items = [statuses.ParkedItem(kind=s.kind, key=s.key, reason=s.reason,
                                     attempts=s.attempts, last_error=s.last_error,
                                     parked_at=s.parked_at)
                 for s in tables.states().values() if s.parked]
    _print(rendering.render_parked(items))
    return 0


async def _retry_directly(settings: config.Settings, kind: str, key: str) -> int:
    async with await eventlog.EventLog.open(settings.db_path) as log:
        if not log.tables.state(kind, key).parked:
            raise CommandError(f"{kind} {key} is not parked")
        await log.append(ev.RetryRequested(kind=kind, key=key),
                         idempotency_key=f"retry:{kind}:{key}:{log.last_seq}")
    _print(f"{kind} {key}: un-parked; the daemon retries it when it next starts")
    return 0


# --- sandboxes -------------------------------------------------------------------------------


async def cmd_sandbox(args: argparse.Namespace) -> int:
    from daemon.sandbox import economic as economic_sandbox
    from daemon.sandbox import moment as moment_sandbox

    async with economic_sandbox.EconomicSandbox.running(port=args.economic_port) as esb, \
            moment_sandbox.MomentSandbox.running(port=args.moment_port) as msb:
        line = {**esb.describe(), "moment_api_url": msb.api_url,
                "moment_company": msb.company, "moment_api_key": msb.api_key}
        _print(msgspec.json.encode(line).decode())
        await anyio.sleep_forever()
    return 0


# --- wiring ----------------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="moment-sync", description="Keeps Visma e-conomic in step with Moment.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", help="configuration file (default: "
                        "$MOMENT_SYNC_CONFIG, else /etc/moment-sync/config.toml)")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: object, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=text, description=text)
        p.set_defaults(func=func)
        return p

    add("run", wiring.cmd_run, "run the daemon in the foreground (systemd runs this)")
    demo = add("demo", commands.cmd_demo, "run the daemon against both sandboxes with sample data")
    demo.add_argument("--customers", type=int, default=40)
    demo.add_argument("--projects", type=int, default=25)
    demo.add_argument("--invoices", type=int, default=30)
    demo.add_argument("--state-dir", help="where the demo keeps its event log (default: a "
                      "temporary directory)")
    sandbox = add("sandbox", cmd_sandbox, "serve only the two sandboxes on 127.0.0.1")
    sandbox.add_argument("--economic-port", type=int, default=0)
    sandbox.add_argument("--moment-port", type=int, default=0)
    status = add("status", cmd_status, "ask the running daemon what it is doing")
    status.add_argument("--json", action="store_true")
    plan = add("plan", commands.cmd_plan, "read-only diff of desired vs live e-conomic "
               "(exit 0 in sync, 2 changes pending, 1 error)")
    plan.add_argument("kind", nargs="?", choices=KIND_CHOICES)
    plan.add_argument("--json", action="store_true")
    resync = add("resync", commands.cmd_resync, "re-fetch one entity from Moment and "
                 "reconcile it now")
    resync.add_argument("kind", choices=KIND_CHOICES)
    resync.add_argument("key")
    parked = add("parked", cmd_parked, "list parked items with their reasons; retry one")
    parked.add_argument("--retry", nargs=2, metavar=("KIND", "KEY"))
    events = add("events", cmd_events, "read the event log")
    events.add_argument("--since", type=int, default=0, metavar="SEQ")
    events.add_argument("--entity", metavar="KIND:KEY")
    events.add_argument("--json", action="store_true")
    replay = add("replay", cmd_replay, "rebuild the projections from the log")
    replay.add_argument("--verify", action="store_true",
                        help="compare a rebuild with the live tables instead; writes nothing")
    add("check", commands.cmd_check, "preflight against e-conomic; exit 1 on any failure")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = anyio.run(args.func, args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `moment-sync events | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (config.ConfigError, opening.StoreError, asking.AskError, CommandError,
            commands.CommandError, economic_errors.EconomicError,
            moment_errors.MomentError) as exc:
        sys.stderr.write(f"moment-sync {args.command}: {exc}\n")
        return 1
    return code
