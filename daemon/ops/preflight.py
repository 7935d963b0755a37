"""Preflight: ``moment-sync check``, and the same checks at start and on each full sweep.

:func:`run_checks` asks; :func:`checking` is the daemon's loop that runs them and
:func:`record_checks` records a changed verdict in the log (a ``CheckReported``, shown in
``/status``) and alerts on a check that newly fails.

Each check asks e-conomic one question and answers PASS or FAIL with advice an operator can act
on (DESIGN.md, command table). Checks never write to e-conomic. A check that cannot be asked
because e-conomic refuses the tokens fails as ``tokens``; the others are then skipped as failed
("not checked"), since every answer would be the same refusal. A transport problem fails the
check it happened in with the reason, and the remaining checks still run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Collection
from typing import Final, Protocol

import msgspec
import structlog

from daemon import settings as config
from daemon.core import books, callers, clocks
from daemon.core import events as ev
from daemon.core import projections as pj
from daemon.economic import client as economic_client
from daemon.economic import errors, installing
from daemon.ops import alerts
from daemon.store import eventlog

_log = structlog.get_logger(__name__)


class Check(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    ok: bool
    detail: str = ""
    advice: str = ""


ORDER: Final = ("tokens", "project_module", "customer_group", "payment_terms", "currency",
                "project_group", "journal", "default_account", "vat_zones",
                "invoice_vat_code", "accounting_year")


#: projectsapi's project group type that takes projects without a customer (1 Internal;
#: 2 and 3 are external groups, whose projects e-conomic requires a customer on).
INTERNAL: Final = 1


def _fail(name: str, detail: str) -> Check:
    return Check(name=name, ok=False, detail=detail,
                 advice=alerts.CHECK_ADVICE.get(name, ""))


def _pass(name: str, detail: str) -> Check:
    return Check(name=name, ok=True, detail=detail)


def replication_check(ok: bool, detail: str) -> Check:
    """The ``replication`` check (its verdict comes from :mod:`daemon.ops.replicating`)."""
    return _pass("replication", detail) if ok else _fail("replication", detail)


async def run_checks(client: economic_client.EconomicClient, settings: config.Settings, *,
                     today: dt.date, pending: Collection[dt.date] = (),
                     webhooks: installing.Plan | None = None) -> list[Check]:
    """Every check in :data:`ORDER`; one result each (open accounting years must cover
    ``today``, the UTC date of the caller's clock, and every date in ``pending``: the dates of
    invoices not yet booked, see :func:`pending_dates`); with ``webhooks`` (``webhook_url``
    set), ``webhooks`` too: every wanted webhook installed and enabled (read only)."""
    e = settings.economic
    day = today
    results: list[Check] = []

    try:
        me = await client.get_self()
        company = me.company.name if me.company and me.company.name else "?"
        results.append(_pass("tokens", f"agreement {me.agreementNumber} ({company})"))
    except errors.EconomicError as exc:
        results.append(_fail("tokens", f"e-conomic refused the tokens: {exc}"
                             if isinstance(exc, errors.Unauthorized | errors.Forbidden)
                             else f"could not reach e-conomic: {exc}"))
        results += [_fail(name, "not checked: the tokens check failed") for name in ORDER[1:]]
        if webhooks is not None:
            results.append(_fail("webhooks", "not checked: the tokens check failed"))
        return results

    async def ask(name: str, question: Callable[[], Awaitable[Check]]) -> None:
        try:
            results.append(await question())
        except errors.EconomicError as exc:
            results.append(_fail(name, f"e-conomic could not answer: {exc}"))

    async def project_module() -> Check:
        if await client.has_project_module():
            return _pass("project_module", "the Projects module is active")
        return _fail("project_module", "the agreement has no Projects module: projects, and "
                     "invoices on a project, are parked until it is activated")

    async def customer_group() -> Check:
        groups = {g.customerGroupNumber for g in await client.customer_groups()}
        if e.customer_group in groups:
            return _pass("customer_group", f"customer group {e.customer_group} exists")
        return _fail("customer_group", f"customer group {e.customer_group} does not exist")

    async def payment_terms() -> Check:
        terms = {t.paymentTermsNumber for t in await client.payment_terms()}
        if e.payment_terms in terms:
            return _pass("payment_terms", f"payment terms {e.payment_terms} exist")
        return _fail("payment_terms", f"payment terms {e.payment_terms} do not exist")

    async def currency() -> Check:
        codes = {c.code for c in await client.currencies()}
        if e.currency in codes:
            return _pass("currency", f"currency {e.currency} is offered")
        return _fail("currency", f"currency {e.currency} is not offered by e-conomic")

    async def project_group() -> Check:
        try:
            groups = {g.number: g for g in await client.project_groups()}
        except errors.MissingModule:
            return _fail("project_group", "not checked: the Projects module is not active")
        if e.project_group not in groups:
            return _fail("project_group", f"project group {e.project_group} does not exist")
        internal = e.internal_project_group
        if not internal:
            return _pass("project_group", f"project group {e.project_group} exists; "
                         "internal_project_group is 0: projects without a customer are parked")
        group = groups.get(internal)
        if group is None:
            return _fail("project_group", f"internal_project_group {internal} does not exist, "
                         "so projects without a customer cannot be created")
        if group.type != INTERNAL:
            return _fail("project_group", f"internal_project_group {internal} "
                         f"({group.name or '?'}) is not an internal group, and e-conomic "
                         "requires a customer on the projects of any other group")
        return _pass("project_group", f"project group {e.project_group} exists; projects "
                     f"without a customer go into internal group {internal}")

    async def journal() -> Check:
        journals = {j.journalNumber: j for j in await client.journals()}
        if e.journal_number in journals:
            name = journals[e.journal_number].name or ""
            return _pass("journal", f"journal {e.journal_number} exists ({name})")
        return _fail("journal", f"journal {e.journal_number} does not exist")

    async def default_account() -> Check:
        accounts = {a.accountNumber: a for a in await client.accounts()}
        account = accounts.get(e.default_account)
        if account is None:
            return _fail("default_account", f"account {e.default_account} does not exist")
        if account.barred or account.blockDirectEntries:
            return _fail("default_account", f"account {e.default_account} is barred or blocks "
                         "direct entries")
        code = account.vatAccount.vatCode if account.vatAccount else None
        if not code:  # an account without VAT is legitimate: its invoices carry no VAT
            return _pass("default_account", f"account {e.default_account} exists "
                         f"({account.name}) and books without a VAT code")
        vat = {v.vatCode: v for v in await client.vat_accounts()}.get(code)
        if vat is None or vat.ratePercentage is None:
            return _fail("default_account", f"account {e.default_account} books with VAT code "
                         f"{code}, whose rate e-conomic does not give (not under VAT accounts)")
        return _pass("default_account", f"account {e.default_account} exists ({account.name}) "
                     f"and books with VAT code {code} at {vat.ratePercentage:g} %")

    async def vat_zones() -> Check:
        zones = {z.vatZoneNumber for z in await client.vat_zones()}
        missing = sorted(f"{code} = {zone}" for code, zone in e.vat_zones.items()
                         if zone not in zones)
        if missing:
            return _fail("vat_zones", f"no such VAT zone in e-conomic: {', '.join(missing)}")
        return _pass("vat_zones", f"{len(e.vat_zones)} VAT zones exist")

    async def invoice_vat_code() -> Check:
        if not e.invoice_vat_code:
            return _pass("invoice_vat_code", "not set: each invoice books with the VAT code of "
                         "its account")
        if e.invoice_vat_code.lower() == books.NO_VAT:
            return _pass("invoice_vat_code", "\"none\": invoice entries carry no VAT code, and "
                         "an invoice with VAT is parked")
        codes = {v.vatCode: v for v in await client.vat_accounts()}
        found = codes.get(e.invoice_vat_code)
        if found is None or found.barred:
            return _fail("invoice_vat_code", f"VAT code {e.invoice_vat_code!r} "
                         f"{'is barred' if found else 'does not exist'}")
        return _pass("invoice_vat_code", f"VAT code {e.invoice_vat_code} exists")

    async def accounting_year() -> Check:
        years = await client.accounting_years()
        for when in sorted({day, *pending}):
            iso = when.isoformat()
            year = next((y for y in years if y.fromDate <= iso <= y.toDate), None)
            whose = "today" if when == day else "a pending invoice's date"
            if year is None:
                return _fail("accounting_year", f"no accounting year covers {iso} ({whose})")
            if year.closed:
                return _fail("accounting_year", f"accounting year {year.year} is closed, and "
                             f"{iso} ({whose}) falls in it")
        covered = f" and the {len(pending)} dates of pending invoices" if pending else ""
        return _pass("accounting_year", f"open accounting years cover {day.isoformat()}"
                     f"{covered}")

    async def expense_accounts() -> Check:
        accounts = {a.accountNumber: a for a in await client.accounts()}
        wanted = settings.expenses.accounts
        if not wanted:
            costs = sum(1 for a in accounts.values() if a.accountType == "profitAndLoss")
            return _pass("expense_accounts", f"every profit-and-loss account ({costs}) is read "
                         "for costs on projects")
        bad = [f"{n} does not exist" if n not in accounts else
               f"{n} ({accounts[n].name}) is not a profit-and-loss account"
               for n in wanted
               if n not in accounts or accounts[n].accountType != "profitAndLoss"]
        if bad:
            return _fail("expense_accounts", "[expenses] accounts: " + "; ".join(bad))
        return _pass("expense_accounts", f"costs are read from accounts "
                     f"{', '.join(str(n) for n in wanted)}")

    for name, question in (("project_module", project_module),
                           ("customer_group", customer_group), ("payment_terms", payment_terms),
                           ("currency", currency), ("project_group", project_group),
                           ("journal", journal), ("default_account", default_account),
                           ("vat_zones", vat_zones), ("invoice_vat_code", invoice_vat_code),
                           ("accounting_year", accounting_year)):
        await ask(name, question)
    if settings.expenses.enabled:
        await ask("expense_accounts", expense_accounts)
    if webhooks is not None:
        results.append(webhooks_check(await installing.survey(client, webhooks)))
    return results


def webhooks_check(report: installing.Report) -> Check:
    """The ``webhooks`` check of an installer's report (the daemon's after each install and
    ``check``'s survey say the same words for the same state)."""
    return Check(name="webhooks", ok=report.ok, detail=report.summary(),
                 advice="" if report.ok else alerts.CHECK_ADVICE["webhooks"])


def pending_dates(tables: pj.Tables) -> set[dt.date]:
    """The invoice dates of the invoices in the log not yet booked in e-conomic."""
    dates: set[dt.date] = set()
    for key, row in tables.invoices().items():
        if tables.state("invoice", key).booked:
            continue
        try:
            dates.add(dt.date.fromisoformat(row.fact.invoice_date[:10]))
        except ValueError:
            continue  # an invoice without a usable date is parked by its mapping
    return dates


def render(checks: list[Check]) -> str:
    """One line per check, PASS or FAIL, with advice under each failure."""
    lines = []
    for check in checks:
        lines.append(f"{'PASS' if check.ok else 'FAIL'}  {check.name:<17} {check.detail}")
        if not check.ok and check.advice:
            lines.append(f"      {'':<17} → {check.advice}")
    failed = sum(not c.ok for c in checks)
    lines.append(f"{failed} of {len(checks)} checks failed" if failed
                 else f"all {len(checks)} checks passed")
    return "\n".join(lines)


class Alerting(Protocol):
    """Where a newly failed check is reported (:class:`daemon.ops.alerting.Alerter` is one)."""

    def alert(self, alert: alerts.Alert) -> None: ...


async def record_checks(log: eventlog.EventLog, results: list[Check],
                        alerter: Alerting, *, clock: clocks.Clock) -> None:
    """Append a ``CheckReported`` for each check whose verdict or detail changed; alert on a
    check that newly fails (stamped with the clock's wall time)."""
    rows = log.tables.daemon()
    for check in results:
        row = rows.get(f"check:{check.name}")
        verdict = "ok" if check.ok else "failed"
        if row is not None and row.value == verdict and row.extra.get("detail") == check.detail:
            continue
        await log.append(ev.CheckReported(name=check.name, ok=check.ok, detail=check.detail),
                         idempotency_key=f"check:{check.name}:{log.last_seq}")
        if not check.ok:
            at = clock.now()
            # a tokens check that failed on a 5xx or a timeout is not a refusal of the tokens
            refused = check.name == "tokens" and check.detail.startswith("e-conomic refused")
            alerter.alert(alerts.tokens_rejected(detail=check.detail, at=at) if refused else
                          alerts.check_failed(name=check.name, detail=check.detail, at=at))


async def checking(log: eventlog.EventLog, economic: economic_client.EconomicClient,
                   settings: Callable[[], config.Settings], alerter: Alerting,
                   *, clock: clocks.Clock, beat: Callable[[], None], every: Callable[[], float],
                   again: Callable[[], float] | None = None,
                   idle_beat_s: float = 1.0) -> None:
    """Preflight at start and then once per full reconcile interval, or after ``again``
    seconds (the incremental interval) while a check fails, so that a transient failure or a
    problem fixed in e-conomic does not stay reported until the next full interval; beats at
    least every ``idle_beat_s`` seconds of the clock while it waits. Its e-conomic calls are
    the ``preflight`` caller's (:data:`daemon.core.callers.CALLER`)."""
    callers.CALLER.set("preflight")
    while True:
        failing = True
        try:
            results = await run_checks(economic, settings(),
                                       today=clocks.utc(clock.now()).date(),
                                       pending=pending_dates(log.tables))
            await record_checks(log, results, alerter, clock=clock)
            failing = not all(check.ok for check in results)
        except errors.EconomicError as exc:
            _log.warning("preflight could not run", error=str(exc))
        beat()
        wait = min(every(), again()) if failing and again is not None else every()
        waited = 0.0
        while waited < wait:
            step = min(idle_beat_s, wait - waited)
            await clock.sleep(step)
            waited += step
            beat()
