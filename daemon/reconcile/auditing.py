"""Comparing booked invoices with e-conomic's booked entries, on every full reconcile.

Each invoice the log records as booked (and whose Moment invoice did not change since: that is
reported by the transfer) has its voucher read back from e-conomic's booked entries: every row
on it, through :meth:`daemon.reconcile.finding.Finder.read_vouchers` (one read per accounting
year and 200 voucher numbers, each to its last page, so N booked invoices cost about
ceil(N/200) reads, never one per invoice). On the voucher:

- the customer row (the one carrying the invoice's number) is compared with what the daemon
  sends for the invoice: ``amount``, ``customer`` and ``date`` (the date part); no such row is
  ``missing``;
- the VAT rows (those on an account VAT is posted on, from the cached chart) hold the VAT,
  compared with Moment's VAT on the invoice (``vat``) within the tolerance used before
  sending, max(1.00, 1 %);
- the revenue row (any other row) carries the VAT code it was booked with, compared with the
  code the entry was sent with (``vat_code``; for an entry whose code the log did not record,
  the code the books give it now).

When the chart cannot be read, VAT is not compared this time (the rest is).

A difference is recorded once as ``BookedMismatch`` (an unchanged difference is not recorded
again), shown in ``/status`` under ``reconcile.booked_mismatches`` and alerted. An invoice
reported before whose entry now agrees gets ``BookedMatched``: the report is withdrawn. A
voucher whose read fails is compared on the next full reconcile.

Never writes to e-conomic, and never edits a booked entry: corrections are new entries, made
by a person.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from daemon.core import books
from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.core import rows as rw
from daemon.economic import errors, payloads
from daemon.reconcile import entries
from daemon.reconcile.controls import Controls
from daemon.reconcile.finding import Finder
from daemon.reconcile.invoice_items import KIND

_NEVER_EDITED = ("The daemon never edits booked entries: if e-conomic's entry is wrong, "
                 "correct it there with a new entry (or a credit note)")

Audited = tuple[str, mp.InvoiceEntry, str]  # key, the entry as mapped, Moment's VAT


async def audit_booked(ctx: Controls) -> int:
    """Compare every booked, unchanged invoice with its booked entry; returns how many
    reports were recorded or withdrawn now."""
    tables, options = ctx.log.tables, ctx.options
    items: list[Audited] = []
    for key, row in entries.SPEC.rows(tables).items():
        st = tables.state(KIND, key)
        if row.gone or not st.booked or st.parked or st.voucher_number is None:
            continue  # decided by the state alone: only booked invoices are mapped
        a = entries.SPEC.make_item(key, row, tables, options)
        if a.desired is None:
            continue
        if entries.SPEC.next_step(a.desired, st, options, desired_hash=a.content).name \
                != "nothing":
            continue  # still in progress, or changed in Moment (reported by the transfer)
        items.append((a.key, a.desired, a.fact.total_vat))
    if not items:
        return 0
    vouchers, failed = await Finder(ctx).read_vouchers(
        (tables.state(KIND, k).accounting_year, tables.state(KIND, k).voucher_number or 0)
        for k, _e, _v in items)
    try:
        chart: books.Books | None = await ctx.chart.books()
    except errors.EconomicError:
        chart = None
    codes = _codes_now(ctx, items, chart)
    out: list[tuple[ev.Event, str, None]] = []
    for key, entry, moment_vat in items:
        st = tables.state(KIND, key)
        where = (st.accounting_year, st.voucher_number or 0)
        if where in failed:
            continue
        code = st.vat_code if st.vat_code is not None else codes.get(key)
        fields, note = compare(entry, st, vouchers.get(where, ()),
                               vat_ledger=chart.vat_ledger if chart is not None else None,
                               moment_vat=moment_vat, vat_code=code)
        digest = hashlib.sha256(f"{st.mismatch}|{note}".encode()).hexdigest()[:16]
        if fields and note != st.mismatch:
            out.append((ev.BookedMismatch(kind=KIND, key=key, detail=note, fields=fields),
                        f"booked-mismatch:{key}:{digest}", None))
        elif not fields and st.mismatch:  # agrees again (or Moment's invoice went back)
            out.append((ev.BookedMatched(kind=KIND, key=key, cleared=st.mismatch),
                        f"booked-matched:{key}:{digest}", None))
    if out:
        await ctx.log.append_many(out)
        for e, _k, _n in out:
            if isinstance(e, ev.BookedMismatch):
                ctx.observer.booked_mismatch(e.key, list(e.fields), e.detail)
    return len(out)


def _codes_now(ctx: Controls, items: Sequence[Audited], chart: books.Books | None
               ) -> dict[str, str]:
    """The VAT code the books give now to each invoice whose sent code the log does not know
    (none without the books: those codes are not compared this time)."""
    if chart is None:
        return {}
    out: dict[str, str] = {}
    for key, entry, _v in items:
        if ctx.log.tables.state(KIND, key).vat_code is not None:
            continue
        vat = books.vat_code(invoice=entry.invoice_number, account=entry.contra_account,
                             setting=ctx.options.invoice_vat_code, books=chart)
        if not vat.problem:
            out[key] = vat.code
    return out


def compare(sent: mp.InvoiceEntry, st: rw.EntityState,
            rows: Sequence[payloads.BookedEntry], *, vat_ledger: frozenset[int] | None = None,
            moment_vat: str = "", vat_code: str | None = None) -> tuple[tuple[str, ...], str]:
    """The fields of booked invoice ``sent`` that e-conomic's rows on its voucher hold
    otherwise, and the sentence saying so (``()``, ``""`` when they agree). ``vat_ledger``
    are the accounts VAT is posted on (None: VAT not compared), ``vat_code`` the code it was
    sent with (None: not compared), ``moment_vat`` Moment's VAT ("": not compared)."""
    n = sent.invoice_number
    where = f"voucher {st.voucher_number} ({st.accounting_year})"
    customers = [r for r in rows if r.customerNumber is not None]
    mine = [r for r in customers if r.customerInvoiceNumber == n]
    if not mine:
        return ("missing",), (
            f"Invoice {n} was booked in e-conomic on {where}, but e-conomic's booked entries "
            f"hold no customer entry for invoice {n} on that voucher. {_NEVER_EDITED}; if "
            "the invoice is missing from the books, book it there anew.")
    row = next((r for r in mine if r.customerNumber == sent.customer_number), mine[0])
    cur = sent.currency
    diffs: list[tuple[str, str]] = []
    amount = mp.cents(row.amount)
    if amount != sent.amount:
        diffs.append(("amount", f"amount {amount:.2f} {cur} in e-conomic, "
                                f"{sent.amount:.2f} {cur} in Moment"))
    if row.customerNumber != sent.customer_number:
        diffs.append(("customer", f"customer {row.customerNumber} in e-conomic, "
                                  f"customer {sent.customer_number} in Moment"))
    if (row.date or "")[:10] != sent.date:
        diffs.append(("date", f"date {(row.date or '')[:10]} in e-conomic, {sent.date} in "
                              "Moment"))
    if vat_ledger is not None:
        diffs += _vat_diffs(sent, rows, vat_ledger=vat_ledger, gross=amount,
                            moment_vat=moment_vat, vat_code=vat_code)
    if not diffs:
        return (), ""
    return tuple(name for name, _s in diffs), (
        f"Invoice {n}'s booked entry in e-conomic ({where}) differs from the invoice in "
        f"Moment: {'; '.join(said for _n, said in diffs)}. {_NEVER_EDITED}.")


@dataclass(frozen=True)
class VoucherVat:
    """A booked invoice's voucher split as e-conomic booked it: the ``gross`` on the customer
    row, the ``net`` on the revenue rows (their ``accounts`` and VAT ``codes``, "" for none)
    and the ``vat`` on the VAT rows, all positive for an invoice and negative for a credit
    note."""

    gross: Decimal
    net: Decimal
    vat: Decimal
    accounts: tuple[int, ...]
    codes: tuple[str, ...]

    @property
    def account(self) -> str:
        return "/".join(str(a) for a in self.accounts) or "none"

    @property
    def code(self) -> str:
        return "/".join(self.codes)


def split_voucher(rows: Sequence[payloads.BookedEntry], *, vat_ledger: frozenset[int]
                  ) -> VoucherVat:
    """The voucher's rows as :class:`VoucherVat`: rows with a customer are the customer
    side, rows on ``vat_ledger`` (the VAT codes' accounts) the VAT, the others the revenue."""
    others = [r for r in rows if r.customerNumber is None]
    revenue = [r for r in others if r.accountNumber not in vat_ledger]

    def total(which: Iterable[payloads.BookedEntry]) -> Decimal:
        return sum((mp.cents(r.amount) for r in which), Decimal(0))

    return VoucherVat(
        gross=total(r for r in rows if r.customerNumber is not None), net=-total(revenue),
        vat=-total(r for r in others if r.accountNumber in vat_ledger),
        accounts=tuple(sorted({r.accountNumber for r in revenue})),
        codes=tuple(sorted({r.vatAccountNumber or "" for r in revenue})))


def _vat_diffs(sent: mp.InvoiceEntry, rows: Sequence[payloads.BookedEntry], *,
               vat_ledger: frozenset[int], gross: Decimal, moment_vat: str,
               vat_code: str | None) -> list[tuple[str, str]]:
    split = split_voucher(rows, vat_ledger=vat_ledger)
    cur = sent.currency
    diffs: list[tuple[str, str]] = []
    given = _decimal(moment_vat)
    if given is not None and not books.vat_agrees(split.vat, given):
        diffs.append(("vat", f"VAT {split.vat:.2f} {cur} in e-conomic (net {split.net:.2f} "
                             f"on account {split.account}, gross {gross:.2f}), {given:.2f} "
                             f"{cur} in Moment"))
    if vat_code is not None and split.code != vat_code:
        diffs.append(("vat_code", f"VAT code {split.code or 'none'} on account "
                                  f"{split.account} in e-conomic, {vat_code or 'none'} as the "
                                  "daemon booked it"))
    return diffs


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text) if text.strip() else None
    except InvalidOperation:
        return None
    return value if value is not None and value.is_finite() else None
