"""The fake e-conomic's agreement: its data, as plain dicts in e-conomic's own shapes.

One :class:`Agreement` holds everything both API families serve (they share one data store).
It starts as DESIGN.md's "Sandboxes" section says: customer group 1, payment terms 1, DKK,
VAT zones 1-4, project group 1 (external), journal 1, accounting years last/this/next, a chart
of accounts with 1010 and the usual VAT codes. Records are stored without links; the routes add
``self`` and friends when they answer. Every write stamps ``lastUpdated`` (and, for OpenAPI
records, a fresh ``objectVersion``). Imports nothing from the client it stands in for.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from typing import Any

Record = dict[str, Any]


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
    draft_entries: dict[int, Record] = field(default_factory=dict)
    booked_entries: dict[int, Record] = field(default_factory=dict)
    documents: dict[int, Document] = field(default_factory=dict)
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    next_entry: int = 1
    next_booked: int = 1
    next_document: int = 1

    def version(self) -> str:
        """A fresh opaque ``objectVersion``."""
        return f"v{next(self._versions):08x}"

    # ------------------------------------------------------------------ lookups -----------
    def year_for(self, day: str) -> Record | None:
        d = day[:10]
        for y in self.accounting_years.values():
            if y["fromDate"] <= d <= y["toDate"]:
                return y
        return None

    def vouchers_in(self, journal: int | None, year: str) -> set[int]:
        used: set[int] = set()
        for e in itertools.chain(self.draft_entries.values(), self.booked_entries.values()):
            if (journal is None or e.get("journalNumber") == journal) and \
                    e.get("_year") == year and e.get("voucherNumber") is not None:
                used.add(int(e["voucherNumber"]))
        return used

    def next_voucher(self, journal: int, year: str) -> int | None:
        """The lowest free voucher number within the journal's bounds, or None when full."""
        j = self.journals[journal]["settings"]["voucherNumbers"]
        used = self.vouchers_in(None, year)
        top = max((v for v in used if j["minimumVoucherNumber"] <= v <= j["maximumVoucherNumber"]),
                  default=j["minimumVoucherNumber"] - 1)
        n = top + 1
        return n if n <= j["maximumVoucherNumber"] else None

    def voucher_exists(self, year: str, voucher: int) -> bool:
        return voucher in self.vouchers_in(None, year)

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
        return rec

    def renumber_customer(self, old: int, new: int) -> Record:
        if new in self.customers:
            raise KeyError(new)
        rec = self.customers.pop(old)
        rec["customerNumber"] = new
        rec["lastUpdated"] = stamp()
        self.customers[new] = rec
        return rec

    def add_project(self, number: int, name: str, **fields: Any) -> Record:
        rec: Record = {"number": number, "name": name, "projectGroupNumber": 1}
        rec.update(fields)
        rec["lastUpdated"] = stamp()
        rec["objectVersion"] = self.version()
        self.projects[number] = rec
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
        return rec

    def renumber_project(self, old: int, new: int) -> Record:
        if new in self.projects:
            raise KeyError(new)
        rec = self.projects.pop(old)
        rec["number"] = new
        rec["objectVersion"] = self.version()
        self.projects[new] = rec
        return rec

    def summary(self) -> dict[str, Any]:
        return {"customers": len(self.customers), "projects": len(self.projects),
                "draft_entries": len(self.draft_entries),
                "booked_entries": len(self.booked_entries), "documents": len(self.documents),
                "project_module": self.project_module, "attachments": self.attachments}


def seeded(today: dt.date | None = None) -> Agreement:
    """A fresh agreement with the project module, as DESIGN.md "Sandboxes" describes."""
    a = Agreement()
    t = today or dt.datetime.now(dt.UTC).date()
    for y in (t.year - 1, t.year, t.year + 1):
        a.accounting_years[str(y)] = {"year": str(y), "fromDate": f"{y}-01-01",
                                      "toDate": f"{y}-12-31"}
    a.customer_groups[1] = {"customerGroupNumber": 1, "name": "Domestic customers",
                            "account": {"accountNumber": 5600}}
    a.payment_terms[1] = {"paymentTermsNumber": 1, "name": "Net 14 days", "daysOfCredit": 14,
                          "paymentTermsType": "net"}
    a.currencies["DKK"] = {"code": "DKK", "name": "Danish krone", "isoNumber": "208"}
    a.currencies["EUR"] = {"code": "EUR", "name": "Euro", "isoNumber": "978"}
    for n, name, cust in ((1, "Domestic", True), (2, "EU", True), (3, "Abroad", True),
                          (4, "Domestic exempt", True)):
        a.vat_zones[n] = {"vatZoneNumber": n, "name": name, "enabledForCustomer": cust,
                          "enabledForSupplier": True}
    for code, name, rate, acc, typ in (("U25", "Sales VAT 25%", 25.0, 7250, 2),
                                       ("I25", "Purchase VAT 25%", 25.0, 7260, 1),
                                       ("UEUV", "EU sales of services", 0.0, 7250, 2),
                                       ("REP", "Representation", 25.0, 7260, 1)):
        a.vat_accounts[code] = {"vatCode": code, "name": name, "ratePercentage": rate,
                                "account": {"accountNumber": acc},
                                "vatType": {"vatTypeNumber": typ,
                                            "name": "Sales VAT" if typ == 2 else "Purchase VAT"}}
    for num, name, kind, vat in ((1010, "Sales of services", "profitAndLoss", "U25"),
                                 (1020, "Sales abroad", "profitAndLoss", None),
                                 (2750, "Purchases", "profitAndLoss", "I25"),
                                 (5600, "Trade debtors", "status", None),
                                 (5820, "Bank", "status", None),
                                 (7250, "Sales VAT", "status", None),
                                 (7260, "Purchase VAT", "status", None)):
        rec: Record = {"accountNumber": num, "name": name, "accountType": kind,
                       "debitCredit": "credit" if num < 2000 else "debit"}
        if vat:
            rec["vatAccount"] = {"vatCode": vat}
        a.accounts[num] = rec
    a.journals[1] = {"journalNumber": 1, "name": "Daily journal",
                     "settings": {"voucherNumbers": {"minimumVoucherNumber": 1,
                                                     "maximumVoucherNumber": 999_999}}}
    a.project_groups[1] = {"number": 1, "name": "External projects", "type": 2,
                           "objectVersion": a.version()}
    return a
