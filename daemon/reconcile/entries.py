"""The invoice kind's spec: a finalized Moment invoice as a journal entry in e-conomic.

An invoice's live state is not read by sweeps or ``plan``: its progress (entry created, PDF
attached or skipped, booked) is what the log recorded, and the transfer itself
(:mod:`daemon.reconcile.invoices`) looks e-conomic up whenever an earlier outcome is unknown.
The plan is :func:`daemon.core.plans.plan_invoice` over that progress. An invoice depends on
its customer and, when it names one, its project; with ``invoice_without_project = "book"``
an invoice whose project is parked goes without ``projectNumber``, with a warning.
"""

from __future__ import annotations

from collections.abc import Mapping

from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.core import plans
from daemon.core import projections as pj
from daemon.core import rows as rw
from daemon.reconcile import specs

KIND = "invoice"


def _book_without_project(options: mp.Options) -> bool:
    return options.invoice_without_project == "book"


class InvoiceSpec(specs.Spec[ev.InvoiceFinalized, mp.InvoiceEntry, None]):
    kind = KIND
    # no customer-ledger entry without its customer: an invoice always waits for it; it waits
    # for its project only with invoice_without_project = "wait" (else it goes without it
    # while the project is parked: the VAT period must not wait for a project)
    depends_on = (specs.Dependency(kind="customer", field="customer_number"),
                  specs.Dependency(kind="project", field="project_number",
                                   target="project_number", optional=_book_without_project))

    def rows(self, tables: pj.Tables) -> Mapping[str, specs.Fact[ev.InvoiceFinalized]]:
        return tables.invoices()

    def map(self, fact: ev.InvoiceFinalized, options: mp.Options
            ) -> mp.Mapped[mp.InvoiceEntry]:
        return mp.map_invoice(fact, options)

    def map_row(self, row: specs.Fact[ev.InvoiceFinalized], state: rw.EntityState,
                options: mp.Options) -> mp.Mapped[mp.InvoiceEntry]:
        """The invoice in the journal recorded with it (its entry's, or that of a transfer in
        doubt), else the configured one: changing ``journal_number`` neither moves nor
        re-reports an invoice already sent."""
        return mp.map_invoice(row.fact, options, journal=state.journal_number)

    def content_of(self, row: specs.Fact[ev.InvoiceFinalized],
                   mapped: mp.Mapped[mp.InvoiceEntry]) -> str:
        """Moment's own invoice, never the mapping: a changed mapping option (or the project
        an invoice went without) is no change of a booked invoice."""
        return mp.invoice_content(row.fact) if mapped.value is not None else ""

    def number(self, desired: mp.InvoiceEntry) -> int:
        return desired.invoice_number

    def decide(self, item: specs.Item[ev.InvoiceFinalized, mp.InvoiceEntry], live: None,
               options: mp.Options) -> plans.Action:
        del live
        assert item.desired is not None
        return self.next_step(item.desired, item.state, options, desired_hash=item.content)

    def out_of_sync(self, tables: pj.Tables, options: mp.Options) -> list[str]:
        """Unparked invoices whose content is not recorded as applied, and those whose
        progress has a step left under ``options``: an invoice applied as a draft while
        ``auto_book`` was off is to be booked once it is on (without PDF while
        ``include_pdf`` was off: its PDF is to be attached once it is on)."""
        out: list[str] = []
        for key, row in self.rows(tables).items():
            if row.gone or tables.state(KIND, key).parked:
                continue  # decided by the state alone, without mapping the invoice
            i = self.make_item(key, row, tables, options)
            if not i.in_sync or (i.desired is not None and self.next_step(
                    i.desired, i.state, options, desired_hash=i.content).writes):
                out.append(i.key)
        return out

    def next_step(self, desired: mp.InvoiceEntry, state: rw.EntityState, options: mp.Options,
                  *, desired_hash: str) -> plans.Action:
        """The next step of the transfer, from the progress the log recorded (the transfer
        calls this between its steps; :meth:`decide` is the same for a whole item)."""
        return plans.plan_invoice(desired, plans.progress_of(state),
                                  include_pdf=options.include_pdf, auto_book=options.auto_book,
                                  desired_hash=desired_hash)


SPEC = InvoiceSpec()
