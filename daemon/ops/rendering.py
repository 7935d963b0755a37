"""The human view of the status socket's answers, for ``moment-sync status`` and ``parked``.

Pure functions of decoded documents (:mod:`daemon.core.reports`) to text: no I/O, no clock (the
daemon reports ages as timestamps and the view prints them as given), the same input always
gives the same lines. Lines stay under 100 columns except where a reason sentence is longer;
reasons are never cut, because they say what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from daemon.core import events as ev
from daemon.core import reports

_INDENT: Final = " " * 11
#: a skew this large is shown: the poll cursor is then held at the host's clock minus 60 s
_SKEW_SHOWN_S: Final = 60.0


def _duration(seconds: float) -> str:
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _number(value: float) -> str:
    return f"{int(value)}" if float(value).is_integer() else f"{value:g}"


def _or_never(value: str | None) -> str:
    return value if value else "never"


def render_status(report: reports.StatusReport, parked: Sequence[reports.ParkedItem] = ()) -> str:
    """The compact view: state, lag, per-kind counts, parked items with reasons, rate-limit use,
    last reconcile, failed checks. ``parked`` comes from ``GET /parked`` (the counts alone are
    in ``/status``)."""
    lines: list[str] = []
    version = f" {report.version}" if report.version else ""
    lines.append(f"moment-sync{version}: {report.state.upper()}, up {_duration(report.uptime_s)}")
    lag = report.projections.lag
    lines.append(
        f"Log        {report.log.events} events (last seq {report.log.last_seq}); projections "
        f"at {report.projections.checkpoint}, lag {lag}" + ("" if lag == 0 else " (catching up)")
    )

    lines.append(f"Entities   {'kind':<9}{'desired':>8}{'in sync':>9}{'pending':>9}{'parked':>8}")
    kinds = list(ev.ALL_KINDS) + sorted(k for k in report.entities if k not in ev.ALL_KINDS)
    for kind in kinds:
        counts = report.entities.get(kind)
        if counts is None:
            continue
        lines.append(
            f"{_INDENT}{kind:<9}{counts.desired:>8}{counts.in_sync:>9}{counts.pending:>9}"
            f"{counts.parked:>8}"
        )

    economic = report.economic
    rate = economic.rate_limit
    share = f" ({rate.used / rate.limit:.0%})" if rate.limit else ""
    lines.append(
        f"e-conomic  rate limit bucket {_number(rate.used)}/{_number(rate.limit)}{share}, "
        f"drains {_number(rate.limit)} per {_number(rate.window_s)}s; "
        f"{economic.calls_today} calls today"
    )
    if economic.paused_until:
        lines.append(f"{_INDENT}PAUSED until {economic.paused_until} (rate limited)")
    if economic.last_error:
        lines.append(f"{_INDENT}last error: {economic.last_error}")

    moment = report.moment
    lines.append(
        f"Moment     last webhook {_or_never(moment.last_webhook_at)}, "
        f"last poll {_or_never(moment.last_poll_at)}"
    )
    if moment.paused_until:
        lines.append(f"{_INDENT}PAUSED until {moment.paused_until} (rate limited)")
    if moment.rate_limited:
        lines.append(f"{_INDENT}{moment.rate_limited} answer(s) 429 (rate limited) since the "
                     f"start; pace {_number(moment.rate_limit.limit)} calls per "
                     f"{_number(moment.rate_limit.window_s)}s")
    if moment.clock_skew_s >= _SKEW_SHOWN_S:
        lines.append(f"{_INDENT}Moment's dates run {_number(moment.clock_skew_s)}s ahead of "
                     "this host's clock (the poll cursor is held at the host's clock)")

    booked = report.booked_entries
    if booked.cursor is not None or booked.last_read_at or booked.last_error:
        lines.append(
            f"Expenses   booked entries read to entry {booked.cursor or 0}, last read "
            f"{_or_never(booked.last_read_at)}, last full scan "
            f"{_or_never(booked.last_full_scan_at)}")
        if booked.last_error:
            lines.append(f"{_INDENT}last error: {booked.last_error}")

    rec = report.reconcile
    lines.append(
        f"Reconcile  last full {_or_never(rec.last_full_at)}, last incremental "
        f"{_or_never(rec.last_incremental_at)}; drift repaired {rec.drift_repaired}"
    )
    for stray in rec.strays:
        note = f": {stray.note}" if stray.note else ""
        lines.append(f"{_INDENT}stray {stray.kind} {stray.number} in e-conomic{note}")
    for mismatch in rec.booked_mismatches:
        lines.append(f"{_INDENT}booked invoice {mismatch.number} differs "
                     f"({', '.join(mismatch.fields)}): {mismatch.note}")
    if rec.webhooks is not None:
        verdict = "ok" if rec.webhooks.ok else "NOT ALL INSTALLED"
        lines.append(f"Webhooks   e-conomic {verdict}: {rec.webhooks.detail}; last hint "
                     f"{_or_never(rec.last_hint_at)}")

    rep = report.replication
    if rep.watched:
        verdict = "ok" if rep.ok else "FAILING"
        behind = ", up to date" if not rep.lag_s and not rep.last_error else \
            f", {_number(rep.lag_s)}s behind"
        lines.append(f"Replica    {verdict}{behind}")
        if rep.last_error:
            lines.append(f"{_INDENT}{rep.last_error}")

    failed = [c for c in report.checks if not c.ok]
    if failed:
        lines.append(f"Checks     {len(failed)} of {len(report.checks)} FAILED")
        lines.extend(f"{_INDENT}FAIL {c.name}: {c.detail}" for c in failed)
    elif report.checks:
        lines.append(f"Checks     all {len(report.checks)} passed")

    parked_count = sum(c.parked for c in report.entities.values())
    if parked or parked_count:
        lines.append(f"Parked     {max(parked_count, len(parked))} item(s)")
        for item in parked:
            lines.append(f"{_INDENT}{item.kind} {item.key} ({item.attempts} attempts): "
                         f"{item.reason}")
        lines.append(f"{_INDENT}retry one with: moment-sync parked --retry KIND KEY")
    return "\n".join(lines) + "\n"


def render_parked(items: Sequence[reports.ParkedItem]) -> str:
    """``moment-sync parked``: one row per item, the reason last and whole."""
    if not items:
        return "No parked items.\n"
    rows = [("KIND", "KEY", "ATTEMPTS", "PARKED AT", "LAST ERROR", "REASON")]
    rows.extend(
        (i.kind, i.key, str(i.attempts), i.parked_at or "", i.last_error or "", i.reason)
        for i in items
    )
    widths = [max(len(row[col]) for row in rows) for col in range(5)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True))
        + "  " + row[5]
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def status_line(status: reports.StatusReport) -> str:
    """One line of what the daemon is doing: its state, each kind in sync of desired, the
    e-conomic calls and the drift repaired. The demo prints it; systemd shows it as the
    service's StatusText in ``systemctl status``."""
    parts = [status.state]
    for kind, counts in status.entities.items():
        parts.append(f"{kind}s {counts.in_sync}/{counts.desired} in sync"
                     + (f", {counts.parked} parked" if counts.parked else ""))
    rate = status.economic.rate_limit
    parts.append(f"e-conomic calls today {status.economic.calls_today}"
                 f" (bucket {rate.used:.0f}/{rate.limit:.0f})")
    parts.append(f"drift repaired {status.reconcile.drift_repaired}")
    return " | ".join(parts)
