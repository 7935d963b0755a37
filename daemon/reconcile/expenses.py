"""The expense kind: a cost booked in e-conomic on a project, as a Moment project expense.

Desired state (:class:`ExpenseSpec`): each recorded booked entry that is an expense
(:func:`daemon.core.expenses.not_an_expense`: the right type and account, not the daemon's own
invoice, on a project Moment has). An entry on a project Moment lacks is no expense yet: it is
skipped, never parked, and becomes one when the project appears (the reconciler queues it).
Its progress is in the log: an expense is in sync once ``Applied`` records it, and is never
written again (a booked entry never changes; a correction is an entry of its own).

The controller (:class:`Expenses`) writes each expense to Moment exactly once:

1. when the log shows an earlier send whose outcome is unknown (an open intent), or the log was
   restored since the expense could have been sent (``moment-sync restore``), it looks the
   expense up first (``GET /projectExpenses?externalId=``); found, it is recorded applied;
2. otherwise the intent is committed, then ``POST /projectExpenses``, then ``Applied`` (with
   Moment's id).

A retryable failure (transport, 5xx, 429, a 2xx whose answer cannot be read) backs the expense
off and leaves its intent open, so the next attempt looks before it writes; Moment refusing the
expense (400: an unknown project, a value it does not take) parks it with a sentence an
accountant can act on; the rest go on. The send carries the intent's key as its
``Idempotency-Key``, but Moment ignores it: only the lookup keeps an expense single
(``moment/API.md``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Final

import structlog

from daemon.core import events as ev
from daemon.core import expenses as xp
from daemon.core import mapping as mp
from daemon.core import plans
from daemon.core import projections as pj
from daemon.core import rows as rw
from daemon.moment import errors as moment_errors
from daemon.moment import shapes
from daemon.reconcile import moment_writes, reasons, specs
from daemon.reconcile.hooks import crash_point

_log = structlog.get_logger(__name__)

KIND: Final = "expense"
ACTION: Final = "create_expense"
LOOKUP: Final = "find_expense"


class _Present:
    """The Moment project numbers the log has (not gone), as a container."""

    __slots__ = ("_rows",)

    def __init__(self, rows: Mapping[str, rw.DesiredProject]) -> None:
        self._rows = rows

    def __contains__(self, number: object) -> bool:
        row = self._rows.get(number) if isinstance(number, str) else None
        return row is not None and not row.gone


class _OwnVouchers:
    """The vouchers of the invoices the daemon booked, read from the log when first asked."""

    __slots__ = ("_tables", "_vouchers")

    def __init__(self, tables: pj.Tables) -> None:
        self._tables = tables
        self._vouchers: set[tuple[str, int]] | None = None

    def __call__(self, year: str, voucher: int) -> bool:
        if self._vouchers is None:
            found: set[tuple[str, int]] = set()
            for key in self._tables.invoices():
                st = self._tables.state("invoice", key)
                if st.voucher_number is not None:
                    found.add((st.accounting_year, st.voucher_number))
            self._vouchers = found
        # an accounting year is "2026" or "2025/2026": the entry's calendar year is in it
        return any(v == voucher and year in y for y, v in self._vouchers)


class ExpenseSpec(specs.Spec[ev.BookedEntryRecorded, xp.ExpenseFields, None]):
    kind = KIND

    def enabled(self, options: mp.Options) -> bool:
        return options.expenses

    def rows(self, tables: pj.Tables) -> Mapping[str, specs.Fact[ev.BookedEntryRecorded]]:
        return tables.expenses()

    def map(self, fact: ev.BookedEntryRecorded, options: mp.Options
            ) -> mp.Mapped[xp.ExpenseFields]:
        return xp.map_expense(fact, options)

    def content_of(self, row: specs.Fact[ev.BookedEntryRecorded],
                   mapped: mp.Mapped[xp.ExpenseFields]) -> str:
        return xp.content(row.fact) if mapped.value is not None else ""

    def number(self, desired: xp.ExpenseFields) -> int:
        return desired.entry_number

    def skipped(self, tables: pj.Tables, options: mp.Options, key: str) -> str:
        """Why the recorded entry ``key`` is no expense (empty: it is one; unknown: said so)."""
        row = tables.expenses().get(key)
        if row is None:
            return f"no booked entry {key} is recorded"
        if not options.expenses:
            return "expenses are off ([expenses] enabled = false)"
        return xp.not_an_expense(row.fact, options, own_vouchers=_OwnVouchers(tables),
                                 projects=_Present(tables.projects()))

    def item(self, tables: pj.Tables, options: mp.Options, key: str
             ) -> specs.Item[ev.BookedEntryRecorded, xp.ExpenseFields] | None:
        if self.skipped(tables, options, key):
            return None
        return super().item(tables, options, key)

    def each_item(self, tables: pj.Tables, options: mp.Options
                  ) -> Iterator[specs.Item[ev.BookedEntryRecorded, xp.ExpenseFields]]:
        if not options.expenses:
            return
        own, present = _OwnVouchers(tables), _Present(tables.projects())
        for key, row in tables.expenses().items():
            if not xp.not_an_expense(row.fact, options, own_vouchers=own, projects=present):
                yield self.make_item(key, row, tables, options)

    def on_project(self, tables: pj.Tables, options: mp.Options,
                   numbers: set[str]) -> list[str]:
        """Keys of the expenses on projects ``numbers`` not yet in Moment (a project that
        appeared in Moment brings the entries recorded on it)."""
        if not options.expenses or not numbers:
            return []
        return [i.key for i in self.each_item(tables, options)
                if i.fact.project_number in numbers and i.out_of_sync]

    def decide(self, item: specs.Item[ev.BookedEntryRecorded, xp.ExpenseFields], live: None,
               options: mp.Options) -> plans.Action:
        del live, options
        desired = item.desired
        assert desired is not None
        if item.in_sync:
            return plans.NOTHING
        first = (" (looked up first: an earlier send's outcome is unknown)"
                 if ACTION in item.state.intents else "")
        return plans.Action(
            name="create", detail=f"expense {desired.amount_including_vat} {desired.currency} "
            f"on project {desired.project_number} dated {desired.date}{first}")


SPEC: Final[ExpenseSpec] = ExpenseSpec()


def body(desired: xp.ExpenseFields) -> shapes.ProjectExpense:
    """What ``POST /projectExpenses`` is sent."""
    return shapes.ProjectExpense(
        external_id=desired.external_id,
        project=shapes.ExpenseProjectRef(project_number=desired.project_number),
        description=desired.description, amount_including_vat=desired.amount_including_vat,
        currency=desired.currency, date=_date(desired.date), cost_type=desired.cost_type)


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


class Expenses(moment_writes.MomentWrites[ev.BookedEntryRecorded, xp.ExpenseFields]):
    """Writes queued expenses to Moment, each once; see the module docstring."""

    kind = KIND
    action = ACTION
    spec = SPEC

    async def apply(self, item: specs.Item[ev.BookedEntryRecorded, xp.ExpenseFields]) -> None:
        ctx, key = self.ctx, item.key
        client = ctx.moment
        assert client is not None
        state = ctx.log.tables.state(KIND, key)
        desired = item.desired
        assert desired is not None
        if state.parked or (state.applied_hash == item.content and not state.intents):
            return
        if ACTION in state.intents or state.in_doubt or self._restored_before(item):
            # an earlier send's outcome is unknown (or the log that recorded it was restored
            # and may have lost it): look first
            try:
                found = await client.find_project_expense(desired.external_id)
            except moment_errors.MomentError as err:
                await ctx.outcomes.refused(KIND, key, LOOKUP, err)
                return
            if found is not None:
                await self.applied(item, found.id, warnings=item.mapped.warnings,
                                   found_by_lookup=True)
                return
        ikey = await ctx.outcomes.intent(KIND, key, ACTION, item.content)
        crash_point("expense.after_intent")
        try:
            created = await client.create_project_expense(body(desired), idempotency_key=ikey)
        except moment_errors.MomentError as err:
            await self.refused(item, ACTION, err)
            return
        crash_point("expense.after_send")
        await self.applied(item, created.id, warnings=item.mapped.warnings)
        crash_point("expense.after_applied")

    def _restored_before(self, item: specs.Item[ev.BookedEntryRecorded, xp.ExpenseFields]
                         ) -> bool:
        """Whether a ``moment-sync restore`` happened since this expense's entry could have
        been sent: its fact is older than the restore, or its entry is dated no later than the
        restore day (the lost tail of the log may have read and sent it; the re-read records it
        anew). Such an expense is looked up before its first send."""
        tables = self.ctx.log.tables
        mark = tables.daemon().get(rw.RESTORE)
        if mark is None or item.state.applied_hash:
            return False
        row = tables.expenses().get(item.key)
        through = int(mark.value) if mark.value.isdigit() else 0
        return (row is not None and row.seq <= through) or item.fact.date <= mark.at[:10]

    def explain(self, item: specs.Item[ev.BookedEntryRecorded, xp.ExpenseFields], action: str,
                err: moment_errors.MomentError) -> str:
        assert item.desired is not None
        return reasons.explain_moment(KIND, item.key, action, err,
                                      project=item.desired.project_number)
