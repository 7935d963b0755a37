"""The ``moment-sync`` command line (DESIGN.md, Command line): the parser and :func:`main`. Also
``python -m daemon``. The commands themselves are in :mod:`daemon.commands`.

Every command takes ``-c CONFIG`` (else ``$MOMENT_SYNC_CONFIG``, else
``/etc/moment-sync/config.toml``). Exit codes: 0 success, 1 error (the message on stderr says
what to do), 2 where a command says so (``plan``: changes pending), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import anyio

from daemon import commands
from daemon import settings as config
from daemon.core import events as ev
from daemon.economic import errors as economic_errors
from daemon.moment import errors as moment_errors
from daemon.ops import asking
from daemon.store import opening

KIND_CHOICES = list(ev.ALL_KINDS)


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

    add("run", commands.cmd_run, "run the daemon in the foreground (systemd runs this)")
    demo = add("demo", commands.cmd_demo, "run the daemon against both sandboxes with sample data")
    demo.add_argument("--customers", type=int, default=40)
    demo.add_argument("--projects", type=int, default=25)
    demo.add_argument("--invoices", type=int, default=30)
    demo.add_argument("--state-dir", help="where the demo keeps its event log (default: a "
                      "temporary directory)")
    sandbox = add("sandbox", commands.cmd_sandbox, "serve only the two sandboxes on 127.0.0.1")
    sandbox.add_argument("--economic-port", type=int, default=0)
    sandbox.add_argument("--moment-port", type=int, default=0)
    status = add("status", commands.cmd_status, "ask the running daemon what it is doing")
    status.add_argument("--json", action="store_true")
    plan = add("plan", commands.cmd_plan, "read-only diff of desired vs live e-conomic "
               "(exit 0 in sync, 2 changes pending, 1 error)")
    plan.add_argument("kind", nargs="?", choices=KIND_CHOICES)
    plan.add_argument("--json", action="store_true")
    resync = add("resync", commands.cmd_resync, "re-fetch one entity from Moment (an expense "
                 "YEAR:ENTRY from e-conomic) and reconcile it now")
    resync.add_argument("kind", choices=KIND_CHOICES)
    resync.add_argument("key")
    parked = add("parked", commands.cmd_parked, "list parked items with their reasons; retry one")
    parked.add_argument("--retry", nargs=2, metavar=("KIND", "KEY"))
    events = add("events", commands.cmd_events, "read the event log")
    events.add_argument("--since", type=int, default=0, metavar="SEQ")
    events.add_argument("--entity", metavar="KIND:KEY")
    events.add_argument("--json", action="store_true")
    replay = add("replay", commands.cmd_replay, "rebuild the projections from the log")
    replay.add_argument("--verify", action="store_true",
                        help="compare a rebuild with the live tables instead; writes nothing")
    backfill = add("backfill", commands.cmd_backfill, "read booked entries from a date on and "
                   "bring the missing expenses into Moment (each once)")
    backfill.add_argument("what", choices=["expenses"])
    backfill.add_argument("--since", required=True, metavar="YYYY-MM-DD")
    add("check", commands.cmd_check, "preflight against e-conomic; exit 1 on any failure")
    hooks = add("webhooks", commands.cmd_webhooks, "the e-conomic webhooks the daemon uses: "
                "status (default), install, or remove the daemon's own")
    hooks.add_argument("action", nargs="?", choices=["status", "install", "remove"])
    add("restore", commands.cmd_restore, "after the event log was restored from a replica or a "
        "backup: mark every entity whose last write may be missing as in doubt")
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
    except (config.ConfigError, opening.StoreError, asking.AskError, commands.CommandError,
            economic_errors.EconomicError, moment_errors.MomentError) as exc:
        sys.stderr.write(f"moment-sync {args.command}: {exc}\n")
        return 1
    return code
