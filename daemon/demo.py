"""``moment-sync demo`` (what ``make run`` does): both sandboxes with sample data on loopback,
the real daemon against them, and a live view of what it does.

The script then edits e-conomic the way a person would, through the sandbox's admin surface
(renames a customer, changes an e-mail, deletes a project, renumbers a customer), and the view
shows e-conomic's webhook for each and the daemon's repair about a second later (the daemon
installs its webhooks in the sandbox at start: ``webhook_url`` is its own listener; the sweeps
are a minute apart, so they are not what repairs); then someone works in Moment (webhooks),
an accountant books a supplier's bill on a project in e-conomic, which arrives in Moment as a
project expense, and a booked invoice is paid in e-conomic (a customer payment) and shows as
paid in Moment. Ctrl-C stops everything cleanly (the daemon's own shutdown). Nothing leaves
127.0.0.1; the state directory is a temporary one unless ``--state-dir`` names one.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import aiohttp
import anyio
import msgspec

from daemon import app
from daemon import settings as config
from daemon.core import reports
from daemon.economic import charting, errors
from daemon.ops import asking, clocking, rendering
from daemon.ops import logging as logsetup
from daemon.reconcile import auditing, finding
from daemon.sandbox import economic as economic_sandbox
from daemon.sandbox import moment as moment_sandbox
from daemon.sandbox import moment_faults
from daemon.store import reading

NOTABLE: Final = {
    "drift_repaired": "repaired",
    "stray_reported": "reported a stray next to",
    "parked": "parked",
    "unparked": "un-parked",
    "invoice_pdf_skipped": "could not attach the PDF of",
    "entity_gone": "Moment no longer has",
    "customer_upserted": "heard from Moment about",
    "invoice_booked": "booked",
    "payment_observed": "read e-conomic's paid status of",
}


# during the backfill these would be one line per object: shown only for the live changes
BACKFILL_NOISE: Final = frozenset({"customer_upserted", "invoice_booked"})
# e-conomic's webhook deliveries: during the backfill one per record the daemon wrote (each
# read finds nothing to do); shown from the person's edits on, as the repairs' cause
HINTS: Final = "economic_hint_received"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _say(text: str) -> None:
    sys.stdout.write(f"{time.strftime('%H:%M:%S')}  {text}\n")
    sys.stdout.flush()


@contextlib.contextmanager
def _state_dir(explicit: str | None) -> Iterator[Path]:
    if explicit:
        path = Path(explicit)
        path.mkdir(parents=True, exist_ok=True)
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix="moment-sync-demo-", dir="/tmp") as tmp:
            yield Path(tmp)


def write_config(state: Path, esb: economic_sandbox.EconomicSandbox,
                 msb: moment_sandbox.MomentSandbox, *, listen_port: int) -> config.Settings:
    secrets = state / "secrets"
    secrets.mkdir(exist_ok=True, mode=0o700)
    values = {"economic-app": esb.app_secret_token, "economic-grant": esb.agreement_grant_token,
              "moment-api-key": msb.api_key, "webhook-token": "demo-webhook-token",
              "economic-webhook-token": "demo-economic-webhook-token"}
    for name, value in values.items():
        (secrets / name).write_text(value + "\n")
        (secrets / name).chmod(0o600)
    text = f"""
[daemon]
state_dir = "{state}"
status_socket = "{state}/status.sock"
listen = "127.0.0.1:{listen_port}"
log_format = "console"

[moment]
api_url = "{msb.api_url}"
company = "{msb.company}"
api_key_file = "{secrets / 'moment-api-key'}"
webhook_token_file = "{secrets / 'webhook-token'}"
poll_interval = "30s"
full_scan_interval = "10m"

[economic]
rest_url = "{esb.rest_url}"
apis_url = "{esb.apis_url}"
app_secret_token_file = "{secrets / 'economic-app'}"
agreement_grant_token_file = "{secrets / 'economic-grant'}"
webhook_url = "http://127.0.0.1:{listen_port}"
webhook_token_file = "{secrets / 'economic-webhook-token'}"
reconcile_interval = "1m"
full_reconcile_interval = "10m"

[payments]
enabled = true
poll_interval = "5s"

[expenses]
enabled = true
poll_interval = "1m"
full_scan_interval = "10m"
"""
    path = state / "config.toml"
    path.write_text(text)
    return config.load(path, environ={})


async def _status(client: asking.StatusClient) -> reports.StatusReport | None:
    try:
        return reports.decode_status(await client.status())
    except (asking.AskError, reports.StatusDecodeError):
        return None


def _in_sync(status: reports.StatusReport | None) -> bool:
    if status is None or status.state not in ("running", "degraded"):
        return False
    counts = status.entities
    return all(c.pending == 0 for c in counts.values()) and all(
        kind in counts and counts[kind].desired > 0 for kind in ("customer", "project", "invoice"))


async def show_booked(settings: config.Settings, invoices: list[str]) -> None:
    """Say how e-conomic booked each of ``invoices`` (recorded as booked): gross on the
    customer, net on the revenue account, the VAT and its code, read back from e-conomic's
    booked entries as an accountant would see them."""
    tables = await reading.tables(settings.db_path)
    where = {k: (st.accounting_year, st.voucher_number) for k in invoices
             for st in [tables.state("invoice", k)] if st.booked and st.voucher_number}
    if not where:
        return
    async with app.economic(settings, app.Secrets(settings),
                            clock=clocking.SystemClock()) as client:
        try:
            chart = await charting.read(client)
            rows, _failed = await finding.read_vouchers(
                client, await client.accounting_years(), where.values())
        except errors.EconomicError as err:
            _say(f"  (could not read the booked entries back: {err})")
            return
    for key, (year, voucher) in where.items():
        split = auditing.split_voucher(rows.get((year, voucher), []),
                                       vat_ledger=chart.vat_ledger)
        cur = next((r.currencyCode for r in rows.get((year, voucher), []) if r.currencyCode),
                   "")
        codes = ", ".join(f"VAT code {c} at {chart.vat_rates[c].normalize():f} %"
                          if c in chart.vat_rates else "no VAT code" for c in split.codes)
        _say(f"  ≡ invoice {key} as booked in e-conomic (voucher {voucher}, {year}): net "
             f"{split.net:.2f} {cur} on account {split.account} + VAT {split.vat:.2f} {cur} "
             f"({codes or 'no VAT code'}) = gross {split.gross:.2f} {cur}")


def _work_in_moment(msb: moment_sandbox.MomentSandbox) -> None:
    """Changes in Moment reach the daemon as webhook hints, as they would in production."""
    customer = min(msb.customers.values(), key=lambda c: c.id)
    msb.change_customer(customer.id, city="Skagen")
    _say(f"  ✎ moved customer {customer.customer_number} to Skagen in Moment (webhook)")
    draft = next((i for i in sorted(msb.invoices.values(), key=lambda i: i.id)
                  if i.status == "DRAFT"), None)
    if draft is not None:
        final = msb.finalize_invoice(draft.id)
        _say(f"  ✎ finalized invoice {final.invoice_number} in Moment (webhook)")


async def view(settings: config.Settings, admin_url: str, msb: moment_sandbox.MomentSandbox,
               stop: anyio.Event) -> None:
    """Print the daemon's progress and notable events; play the person editing e-conomic."""
    client = asking.StatusClient(Path(settings.daemon.status_socket), timeout=5)
    seen = 0
    last_line = ""
    edited = False
    edited_at = 0.0
    edited_wall = 0.0
    repaired: set[str] = set()
    announced = False
    first_booked: list[str] = []  # the first three, shown once everything is in e-conomic
    paid: tuple[int, int] | None = None
    shown = False
    while not stop.is_set():
        status = await _status(client)
        if status is None:  # not started yet (or stopping): nothing to read
            with anyio.move_on_after(0.5):
                await stop.wait()
            continue
        line = rendering.status_line(status)
        if line != last_line:
            _say(line)
            last_line = line
        booked: list[str] = []
        async for record in reading.events(settings.db_path, since=seen):
            seen = record.seq
            verb = NOTABLE.get(record.type)
            if record.type == "invoice_booked":
                booked.append(record.key)
            if record.type == HINTS and edited and not announced:
                _say(f"  ← e-conomic's webhook: {_hint_text(record.payload, repaired)}")
            if record.type == "drift_repaired":
                repaired.add(f"{record.kind}:{record.key}")
            if record.kind == "expense" and record.type in ("booked_entry_recorded", "applied"):
                verb = ("read the booked cost of" if record.type == "booked_entry_recorded"
                        else "created in Moment the project expense of")
            if verb and (announced or record.type not in BACKFILL_NOISE):
                detail = msgspec.json.decode(record.payload)
                extra = detail.get("reason") or detail.get("detail") or detail.get("note") or \
                    ", ".join(detail.get("fields", []))
                after = (f" ({_seconds_after(record.recorded_at, edited_wall):.1f} s after the "
                         "edit)" if edited and not announced and record.type == "drift_repaired"
                         else "")
                _say(f"  → {verb} {record.kind} {record.key}" + (f": {extra}" if extra else "")
                     + after)
        first_booked = (first_booked + booked)[:3] if not announced else first_booked
        if announced and booked:
            await show_booked(settings, booked)
        if not edited and _in_sync(status):
            await show_booked(settings, first_booked)
            _say("everything is in e-conomic. Now a person edits e-conomic by hand:")
            edited_wall = time.time()
            await _edit_like_a_person(admin_url, settings)
            edited, edited_at = True, time.monotonic()
        elif edited and not announced and _in_sync(status) and time.monotonic() - edited_at > 5:
            _say("repaired: e-conomic matches Moment again. Now someone works in Moment:")
            _work_in_moment(msb)
            await _book_a_cost(admin_url, settings)
            announced = True
            _say("and a bookkeeper records a customer's payment in e-conomic:")
            paid = await _pay_like_a_person(admin_url, settings)
        elif paid is not None and not shown:
            shown = _show_paid(msb, *paid)
            if shown:
                _say("The daemon keeps running; try `moment-sync status -c " + settings.source
                     + "` in another shell. Ctrl-C stops it.")
        with anyio.move_on_after(1.0):
            await stop.wait()


def _hint_text(payload: bytes, repaired: set[str]) -> str:
    """One delivery in words; one about a record the daemon has just written is the echo of
    its own write (``repaired``: the ``kind:key`` written since the edits)."""
    hint = msgspec.json.decode(payload)
    kind, old, new = hint.get("kind", ""), hint.get("old", ""), hint.get("new", "")
    if kind == "daybook":
        return f"day book {hint.get('daybook', '')} booked"
    if f"{kind}:{new or old}" in repaired:
        return f"{kind} {new or old} written (the daemon's own repair: read, nothing to do)"
    if old and new and old != new:
        return f"{kind} {old} is now {kind} {new}"
    if old and not new:
        return f"{kind} {old} deleted"
    if new and not old:
        return f"{kind} {new} created"
    return f"{kind} {new} changed"


def _seconds_after(recorded_at: str, since: float) -> float:
    """How long after ``since`` (POSIX seconds) the event was recorded."""
    try:
        return max(0.0, dt.datetime.fromisoformat(recorded_at).timestamp() - since)
    except ValueError:
        return 0.0


async def _pay_like_a_person(admin_url: str, settings: config.Settings
                             ) -> tuple[int, int] | None:
    """Pay the first booked invoice in full in e-conomic (a customer payment, as a bookkeeper
    books one); returns its number and Moment id, or None when none is booked."""
    tables = await reading.tables(settings.db_path)
    for key, row in sorted(tables.invoices().items(), key=lambda kv: int(kv[0])):
        fact = row.fact
        if row.gone or fact.is_credit_note or not tables.state("invoice", key).booked:
            continue
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{admin_url}/customer-payments", json={
                    "customerNumber": int(fact.customer_number), "customerInvoiceNumber": int(key),
                    "amount": fact.total_including_vat,
                    "date": time.strftime("%Y-%m-%d", time.gmtime())}) as answer:
                if answer.status != 201:
                    _say(f"  ✗ e-conomic refused the payment of invoice {key}: "
                         f"{await answer.text()}")
                    return None
        _say(f"  ✎ paid invoice {key} in full in e-conomic ({fact.total_including_vat} "
             f"{fact.currency}, a customer payment)")
        return int(key), fact.moment_id
    return None


def _show_paid(msb: moment_sandbox.MomentSandbox, number: int, moment_id: int) -> bool:
    """Say so once Moment shows the invoice paid."""
    status = msb.payment_status(moment_id)
    if not status["fullyPaid"]:
        return False
    _say(f"  → Moment shows invoice {number} paid: {status['paidAmount']} on "
         f"{status['paidDate']} ({status['externalId']})")
    return True


async def _book_a_cost(admin_url: str, settings: config.Settings) -> None:
    """An accountant books a supplier's bill on a project in e-conomic: the daemon reads it
    from the booked entries and creates the project expense in Moment."""
    tables = await reading.tables(settings.db_path)
    projects = sorted(tables.projects(), key=int)
    if not projects:
        return
    n = projects[-1]
    async with aiohttp.ClientSession() as http:
        answer = await http.post(f"{admin_url}/supplier-invoices", json={
            "amount": "1450.00", "date": time.strftime("%Y-%m-%d", time.gmtime()),
            "accountNumber": 2750, "projectNumber": int(n), "text": "Rejse Aarhus-København",
            "supplierInvoiceNumber": "F-2231"})
        if answer.status == 201:
            _say(f"  ✎ booked a 1450.00 DKK travel bill on project {n} in e-conomic")
        else:
            _say(f"  ✗ booking the bill on project {n} failed: {await answer.text()}")


async def _edit_like_a_person(admin_url: str, settings: config.Settings) -> None:
    tables = await reading.tables(settings.db_path)
    customers = sorted(tables.customers(), key=int)
    projects = sorted(tables.projects(), key=int)
    async with aiohttp.ClientSession() as http:
        if customers:
            n = customers[0]
            await http.patch(f"{admin_url}/customers/{n}", json={"name": "Renamed by hand"})
            _say(f"  ✎ renamed customer {n} in e-conomic")
        if len(customers) > 1:
            n = customers[1]
            await http.patch(f"{admin_url}/customers/{n}", json={"email": "typo@example.org"})
            _say(f"  ✎ changed the e-mail of customer {n} in e-conomic")
        if projects:
            n = projects[0]
            await http.delete(f"{admin_url}/projects/{n}")
            _say(f"  ✎ deleted project {n} in e-conomic")
        if len(customers) > 2:
            n = customers[2]
            await http.post(f"{admin_url}/customers/{n}/renumber", json={"to": 900000 + int(n)})
            _say(f"  ✎ renumbered customer {n} to {900000 + int(n)} in e-conomic")


async def run(args: argparse.Namespace) -> int:
    logsetup.configure("console", level=30)  # warnings and errors only: the view is the output
    with _state_dir(args.state_dir) as state:
        async with economic_sandbox.EconomicSandbox.running() as esb, \
                moment_sandbox.MomentSandbox.running(
                    company="demo", rate_limit=moment_faults.DOCUMENTED_LIMIT) as msb:
            summary = msb.populate(customers=args.customers, projects=args.projects,
                                   invoices=args.invoices, seed=1)
            listen_port = _free_port()
            settings = write_config(state, esb, msb, listen_port=listen_port)
            msb.set_webhook(f"http://127.0.0.1:{listen_port}/webhooks/moment/demo-webhook-token")
            _say(f"Moment sandbox: {summary.customers} customers, {summary.projects} projects, "
                 f"{summary.invoices} invoices ({summary.drafts} drafts, "
                 f"{summary.credit_notes} credit notes) at {msb.api_url}")
            _say(f"e-conomic sandbox at {esb.rest_url}; state in {state}")
            stop = anyio.Event()
            code = 0
            async with anyio.create_task_group() as tg:
                tg.start_soon(view, settings, esb.admin_url, msb, stop)
                code = await app.run(settings)
                stop.set()
            _say("stopped cleanly")
            return code
