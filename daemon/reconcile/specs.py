"""What a kind is, said once: the shape every kind's spec has, and the one step that reads an
entity's desired state from the log ("map → state → plan").

A spec (:class:`Spec`) says how to read a kind's desired state (the projection's rows and the
mapping), how to read its live state, the pure plan (:mod:`daemon.core.plans`), and what it
depends on (:class:`Dependency`, data: which other kind's key a fact names). A
:class:`RecordSpec` is a kind whose live state is an e-conomic record found by number and
replaced by a write (customers, projects); other kinds keep their progress in the log
(invoices). The controllers, the sweeps, ``plan`` and the status counts all iterate the same
specs (:mod:`daemon.reconcile.kinds`) and call :meth:`Spec.items` and :meth:`Spec.decide`, so
``moment-sync plan`` and the daemon cannot disagree on what an entity needs.

Guarantees: :meth:`Spec.items` and :meth:`Spec.decide` do no I/O; nothing here writes.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import msgspec

from daemon.core import events as ev
from daemon.core import expenses as xp
from daemon.core import mapping as mp
from daemon.core import payments as pay
from daemon.core import plans
from daemon.core import projections as pj
from daemon.core import rows as rw
from daemon.economic import filters
from daemon.economic.client import EconomicClient

F = TypeVar("F", bound=ev.Event)
F_co = TypeVar("F_co", bound=ev.Event, covariant=True)
D = TypeVar("D", bound=mp.CustomerFields | mp.ProjectFields | mp.InvoiceEntry
            | pay.PaymentFields | xp.ExpenseFields)
L = TypeVar("L")
P = TypeVar("P")


class Fact(Protocol[F_co]):
    """A row of a desired-state projection: the latest Moment fact, and whether it is gone."""

    @property
    def fact(self) -> F_co: ...

    @property
    def gone(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Dependency:
    """``kind`` must be in e-conomic before an entity that names it in its fact's ``field``.

    An ``optional`` dependency may be gone without while it is parked, when ``optional`` says
    so for the options: the item then goes ahead with its desired ``target`` field dropped
    (None) and a warning naming the dependency and why it is parked (:meth:`Spec.make_item`).
    Once an entity went without it (``WentWithout`` in the log), it stays without, so what was
    sent is what stays desired."""

    kind: str
    field: str
    target: str = ""
    optional: Callable[[mp.Options], bool] | None = None

    def key(self, fact: ev.Event) -> str:
        return str(getattr(fact, self.field) or "")


@dataclass(frozen=True, slots=True)
class Without:
    """A parked dependency an item goes ahead without, and the warning that says so."""

    kind: str
    key: str
    warning: str

    @property
    def dependency(self) -> str:
        return f"{self.kind}:{self.key}"


@dataclass(frozen=True, slots=True)
class Item(Generic[F, D]):
    """One managed entity as the log has it: its fact, its state, its mapped desired fields."""

    key: str
    fact: F
    state: rw.EntityState
    mapped: mp.Mapped[D]
    content: str  # the hash of the mapped fields; "" when they cannot be mapped
    without: tuple[Without, ...] = ()  # parked dependencies it goes without

    @property
    def desired(self) -> D | None:
        return self.mapped.value

    @property
    def in_sync(self) -> bool:
        """The log records the current desired fields as applied."""
        return bool(self.content) and self.state.applied_hash == self.content

    @property
    def out_of_sync(self) -> bool:
        """Not parked and not in sync: the controller has something to do (or to park)."""
        return not self.state.parked and not self.in_sync


def order(key: str) -> str:
    """Keys in the order a person reads them (Moment numbers: 2 before 10)."""
    return key.zfill(12)


class Spec(abc.ABC, Generic[F, D, L]):
    """One kind, described once (see the module docstring). ``L`` is the live state as the
    core's planner sees it (``None`` for kinds whose progress is in the log)."""

    kind: str
    depends_on: tuple[Dependency, ...] = ()
    reads_live: bool = False  # sweeps and ``plan`` read its live state from e-conomic

    def enabled(self, options: mp.Options) -> bool:
        """Whether the daemon manages this kind with these options (a kind switched off in the
        configuration is left out of ``status`` and ``plan``)."""
        del options
        return True

    # --- desired state ------------------------------------------------------------------------
    @abc.abstractmethod
    def rows(self, tables: pj.Tables) -> Mapping[str, Fact[F]]:
        """The desired-state projection of this kind, by key."""

    @abc.abstractmethod
    def map(self, fact: F, options: mp.Options) -> mp.Mapped[D]:
        """The fact as the e-conomic fields the daemon owns (or a problem)."""

    def map_row(self, row: Fact[F], state: rw.EntityState,
                options: mp.Options) -> mp.Mapped[D]:
        """The projection row as the e-conomic fields (a kind whose mapping needs more of the
        row than its latest fact, or of what the log recorded for it, overrides this)."""
        del state
        return self.map(row.fact, options)

    @abc.abstractmethod
    def number(self, desired: D) -> int:
        """The natural key in e-conomic."""

    def make_item(self, key: str, row: Fact[F], tables: pj.Tables,
                  options: mp.Options) -> Item[F, D]:
        state = tables.state(self.kind, key)
        mapped = self.map_row(row, state, options)
        without: list[Without] = []
        for dep in self.depends_on:
            dep_key = dep.key(row.fact)
            if mapped.value is None or not dep.target or not dep_key:
                continue
            gone = Without(kind=dep.kind, key=dep_key, warning="")
            warning = state.without.get(gone.dependency, "")
            dep_state = tables.state(dep.kind, dep_key)
            if not warning and dep.optional is not None and dep.optional(options) \
                    and dep_state.parked:
                warning = (f"entered without {dep.kind} {dep_key}, which is parked: "
                           f"{dep_state.reason}")
            if warning:
                without.append(Without(kind=dep.kind, key=dep_key, warning=warning))
                mapped = mp.Mapped(value=msgspec.structs.replace(mapped.value,
                                                                 **{dep.target: None}),
                                   warnings=(*mapped.warnings, warning))
        return Item(key=key, fact=row.fact, state=state, mapped=mapped,
                    content=self.content_of(row, mapped), without=tuple(without))

    def content_of(self, row: Fact[F], mapped: mp.Mapped[D]) -> str:
        """What ``Applied`` records and in-sync compares: by default the hash of the mapped
        fields ("" when they cannot be mapped)."""
        del row
        return mp.fields_hash(mapped.value) if mapped.value is not None else ""

    def item(self, tables: pj.Tables, options: mp.Options, key: str) -> Item[F, D] | None:
        """The managed entity ``key`` (None: unknown, or gone from Moment)."""
        row = self.rows(tables).get(key)
        if row is None or row.gone:
            return None
        return self.make_item(key, row, tables, options)

    def items(self, tables: pj.Tables, options: mp.Options) -> list[Item[F, D]]:
        """Every managed entity (not gone), in the projection's order."""
        return list(self.each_item(tables, options))

    def each_item(self, tables: pj.Tables, options: mp.Options) -> Iterator[Item[F, D]]:
        """:meth:`items` one at a time, none kept (the log must not change meanwhile)."""
        for key, row in self.rows(tables).items():
            if not row.gone:
                yield self.make_item(key, row, tables, options)

    def out_of_sync(self, tables: pj.Tables, options: mp.Options) -> list[str]:
        """Keys whose log state is not their desired state (what a restart queues)."""
        return [i.key for i in self.items(tables, options) if i.out_of_sync]

    # --- live state and the plan ------------------------------------------------------------
    @abc.abstractmethod
    def decide(self, item: Item[F, D], live: L | None, options: mp.Options) -> plans.Action:
        """The one action for a mapped item (pure): what the controller will do."""

    async def read_all(self, client: EconomicClient) -> dict[int, L]:
        """Every live record of this kind by number (for ``plan``); empty when the live state
        is not read from e-conomic."""
        del client
        return {}

    def strays(self, managed: Sequence[D], live: Iterable[L],
               numbers: set[int]) -> list[plans.Stray]:
        """Live records under numbers Moment does not use that look like a managed one."""
        del managed, live, numbers
        return []


class RecordSpec(Spec[F, D, L], Generic[F, D, L, P]):
    """A kind whose live state is one e-conomic record (``P``, the client's type) under the
    Moment number, listed in pages, and written whole: read, plan, merge, write."""

    reads_live = True
    record_type: type[P]  # the client's type of a live record
    number_field: str  # the field e-conomic filters the number by
    verbs: tuple[str, str]  # the action recorded for (creating, replacing) the record
    in_sync_action: str  # the action an in-sync ``Applied`` records
    # The record a sweep read may travel with its key to the write (a write that carries the
    # record's version is refused when the record changed in between); otherwise only "known
    # absent" travels, and the write merges into a fresh read.
    sweep_hint: bool

    @abc.abstractmethod
    def live(self, record: P) -> L:
        """The client's record as the core's ``Live*`` struct."""

    @abc.abstractmethod
    def number_of(self, record: P) -> int: ...

    @abc.abstractmethod
    def listing(self, client: EconomicClient,
                flt: filters.Filter | None) -> AsyncIterator[P]:
        """The live records matching ``flt`` (all of them when None), every page."""

    @abc.abstractmethod
    async def write(self, client: EconomicClient, desired: D, live: P | None, *,
                    idempotency_key: str) -> None:
        """Create the record (``live`` None) or replace it with only Moment's fields changed."""

    def version(self, live: P | None) -> str:
        """The record's version as read, when writes carry one."""
        del live
        return ""

    def stray_filter(self, desired: D) -> filters.Filter | None:
        """How to look for the record that took a recreated one's place (None: the next full
        sweep finds it)."""
        del desired
        return None

    def verb(self, live: P | None) -> str:
        return self.verbs[0] if live is None else self.verbs[1]

    async def fetch(self, client: EconomicClient, numbers: Sequence[int]) -> dict[int, P]:
        """Live records by number, 200 numbers a call; absent numbers are missing."""
        found: dict[int, P] = {}
        for chunk in filters.chunks(sorted(set(numbers))):
            async for record in self.listing(client, filters.in_(self.number_field, chunk)):
                found[self.number_of(record)] = record
        return found

    async def read_all(self, client: EconomicClient) -> dict[int, L]:
        return {self.number_of(r): self.live(r) async for r in self.listing(client, None)}

    def decide(self, item: Item[F, D], live: L | None, options: mp.Options) -> plans.Action:
        del options
        assert item.desired is not None
        return self.plan(item.desired, live, applied_before=plans.applied_before(item.state))

    @abc.abstractmethod
    def plan(self, desired: D, live: L | None, *, applied_before: bool) -> plans.Action:
        """The core's planner for this kind."""

    def in_sync(self, item: Item[F, D], live: P | None) -> list[ev.Event]:
        """The ``Applied`` that record a record found in sync (closing any open intent, whose
        outcome is now known); none when the log already says so."""
        state = item.state
        if state.applied_hash == item.content and not state.intents:
            return []
        desired = item.desired
        assert desired is not None
        return [ev.Applied(kind=self.kind, key=item.key, action=action,
                           content_hash=item.content, economic_number=self.number(desired),
                           object_version=self.version(live), warnings=item.mapped.warnings)
                for action in dict.fromkeys((*state.intents, self.in_sync_action))]
