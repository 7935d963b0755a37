"""The fake e-conomic's agreement: its data, as plain dicts in e-conomic's own shapes.

One :class:`Agreement` holds everything both API families serve (they share one data store).
It starts as DESIGN.md's "Sandboxes" section says: customer group 1, payment terms 1, DKK,
VAT zones 1-4, project group 1 (external), journal 1, accounting years last/this/next, supplier
1 in supplier group 1, and :data:`CHART`: revenue 1010 booking with ``U25``, 1020 without a VAT
code, cost accounts booking with ``I25``, and :data:`VAT_CODES`, the usual Danish VAT codes.
Records are stored without links; the routes add ``self`` and friends when they answer. Every
write stamps ``lastUpdated`` (and, for OpenAPI records, a fresh ``objectVersion``). Keys that
start with ``_`` are the sandbox's own and never served. Imports nothing from the client it
stands in for.

Every change e-conomic fires a webhook for is told to :attr:`Agreement.listeners` as
``(event type, merge fields)`` once it is stored (:meth:`Agreement.changed`): a customer or
project created (``[OLDNUMBER]`` empty), changed (both the number), renumbered (old and new) or
deleted (``[NEWNUMBER]`` empty), and a day book booked (journal, first and last voucher). The
methods below tell it themselves; a route that writes a table directly calls :meth:`changed`.
Seeding many customers at once (:meth:`Agreement.add_customers`) tells nothing.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Record = dict[str, Any]
# (event type, merge fields): what a listener is told after a change (see the module docstring)
Listener = Callable[[str, dict[str, str]], None]
CUSTOMER_UPDATED, PROJECT_UPDATED, DAYBOOK_BOOKED = (
    "CUSTOMER_UPDATED", "PROJECT_UPDATED", "DAYBOOK_BOOKED")

# e-conomic's VAT types (legacy ``/vat-types``, as a real agreement answers them).
VAT_TYPES = {1: "Outgoing Sales Domestic", 2: "Ingoing Purchase Domestic", 3: "Reversed charge"}
# The usual Danish VAT codes: (code, name, rate %, VAT account, reverse-charge contra, type).
VAT_CODES: tuple[tuple[str, str, float, int, int | None, int], ...] = (
    ("U25", "Salgsmoms 25 %", 25.0, 7250, None, 1),
    ("UEUV", "Salg af varer til EU", 0.0, 7250, None, 1),
    ("UEUY", "Salg af ydelser til EU", 0.0, 7250, None, 1),
    ("I25", "Købsmoms 25 %", 25.0, 7260, None, 2),
    ("IEUV", "Køb af varer i EU", 25.0, 7260, 7270, 3),
    ("IEUY", "Køb af ydelser i EU", 25.0, 7260, 7270, 3))
DEBTORS, BANK, CREDITORS = 5600, 5820, 6800
# The chart of accounts: (number, name, type, debitCredit, the VAT code it books with).
CHART: tuple[tuple[int, str, str, str, str | None], ...] = (
    (1010, "Salg af varer/ydelser m/moms", "profitAndLoss", "credit", "U25"),
    (1020, "Salg af varer/ydelser u/moms", "profitAndLoss", "credit", None),
    (1030, "Salg af ydelser til EU", "profitAndLoss", "credit", "UEUY"),
    (2750, "Rejseudgifter", "profitAndLoss", "debit", "I25"),
    (2800, "Kontorartikler", "profitAndLoss", "debit", "I25"),
    (2850, "Køb af ydelser i EU", "profitAndLoss", "debit", "IEUY"),
    (DEBTORS, "Debitorer", "status", "debit", None),
    (BANK, "Bank", "status", "debit", None),
    (CREDITORS, "Leverandører", "status", "credit", None),
    (7250, "Salgsmoms", "status", "credit", None),
    (7260, "Købsmoms", "status", "debit", None),
    (7270, "Moms af køb i udlandet", "status", "credit", None))


def stamp() -> str:
    """Now as e-conomic writes ``lastUpdated``: ``YYYY-MM-DDTHH:MM:SSZ``."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Document:
    number: int
    accounting_year: str
    voucher_number: int
    content: list[bytes]
    content_type: str
    note: str | None = None

    @property
    def page_count(self) -> int:
        return len(self.content)


@dataclass
class Agreement:
    """All the data of one agreement, plus the switches a person would flip in e-conomic."""

    agreement_number: int = 9_000_001
    company_name: str = "Sandbox ApS"
    project_module: bool = True
    attachments: str = "on"  # "on", "unable" (400 UnableToAttach), "forbidden" (403)
    # What e-conomic does not document, as switches for tests: the order of the numbers a bulk
    # create answers ("sent", "reversed"), and whether its entries get a voucher each ("each")
    # or the first entry's voucher all ("shared").
    bulk_order: str = "sent"
    bulk_voucher: str = "each"
    # booking a draft entry that is not in the journal: 400 JournalEntryDoesNotExist, or 404
    book_missing_status: int = 400
    customers: dict[int, Record] = field(default_factory=dict)
    customer_groups: dict[int, Record] = field(default_factory=dict)
    payment_terms: dict[int, Record] = field(default_factory=dict)
    currencies: dict[str, Record] = field(default_factory=dict)
    vat_zones: dict[int, Record] = field(default_factory=dict)
    vat_accounts: dict[str, Record] = field(default_factory=dict)
    accounts: dict[int, Record] = field(default_factory=dict)
    accounting_years: dict[str, Record] = field(default_factory=dict)
    journals: dict[int, Record] = field(default_factory=dict)
    projects: dict[int, Record] = field(default_factory=dict)
    project_groups: dict[int, Record] = field(default_factory=dict)
    suppliers: dict[int, Record] = field(default_factory=dict)
    supplier_groups: dict[int, Record] = field(default_factory=dict)
    draft_entries: dict[int, Record] = field(default_factory=dict)
    booked_entries: dict[int, Record] = field(default_factory=dict)
    documents: dict[int, Document] = field(default_factory=dict)
    # webhooksapi: event type -> webhook (``_app``: the app that installed it, private)
    webhooks: dict[str, Record] = field(default_factory=dict)
    listeners: list[Listener] = field(default_factory=list)
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _vouchers: dict[str, collections.Counter[int]] = field(default_factory=dict)
    _tops: dict[str, int] = field(default_factory=dict)
    next_entry: int = 1
    next_booked: int = 1
    next_document: int = 1

    def version(self) -> str:
        """A fresh opaque ``objectVersion``."""
        return f"v{next(self._versions):08x}"

    # ------------------------------------------------------------------ changes -----------
    def changed(self, event_type: str, **merge: Any) -> None:
        """Tell every listener that an ``event_type`` change is stored; ``merge`` are the
        merge fields without brackets (``OLDNUMBER=3``), None for an empty one."""
        if not self.listeners:
            return
        fields = {f"[{k}]": "" if v is None else str(v) for k, v in merge.items()}
        for listen in self.listeners:
            listen(event_type, fields)

    def customer_changed(self, old: int | None, new: int | None) -> None:
        self.changed(CUSTOMER_UPDATED, OLDNUMBER=old, NEWNUMBER=new)

    def project_changed(self, old: int | None, new: int | None) -> None:
        self.changed(PROJECT_UPDATED, OLDNUMBER=old, NEWNUMBER=new)

    def daybook_booked(self, journal: int, rows: list[Record]) -> None:
        """Booked ``rows`` of ``journal``: one day-book booking, its first and last voucher."""
        vouchers = [int(r["voucherNumber"]) for r in rows if r.get("voucherNumber") is not None]
        if vouchers:
            self.changed(DAYBOOK_BOOKED, DAYBOOKNO=journal, FROMSERIALNO=min(vouchers),
                         TOSERIALNO=max(vouchers))

    # ------------------------------------------------------------------ lookups -----------
    def year_for(self, day: str) -> Record | None:
        d = day[:10]
        for y in self.accounting_years.values():
            if y["fromDate"] <= d <= y["toDate"]:
                return y
        return None

    def put_draft(self, number: int, rec: Record) -> None:
        """Store draft entry ``number`` (its voucher number counts as used from now on)."""
        self.draft_entries[number] = rec
        self._count(rec, 1)

    def drop_draft(self, number: int) -> Record:
        """Remove draft entry ``number`` and answer it (KeyError when there is none)."""
        rec = self.draft_entries.pop(number)
        self._count(rec, -1)
        return rec

    def put_booked(self, rec: Record) -> None:
        """Store a booked row under the next entry number (set on ``rec``)."""
        rec["entryNumber"] = self.next_booked
        rec["objectVersion"] = self.version()
        self.booked_entries[self.next_booked] = rec
        self.next_booked += 1
        self._count(rec, 1)

    def _count(self, rec: Record, step: int) -> None:
        # Voucher numbers in use per accounting year, counted over drafts and booked rows, so
        # that finding the next one stays cheap with tens of thousands of entries.
        year, voucher = rec.get("_year"), rec.get("voucherNumber")
        if year is None or voucher is None:
            return
        used = self._vouchers.setdefault(year, collections.Counter())
        v = int(voucher)
        used[v] += step
        if used[v] > 0:
            self._tops[year] = max(self._tops.get(year, v), v)
        else:
            del used[v]
            if self._tops.get(year) == v:  # the highest is free again: find the next highest
                self._tops[year] = max(used, default=0)

    def vouchers_in(self, year: str) -> set[int]:
        """The voucher numbers drafts or booked entries use in ``year`` (all journals)."""
        return set(self._vouchers.get(year, ()))

    def next_voucher(self, journal: int, year: str) -> int | None:
        """The number after the highest used within the journal's bounds, or None when full."""
        j = self.journals[journal]["settings"]["voucherNumbers"]
        lo, hi = j["minimumVoucherNumber"], j["maximumVoucherNumber"]
        used = self._vouchers.get(year, collections.Counter())
        top = self._tops.get(year, lo - 1)
        if not lo <= top <= hi:
            top = max((v for v in used if lo <= v <= hi), default=lo - 1)
        n = top + 1
        return n if n <= hi else None

    def voucher_exists(self, year: str, voucher: int) -> bool:
        return voucher in self._vouchers.get(year, ())

    def next_customer_number(self) -> int:
        n = 1
        while n in self.customers:
            n += 1
        return n

    # ------------------------------------------------------------------ person's edits ----
    def add_customer(self, number: int, name: str, **fields: Any) -> Record:
        """Create a customer directly (seeding, admin); references default to the seed."""
        rec: Record = {"customerNumber": number, "name": name, "currency": "DKK",
                       "customerGroup": {"customerGroupNumber": 1},
                       "paymentTerms": {"paymentTermsNumber": 1},
                       "vatZone": {"vatZoneNumber": 1}}
        rec.update(fields)
        rec["lastUpdated"] = stamp()
        self.customers[number] = rec
        self.customer_changed(None, number)
        return rec

    def add_customers(self, count: int, *, start: int = 1) -> None:
        """``count`` customers numbered from ``start`` (fast: one dict per customer)."""
        ts = stamp()
        for n in range(start, start + count):
            self.customers[n] = {
                "customerNumber": n, "name": f"Customer {n}", "currency": "DKK",
                "customerGroup": {"customerGroupNumber": 1},
                "paymentTerms": {"paymentTermsNumber": 1}, "vatZone": {"vatZoneNumber": 1},
                "email": f"c{n}@example.com", "city": "Aarhus", "zip": "8000",
                "country": "DK", "lastUpdated": ts}

    def edit_customer(self, number: int, changes: Record) -> Record:
        """Change fields as a person in e-conomic would; a ``None`` value clears the field."""
        rec = self.customers[number]
        for k, v in changes.items():
            if v is None:
                rec.pop(k, None)
            else:
                rec[k] = v
        rec["lastUpdated"] = stamp()
        self.customer_changed(number, number)
        return rec

    def renumber_customer(self, old: int, new: int) -> Record:
        if new in self.customers:
            raise KeyError(new)
        rec = self.customers.pop(old)
        rec["customerNumber"] = new
        rec["lastUpdated"] = stamp()
        self.customers[new] = rec
        self.customer_changed(old, new)
        return rec

    def delete_customer(self, number: int) -> Record | None:
        """Delete customer ``number`` as a person would; None when there is none."""
        rec = self.customers.pop(number, None)
        if rec is not None:
            self.customer_changed(number, None)
        return rec

    def add_project(self, number: int, name: str, **fields: Any) -> Record:
        rec: Record = {"number": number, "name": name, "projectGroupNumber": 1}
        rec.update(fields)
        rec["lastUpdated"] = stamp()
        rec["objectVersion"] = self.version()
        self.projects[number] = rec
        self.project_changed(None, number)
        return rec

    def edit_project(self, number: int, changes: Record) -> Record:
        rec = self.projects[number]
        for k, v in changes.items():
            if v is None:
                rec.pop(k, None)
            else:
                rec[k] = v
        rec["lastUpdated"] = stamp()
        rec["objectVersion"] = self.version()
        self.project_changed(number, number)
        return rec

    def renumber_project(self, old: int, new: int) -> Record:
        if new in self.projects:
            raise KeyError(new)
        rec = self.projects.pop(old)
        rec["number"] = new
        rec["objectVersion"] = self.version()
        self.projects[new] = rec
        self.project_changed(old, new)
        return rec

    def delete_project(self, number: int) -> Record | None:
        """Delete project ``number`` as a person would; None when there is none."""
        rec = self.projects.pop(number, None)
        if rec is not None:
            self.project_changed(number, None)
        return rec

    def summary(self) -> dict[str, Any]:
        return {"customers": len(self.customers), "projects": len(self.projects),
                "draft_entries": len(self.draft_entries),
                "booked_entries": len(self.booked_entries), "documents": len(self.documents),
                "webhooks": len(self.webhooks),
                "project_module": self.project_module, "attachments": self.attachments}


def seeded(today: dt.date | None = None) -> Agreement:
    """A fresh agreement with the project module, as DESIGN.md "Sandboxes" describes."""
    a = Agreement()
    t = today or dt.datetime.now(dt.UTC).date()
    for y in (t.year - 1, t.year, t.year + 1):
        a.accounting_years[str(y)] = {"year": str(y), "fromDate": f"{y}-01-01",
                                      "toDate": f"{y}-12-31"}
    a.customer_groups[1] = {"customerGroupNumber": 1, "name": "Domestic customers",
                            "account": {"accountNumber": DEBTORS}}
    a.payment_terms[1] = {"paymentTermsNumber": 1, "name": "Net 14 days", "daysOfCredit": 14,
                          "paymentTermsType": "net"}
    # ``_rate``: e-conomic's own rate (base currency per 100 units), used when an entry in
    # that currency carries no exchangeRate; private, never served.
    a.currencies["DKK"] = {"code": "DKK", "name": "Danish krone", "isoNumber": "208",
                           "_rate": 100.0}
    a.currencies["EUR"] = {"code": "EUR", "name": "Euro", "isoNumber": "978", "_rate": 746.0}
    for n, name, cust in ((1, "Domestic", True), (2, "EU", True), (3, "Abroad", True),
                          (4, "Domestic exempt", True)):
        a.vat_zones[n] = {"vatZoneNumber": n, "name": name, "enabledForCustomer": cust,
                          "enabledForSupplier": True}
    for code, name, rate, acc, contra, typ in VAT_CODES:
        vat: Record = {"vatCode": code, "name": name, "ratePercentage": rate,
                       "account": {"accountNumber": acc},
                       "vatType": {"vatTypeNumber": typ, "name": VAT_TYPES[typ]}}
        if contra is not None:
            vat["contraAccount"] = {"accountNumber": contra}
        a.vat_accounts[code] = vat
    for num, title, kind, side, books_with in CHART:
        rec: Record = {"accountNumber": num, "name": title, "accountType": kind,
                       "debitCredit": side}
        if books_with:
            rec["vatAccount"] = {"vatCode": books_with}
        a.accounts[num] = rec
    a.supplier_groups[1] = {"supplierGroupNumber": 1, "name": "Leverandører",
                            "account": {"accountNumber": CREDITORS}}
    a.suppliers[1] = {"supplierNumber": 1, "name": "Sandbox Leverandør ApS", "currency": "DKK",
                      "supplierGroup": {"supplierGroupNumber": 1}}
    a.journals[1] = {"journalNumber": 1, "name": "Daily journal",
                     "settings": {"voucherNumbers": {"minimumVoucherNumber": 1,
                                                     "maximumVoucherNumber": 999_999}}}
    a.project_groups[1] = {"number": 1, "name": "External projects", "type": 2,
                           "objectVersion": a.version()}
    return a
