"""Commands that talk to e-conomic or Moment: ``check``, ``plan``, ``resync`` and ``demo``.

``plan`` and ``resync`` go through the running daemon's socket when it runs, and work directly
on the log otherwise (taking the state directory's lock, so never beside a running daemon).
``plan`` is read-only either way: it appends nothing and writes nothing to e-conomic.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec

from daemon import settings as config
from daemon import wiring
from daemon.core import events as ev
from daemon.economic import client as economic_client
from daemon.ingest import hinting, polling
from daemon.moment import client as moment_client
from daemon.ops import asking, preflight
from daemon.reconcile import running as reconcile_running
from daemon.store import eventlog


class CommandError(Exception):
    """A command cannot do its job; the message is for the operator."""


def _print(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


@asynccontextmanager
async def economic(settings: config.Settings) -> AsyncIterator[economic_client.EconomicClient]:
    async with economic_client.EconomicClient(
            rest_url=settings.economic.rest_url, apis_url=settings.economic.apis_url,
            app_secret_token=config.load_secret(settings, "economic-app-secret-token"),
            agreement_grant_token=config.load_secret(settings, "economic-agreement-grant-token"),
            daily_call_budget=settings.economic.daily_call_budget) as client:
        yield client


async def cmd_check(args: argparse.Namespace) -> int:
    settings = config.load(config.config_path(args.config))
    async with economic(settings) as client:
        checks = await preflight.run_checks(client, settings)
    _print(preflight.render(checks))
    return 0 if all(c.ok for c in checks) else 1


# --- plan ------------------------------------------------------------------------------------


def render_plan(report: Mapping[str, Any]) -> str:
    lines: list[str] = []
    for kind, section in report.get("kinds", {}).items():
        lines.append(f"{kind}: {section['desired']} managed, {section['pending']} to change")
        for action in section.get("actions", [])[:50]:
            detail = action.get("detail") or ", ".join(action.get("fields", []))
            lines.append(f"  {action.get('action', '?'):<12} {kind} {action.get('key')}"
                         + (f"  ({detail})" if detail else ""))
        if len(section.get("actions", [])) > 50:
            lines.append(f"  … and {len(section['actions']) - 50} more")
    for item in report.get("parked", []):
        lines.append(f"parked   {item['kind']} {item['key']}: {item['reason']}")
    for item in report.get("problems", []):
        lines.append(f"problem  {item['kind']} {item['key']}: {item['reason']}")
    for stray in report.get("strays", []):
        lines.append(f"stray    {stray.get('kind', 'customer')} {stray.get('number')}: "
                     f"{stray.get('note', '')} (reported, never deleted)")
    pending = int(report.get("pending", 0))
    lines.append("in sync" if pending == 0 else f"{pending} changes pending")
    return "\n".join(lines)


async def _plan_directly(settings: config.Settings, kind: str | None) -> dict[str, Any]:
    async with await eventlog.EventLog.open(settings.db_path) as log, \
            economic(settings) as client:
        reconciler = reconcile_running.Reconciler(log=log, client=client,
                                                  options=wiring.options(settings))
        return await reconciler.plan(kind)


async def cmd_plan(args: argparse.Namespace) -> int:
    settings = config.load(config.config_path(args.config))
    try:
        raw = await asking.StatusClient(Path(settings.daemon.status_socket)).plan(args.kind)
        report: dict[str, Any] = msgspec.json.decode(raw)
    except asking.DaemonNotRunning:
        report = await _plan_directly(settings, args.kind)
    if args.json:
        _print(msgspec.json.encode(report).decode())
    else:
        _print(render_plan(report))
    return 2 if int(report.get("pending", 0)) > 0 else 0


# --- resync ----------------------------------------------------------------------------------


async def _resync_directly(settings: config.Settings, kind: str, key: str) -> str:
    async with await eventlog.EventLog.open(settings.db_path) as log, \
            moment_client.MomentClient(
                api_url=settings.moment.api_url, company=settings.moment.company,
                api_key=config.load_secret(settings, "moment-api-key")) as moment, \
            economic(settings) as client:
        await log.append(ev.ResyncRequested(kind=kind, key=key),
                         idempotency_key=f"resync:{kind}:{key}:{log.last_seq}")
        processor = hinting.HintProcessor(log=log, client=moment)
        poller = polling.Poller(log=log, client=moment, processor=processor,
                                poll_interval_s=settings.moment.poll_interval,
                                full_scan_interval_s=settings.moment.full_scan_interval)
        try:
            outcome = await poller.resync(kind, key)
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        reconciler = reconcile_running.Reconciler(log=log, client=client,
                                                  options=wiring.options(settings))
        reconciler.resync(kind, key)
        await reconciler.step()
        state = log.tables.state(kind, key)
        verdict = f"parked: {state.reason}" if state.parked else (
            f"failed: {state.last_error}" if state.last_error else "reconciled")
        return f"{kind} {key}: fetched from Moment ({outcome}); {verdict}"


async def cmd_resync(args: argparse.Namespace) -> int:
    settings = config.load(config.config_path(args.config))
    try:
        await asking.StatusClient(Path(settings.daemon.status_socket)).resync(args.kind, args.key)
        _print(f"{args.kind} {args.key}: re-fetched from Moment and queued for reconcile")
    except asking.DaemonNotRunning:
        _print(await _resync_directly(settings, args.kind, args.key))
    return 0


async def cmd_demo(args: argparse.Namespace) -> int:
    from daemon import demo

    return await demo.run(args)
