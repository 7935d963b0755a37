"""A randomized model of the reconciler (ANCHORS.md B.10 #6): whatever happens in between, once
faults stop and a full reconcile has run, e-conomic holds exactly what Moment wants for the keys
the daemon owns, and what people keep or made themselves is left alone.

Hypothesis draws 100 programs (a fixed set: derandomized) of 10 to 30 steps over a small key
space (customers 1-4, projects 1-3, invoices 1-5), run in order against the sandbox: Moment
records a customer, project or finalized invoice (a new Moment version when its content
changed, as ingest does); a person edits e-conomic (renames, changes an e-mail, city or VAT
zone, bars, deletes or renumbers a record, adds a phone number the daemon does not own, creates
a customer of their own); the next requests fail (500, 503, 429, a reset, or an answer dropped
after the work was committed); the reconciler runs one pass, perhaps while a third of its
requests fail one of those ways, or a sweep; or it is thrown away and built again on the same
log, which is a crash between passes, since every outcome is committed before the next pass.
Then the heal phase: no more faults, a fresh reconciler, a full sweep, passes until nothing is
due. After it:

- every customer and project Moment has is in e-conomic under Moment's number with the mapped
  fields (its latest version), and a second full sweep finds nothing to do;
- every finalized invoice is booked exactly once, no draft entry is left, and each carries
  exactly one copy of its PDF;
- the records people renumbered or created are exactly as they left them, the phone numbers
  they added survive, and nothing else exists;
- nothing is parked and nothing waits.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.economic import errors
from daemon.ingest import normalizing
from daemon.reconcile.running import Reconciler
from daemon.sandbox.economic import EconomicSandbox, Faults, RateLimit
from daemon.sandbox.economic_state import Record
from daemon.store.eventlog import EventLog
from tests.clocks import FakeClock
from tests.reconcile.conftest import (
    OPTIONS,
    customer,
    make_client,
    pdf,
    project,
    reconciler,
    record_invoices,
)

pytestmark = pytest.mark.anyio

CUSTOMERS = st.integers(1, 4)
PROJECTS = st.integers(1, 3)
INVOICES = st.integers(1, 5)
VARIANTS = st.integers(0, 2)
HAND_MADE_FROM = 800  # customers people create themselves
MOVED_FROM = 900  # where people renumber records to
F = TypeVar("F", ev.CustomerUpserted, ev.ProjectUpserted)


@dataclass
class World:
    """The sandbox, the log, the reconciler of the moment, and what Moment and people did."""

    sb: EconomicSandbox
    log: EventLog
    stack: AsyncExitStack
    rec: Reconciler | None = None
    customers: dict[int, ev.CustomerUpserted] = field(default_factory=dict)
    projects: dict[int, ev.ProjectUpserted] = field(default_factory=dict)
    invoices: dict[int, tuple[int, int | None]] = field(default_factory=dict)
    phones: dict[int, str] = field(default_factory=dict)
    own_customers: dict[int, Record] = field(default_factory=dict)
    own_projects: dict[int, Record] = field(default_factory=dict)
    # the client's and the reconciler's: a 429's pause jumps (the sandbox pauses nobody)
    clock: FakeClock = field(default_factory=lambda: FakeClock(autojump=True))

    @property
    def reconciler(self) -> Reconciler:
        assert self.rec is not None
        return self.rec

    async def start(self) -> None:
        """Build a reconciler (and client) on the log, forgetting the last one, and queue what
        the log knows to be out of sync, as the daemon does when it starts."""
        await self.stack.aclose()
        client = await self.stack.enter_async_context(
            make_client(self.sb, self.clock, timeout_s=5.0))
        self.rec = reconciler(self.log, client)
        self.rec.queue_out_of_sync()

    async def moment_customer(self, n: int, **kw: Any) -> None:
        self.customers[n] = await self.ingest(customer(n, **kw), self.customers.get(n))

    async def moment_project(self, n: int, c: int, **kw: Any) -> None:
        if c not in self.customers:
            await self.moment_customer(c)
        self.projects[n] = await self.ingest(project(n, c, **kw), self.projects.get(n))

    async def ingest(self, fact: F, last: F | None) -> F:
        """Record ``fact`` as ingest does: a new Moment version when its content changed."""
        if last is not None and ev.content_hash(last) == ev.content_hash(fact):
            return last
        fact = msgspec.structs.replace(fact, version=last.version + 1 if last else 1)
        await self.log.append(fact, idempotency_key=normalizing.fact_key(fact))
        return fact


def free(numbers: dict[int, Record], start: int) -> int:
    n = start
    while n in numbers:
        n += 1
    return n


# --- Moment ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class MomentCustomer:
    n: int
    variant: int
    vat: str

    async def run(self, w: World) -> None:
        await w.moment_customer(self.n, name=f"Kunde {self.n} v{self.variant}",
                                email=f"k{self.n}.v{self.variant}@example.dk", vat_code=self.vat)


@dataclass(frozen=True)
class MomentProject:
    n: int
    customer: int
    variant: int

    async def run(self, w: World) -> None:
        await w.moment_project(self.n, self.customer, name=f"Projekt {self.n} v{self.variant}")


@dataclass(frozen=True)
class MomentInvoice:
    n: int
    customer: int
    project: int | None

    async def run(self, w: World) -> None:
        if self.n in w.invoices:
            return  # a booked invoice is never changed: that is a credit note's job
        if self.customer not in w.customers:
            await w.moment_customer(self.customer)
        if self.project is not None and self.project not in w.projects:
            await w.moment_project(self.project, self.customer)
        await record_invoices(w.log, [(self.n, self.customer, self.project)])
        w.invoices[self.n] = (self.customer, self.project)


# --- a person in e-conomic ------------------------------------------------------------------
@dataclass(frozen=True)
class PersonEditsCustomer:
    n: int
    field: str

    async def run(self, w: World) -> None:
        a = w.sb.agreement
        if self.n in a.customers:
            value: Any = {"vatZoneNumber": 4} if self.field == "vatZone" else "set by hand"
            a.edit_customer(self.n, {self.field: value})


@dataclass(frozen=True)
class PersonAddsPhone:
    n: int

    async def run(self, w: World) -> None:
        a = w.sb.agreement
        if self.n in a.customers:
            phone = f"+45 {len(w.sb.served):08d}"
            a.edit_customer(self.n, {"telephoneAndFaxNumber": phone})
            w.phones[self.n] = phone


@dataclass(frozen=True)
class PersonRenumbersCustomer:
    n: int

    async def run(self, w: World) -> None:
        a = w.sb.agreement
        if self.n in a.customers:
            moved = a.renumber_customer(self.n, free(a.customers, MOVED_FROM))
            w.own_customers[moved["customerNumber"]] = copy.deepcopy(moved)
            w.phones.pop(self.n, None)


@dataclass(frozen=True)
class PersonCreatesCustomer:
    async def run(self, w: World) -> None:
        a = w.sb.agreement
        n = free(a.customers, HAND_MADE_FROM)
        made = a.add_customer(n, f"Made by hand {n}", email=f"hand{n}@example.dk")
        w.own_customers[n] = copy.deepcopy(made)


@dataclass(frozen=True)
class PersonEditsProject:
    n: int
    field: str

    async def run(self, w: World) -> None:
        a = w.sb.agreement
        if self.n in a.projects:
            a.edit_project(self.n, {self.field: True if self.field == "isBarred" else "by hand"})


@dataclass(frozen=True)
class PersonDeletesProject:
    n: int

    async def run(self, w: World) -> None:
        w.sb.agreement.projects.pop(self.n, None)


@dataclass(frozen=True)
class PersonRenumbersProject:
    n: int

    async def run(self, w: World) -> None:
        a = w.sb.agreement
        if self.n in a.projects:
            moved = a.renumber_project(self.n, free(a.projects, MOVED_FROM))
            w.own_projects[moved["number"]] = copy.deepcopy(moved)


# --- faults and the daemon ------------------------------------------------------------------
@dataclass(frozen=True)
class Fault:
    kind: str
    count: int

    async def run(self, w: World) -> None:
        w.sb.inject(self.kind, self.count)


@dataclass(frozen=True)
class Pass:
    """One pass; with ``faults``, each of its requests fails that way one time in three."""

    faults: str | None = None

    async def run(self, w: World) -> None:
        w.clock.advance(0.01)  # short backoffs come due
        if self.faults is not None:
            w.sb.faults.probability, w.sb.faults.kinds = 1 / 3, [self.faults]
        try:
            await w.reconciler.step()
        finally:
            w.sb.faults.probability = 0.0


@dataclass(frozen=True)
class Sweep:
    full: bool

    async def run(self, w: World) -> None:
        rec = w.reconciler
        try:
            await (rec.full_sweep() if self.full else rec.incremental_sweep())
        except errors.EconomicError:
            pass  # a failed sweep is tried again by the schedule; nothing to model


@dataclass(frozen=True)
class Restart:
    async def run(self, w: World) -> None:
        await w.start()


Op = (MomentCustomer | MomentProject | MomentInvoice | PersonEditsCustomer | PersonAddsPhone
      | PersonRenumbersCustomer | PersonCreatesCustomer | PersonEditsProject
      | PersonDeletesProject | PersonRenumbersProject | Fault | Pass | Sweep | Restart)

MOMENT: st.SearchStrategy[Op] = st.one_of(
    st.builds(MomentCustomer, CUSTOMERS, VARIANTS, st.sampled_from(["DK", "EU", "ABROAD"])),
    st.builds(MomentProject, PROJECTS, CUSTOMERS, VARIANTS),
    st.builds(MomentInvoice, INVOICES, CUSTOMERS, st.none() | PROJECTS),
)
PERSON: st.SearchStrategy[Op] = st.one_of(
    st.builds(PersonEditsCustomer, CUSTOMERS,
              st.sampled_from(["name", "email", "city", "vatZone"])),
    st.builds(PersonAddsPhone, CUSTOMERS),
    st.builds(PersonRenumbersCustomer, CUSTOMERS),
    st.builds(PersonCreatesCustomer),
    st.builds(PersonEditsProject, PROJECTS, st.sampled_from(["name", "isBarred"])),
    st.builds(PersonDeletesProject, PROJECTS),
    st.builds(PersonRenumbersProject, PROJECTS),
)
FAULT: st.SearchStrategy[Op] = st.builds(
    Fault, st.sampled_from(["500", "503", "429", "reset", "drop"]), st.integers(1, 3))
SWEEP: st.SearchStrategy[Op] = st.builds(Sweep, st.booleans())
PASS: st.SearchStrategy[Op] = st.builds(
    Pass, st.none() | st.sampled_from(["500", "503", "reset", "drop"]))
RESTART: st.SearchStrategy[Op] = st.just(Restart())
WEIGHTED = [MOMENT, MOMENT, MOMENT, PERSON, PERSON, PASS, PASS, PASS, FAULT, SWEEP, RESTART]
OPS = st.integers(0, len(WEIGHTED) - 1).flatmap(lambda i: WEIGHTED[i])


# --- heal and check -------------------------------------------------------------------------
async def drain(rec: Reconciler) -> None:
    """Run passes until nothing is due, backing off or in flight, taking the clock to each
    backoff's due time."""
    clock = rec.clock
    assert isinstance(clock, FakeClock)
    while await rec.step() or not rec.idle():
        due = rec.queue.next_due()
        if due is not None:
            clock.advance(max(0.0, due - clock.monotonic()))


async def heal(w: World) -> None:
    w.sb.faults.scheduled.clear()
    await w.start()
    await w.reconciler.full_sweep()
    await drain(w.reconciler)


def left_alone(kind: str, live: dict[int, Record], managed: Mapping[int, object],
               own: dict[int, Record]) -> list[str]:
    """Records people renumbered or made that changed, and records nobody asked for."""
    out = [f"{kind} {n}, a person's, was {rec}, is now {live.get(n)}"
           for n, rec in sorted(own.items()) if live.get(n) != rec]
    extra = set(live) - set(managed) - set(own)
    if extra:
        out.append(f"{kind}s nobody asked for: {sorted(extra)}")
    return out


def customer_problems(w: World) -> list[str]:
    a = w.sb.agreement
    out: list[str] = []
    for n, fact in sorted(w.customers.items()):
        want = mp.map_customer(fact, OPTIONS).value
        assert want is not None
        got = a.customers.get(n)
        if got is None:
            out.append(f"customer {n} is missing")
            continue
        live = (got.get("name"), got.get("email"), got.get("corporateIdentificationNumber"),
                got.get("address"), got.get("zip"), got.get("city"), got.get("country"),
                got.get("vatZone", {}).get("vatZoneNumber"))
        wanted = (want.name, want.email, want.corporate_id, want.address, want.zip, want.city,
                  want.country, want.vat_zone)
        if live != wanted:
            out.append(f"customer {n} is {live}, Moment wants {wanted}")
        if n in w.phones and got.get("telephoneAndFaxNumber") != w.phones[n]:
            out.append(f"customer {n} lost the phone {w.phones[n]!r} a person added")
    return out + left_alone("customer", a.customers, w.customers, w.own_customers)


def project_problems(w: World) -> list[str]:
    a = w.sb.agreement
    out: list[str] = []
    for n, fact in sorted(w.projects.items()):
        want = mp.map_project(fact, OPTIONS).value
        assert want is not None
        got = a.projects.get(n)
        if got is None:
            out.append(f"project {n} is missing")
            continue
        live = (got.get("name"), got.get("customerNumber"), bool(got.get("isBarred")))
        if live != (want.name, want.customer_number, False):
            out.append(f"project {n} is {live}, Moment wants "
                       f"{(want.name, want.customer_number, False)}")
    return out + left_alone("project", a.projects, w.projects, w.own_projects)


def invoice_problems(w: World) -> list[str]:
    a = w.sb.agreement
    out: list[str] = []
    if a.draft_entries:
        out.append(f"draft entries left: {sorted(a.draft_entries)}")
    lines = [b for b in a.booked_entries.values() if b.get("customerInvoiceNumber")]
    counts = Counter(b["customerInvoiceNumber"] for b in lines)
    if counts != Counter(dict.fromkeys(w.invoices, 1)):
        out.append(f"booked invoice lines {dict(counts)}, Moment finalized {sorted(w.invoices)}")
    for b in lines:
        n = b["customerInvoiceNumber"]
        c, p = w.invoices.get(n, (None, None))
        got = (b["customerNumber"], b.get("projectNumber"), Decimal(str(b["amount"])))
        if got != (c, p, Decimal(f"{n * 1.25:.2f}")):
            out.append(f"invoice {n} booked as {got}")
    by_voucher = {(b["_year"], b["voucherNumber"]): b["customerInvoiceNumber"] for b in lines}
    attached = Counter(by_voucher.get((d.accounting_year, d.voucher_number))
                       for d in a.documents.values())
    if attached != Counter(dict.fromkeys(w.invoices, 1)):
        out.append(f"PDFs attached per invoice {dict(attached)}")
    out += [f"invoice {by_voucher.get((d.accounting_year, d.voucher_number))} carries the "
            "wrong PDF" for d in a.documents.values()
            if d.content != [pdf(by_voucher.get((d.accounting_year, d.voucher_number)) or 0)]]
    return out


async def check(w: World) -> None:
    rec = w.reconciler
    stuck = [f"{s.kind} {s.key}: {s.reason}" for s in w.log.tables.states().values()
             if s.parked]
    assert not stuck, f"parked after healing: {stuck}"
    assert rec.queue.waiting() == 0, "items still wait on a dependency after healing"
    problems = customer_problems(w) + project_problems(w) + invoice_problems(w)
    assert not problems, "after healing:\n" + "\n".join(problems)
    again = await rec.full_sweep()
    assert again == 0, f"a second full sweep still queued {again} keys"
    assert not await rec.step()


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(program=st.lists(OPS, min_size=10, max_size=30))
# A person's edit between the sweep that queued a drifted customer and the pass that repairs it
# (the legacy PUT replaces the whole record) must survive the repair.
@example(program=[MomentCustomer(1, 0, "DK"), Pass(), MomentCustomer(1, 1, "DK"), Sweep(True),
                  PersonAddsPhone(1), Pass()])
async def test_after_any_history_and_a_heal_live_equals_desired_and_the_rest_is_untouched(
        program: list[Op]) -> None:
    async with (EconomicSandbox.running(rate_limit=RateLimit(enabled=False),
                                        faults=Faults(seed=6)) as sb,
                AsyncExitStack() as stack):
        clock = FakeClock(autojump=True)
        log = await EventLog.open(":memory:", clock=clock)
        w = World(sb=sb, log=log, stack=stack, clock=clock)
        try:
            await w.start()
            for op in program:
                await op.run(w)
            await heal(w)
            await check(w)
        finally:
            await w.stack.aclose()
            await log.close()
