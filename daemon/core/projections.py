"""Projections: pure folds of the event log into the desired e-conomic state and its status.

Each projection owns one SQLite table of ``(key, seq, row)``. :func:`fold` is a pure function of
(current row, event) to the new row, so folding incrementally, replaying from zero, or resuming
from any checkpoint gives identical rows. The store writes the rows touched by a batch of events
in the same transaction as those events, with the checkpoint.

Rows hold Moment's normalized facts (what e-conomic should hold, before the config-dependent
mapping in :mod:`daemon.core.mapping`) and each entity's sync status; their types, and how a
loaded row shares what rows repeat, are in :mod:`daemon.core.rows`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from typing import Final

import msgspec

from daemon.core import events as ev
from daemon.core import ratelimits
from daemon.core.rows import (
    HINT_WATERMARK,
    LAST_ECONOMIC_HINT,
    RATE_LIMITS,
    RESTORE,
    DaemonState,
    DesiredCustomer,
    DesiredExpense,
    DesiredInvoice,
    DesiredPayment,
    DesiredProject,
    EntityState,
    Row,
    compact,
    shared_filled,
)


class Projection(msgspec.Struct, frozen=True):
    table: str
    row_type: type
    handles: tuple[type, ...]  # the event types it folds; others never reach ``keys``
    keys: Callable[[ev.Event], Iterable[str]]
    fold: Callable[[Row | None, int, str, ev.Event], Row | None]


def _fact_keys(kind: str, fact_type: type) -> Callable[[ev.Event], Iterable[str]]:
    def keys(event: ev.Event) -> Iterable[str]:
        if isinstance(event, fact_type):
            return (event.entity_key,)
        if isinstance(event, ev.EntityGone | ev.InvoiceConflict) and ev.entity_of(event)[0] == kind:
            return (event.entity_key,)
        return ()
    return keys


_optional_values: Final = operator.attrgetter(*ev.CUSTOMER_OPTIONAL_FIELDS)
_ALL_FILLED: Final = len(ev.CUSTOMER_OPTIONAL_FIELDS)


def _filled(event: ev.CustomerUpserted, before: tuple[str, ...]) -> tuple[str, ...]:
    """The optional fields the customer has ever had a value in: ``before`` plus those the
    event fills (the same tuple when it adds none, as a replay's snapshots mostly do)."""
    if len(before) == _ALL_FILLED:  # every field has had a value: nothing can be added
        return before
    added = [name for name, value in zip(ev.CUSTOMER_OPTIONAL_FIELDS, _optional_values(event),
                                         strict=True)
             if value and name not in before and value.strip()]
    return shared_filled(tuple(sorted((*before, *added)))) if added else before


def fold_customer(row: Row | None, seq: int, at: str, event: ev.Event) -> Row | None:
    if isinstance(event, ev.CustomerUpserted):
        before = row.filled if isinstance(row, DesiredCustomer) else ()
        return DesiredCustomer(fact=event, seq=seq, filled=_filled(event, before))
    if isinstance(event, ev.EntityGone) and isinstance(row, DesiredCustomer):
        return msgspec.structs.replace(row, gone=True, seq=seq)
    return row


def fold_project(row: Row | None, seq: int, at: str, event: ev.Event) -> Row | None:
    if isinstance(event, ev.ProjectUpserted):
        return DesiredProject(fact=event, seq=seq)
    if isinstance(event, ev.EntityGone) and isinstance(row, DesiredProject):
        return msgspec.structs.replace(row, gone=True, seq=seq)
    return row


def fold_invoice(row: Row | None, seq: int, at: str, event: ev.Event) -> Row | None:
    if isinstance(event, ev.InvoiceFinalized):
        if isinstance(row, DesiredInvoice):
            # an invoice is recorded once: a later fact for the same number only updates the
            # status (credited) of the same Moment invoice; another invoice is a conflict
            if row.fact.moment_id != event.moment_id:
                return row
            return msgspec.structs.replace(row, fact=event, seq=seq, gone=False)
        return DesiredInvoice(fact=event, seq=seq)
    if isinstance(event, ev.InvoiceConflict) and isinstance(row, DesiredInvoice):
        if event.moment_id in row.conflicts:
            return row
        return msgspec.structs.replace(row, conflicts=(*row.conflicts, event.moment_id))
    if isinstance(event, ev.EntityGone) and isinstance(row, DesiredInvoice):
        return msgspec.structs.replace(row, gone=True, seq=seq)
    return row


def fold_payment(row: Row | None, seq: int, at: str, event: ev.Event) -> Row | None:
    if isinstance(event, ev.PaymentObserved):
        return DesiredPayment(fact=event, seq=seq)
    return row


def fold_expense(row: Row | None, seq: int, at: str, event: ev.Event) -> Row | None:
    if isinstance(event, ev.BookedEntryRecorded):
        # recorded once per entry; a second fact of the same entry changes nothing
        return row if isinstance(row, DesiredExpense) else DesiredExpense(fact=event, seq=seq)
    return row


_STATE_EVENTS: Final = (
    ev.WriteIntended, ev.Applied, ev.Failed, ev.Parked, ev.Unparked, ev.RetryRequested,
    ev.InvoiceEntryCreated, ev.InvoicePdfAttached, ev.InvoicePdfSkipped, ev.InvoiceBooked,
    ev.DriftRepaired, ev.InvoiceConflict, ev.EntityGone, ev.BookedMismatch, ev.BookedMatched,
    ev.InvoiceEntryGone, ev.WentWithout, ev.RestoreMarked,
)


def _state_keys(event: ev.Event) -> Iterable[str]:
    if isinstance(event, ev.RestoreMarked):
        return event.entities
    kind, key = ev.entity_of(event)
    return (f"{kind}:{key}",)


def _add_warning(row: EntityState, warning: str) -> tuple[str, ...]:
    return row.warnings if warning in row.warnings else (*row.warnings, warning)


def fold_state(row: Row | None, seq: int, at: str, event: ev.Event) -> Row | None:
    if isinstance(event, ev.RestoreMarked):
        # only an entity with a recorded life can have lost a write; one the log never wrote
        # to is looked up before its first write anyway
        if isinstance(row, EntityState) and not row.in_doubt:
            return msgspec.structs.replace(row, in_doubt=True)
        return row
    kind, key = ev.entity_of(event)
    state = row if isinstance(row, EntityState) else EntityState(kind=kind, key=key)
    replace = msgspec.structs.replace
    match event:
        case ev.WriteIntended(action=action, idempotency_key=ikey):
            if action == "transfer" and state.kind == "invoice":
                # the journal of an invoice's entry in doubt (None: sent to none)
                return replace(state, intents={**state.intents, action: ikey},
                               journal_number=event.journal_number)
            return replace(state, intents={**state.intents, action: ikey})
        case ev.Applied():
            intents = {a: k for a, k in state.intents.items() if a != event.action}
            warnings = (*state.warnings, *(w for w in event.warnings if w not in state.warnings))
            return replace(
                state, applied_hash=event.content_hash or state.applied_hash, applied_seq=seq,
                economic_number=event.economic_number if event.economic_number is not None
                else state.economic_number,
                object_version=event.object_version or state.object_version,
                intents=intents, attempts=0, last_error="", warnings=warnings,
                in_doubt=False,
            )
        case ev.Failed():
            return replace(state, attempts=event.attempt, last_error=event.error)
        case ev.Parked():
            return replace(state, parked=True, reason=event.reason, attempts=event.attempts,
                           last_error=event.last_error, parked_at=at)
        case ev.RetryRequested():
            return replace(state, parked=False, reason="", attempts=0, parked_at="",
                           entries_lost=0)
        case ev.Unparked():
            return replace(state, parked=False, reason="", attempts=0, parked_at="")
        case ev.InvoiceEntryCreated():
            # the transfer's outcome is known: its intent is closed
            intents = {a: k for a, k in state.intents.items() if a != "transfer"}
            return replace(state, journal_number=event.journal_number,
                           entry_number=event.entry_number, voucher_number=event.voucher_number,
                           accounting_year=event.accounting_year, intents=intents,
                           vat_code=event.vat_code)
        case ev.InvoiceEntryGone():  # every step starts afresh, under new keys
            return replace(state, journal_number=None, entry_number=None, voucher_number=None,
                           document_number=None, pdf_done=False, booked=False, intents={},
                           vat_code=None, entries_lost=state.entries_lost + 1, in_doubt=False)
        case ev.InvoicePdfAttached():
            return replace(state, pdf_done=True, document_number=event.document_number)
        case ev.InvoicePdfSkipped():
            return replace(state, pdf_done=True,
                           warnings=_add_warning(state, f"PDF not attached: {event.reason}"))
        case ev.InvoiceBooked():
            return replace(state, booked=True, accounting_year=event.accounting_year,
                           voucher_number=event.voucher_number, in_doubt=False)
        case ev.DriftRepaired():
            return replace(state, drift_repaired=state.drift_repaired + 1)
        case ev.BookedMismatch():
            return replace(state, warnings=_add_warning(state, event.detail),
                           mismatch=event.detail, mismatch_fields=event.fields)
        case ev.BookedMatched():
            return replace(state, mismatch="", mismatch_fields=(),
                           warnings=tuple(w for w in state.warnings if w != state.mismatch))
        case ev.WentWithout():
            return replace(state, without={**state.without, event.dependency: event.warning},
                           warnings=_add_warning(state, event.warning))
        case ev.InvoiceConflict():
            return replace(state, warnings=_add_warning(
                state, f"another Moment invoice (id {event.moment_id}) claims this number"))
        case _:
            return state


def _daemon_keys(event: ev.Event) -> Iterable[str]:
    match event:
        case ev.PollCursorAdvanced(kind=kind):
            return (f"cursor:{kind}",)
        case ev.HintWatermarkAdvanced():
            return (HINT_WATERMARK,)
        case ev.HintReceived():
            return ("last_webhook",) if event.source == "webhook" else ()
        case ev.EconomicHintReceived():
            return (LAST_ECONOMIC_HINT,)
        case ev.StrayReported():
            return (f"stray:{event.kind}:{event.number}",)
        case ev.CheckReported(name=name):
            return (f"check:{name}",)
        case ev.RestoreMarked():
            return (RESTORE,)
        case ev.RateLimitRecorded():
            return (RATE_LIMITS,)
        case _:
            return ()


def fold_daemon(row: Row | None, seq: int, at: str, event: ev.Event) -> Row | None:
    match event:
        case ev.PollCursorAdvanced(kind=kind, cursor=cursor):
            extra = {"full_scan_at": at} if event.full_scan else (
                row.extra if isinstance(row, DaemonState) else {})
            return DaemonState(name=f"cursor:{kind}", value=cursor, at=at, extra=extra)
        case ev.HintWatermarkAdvanced(through=through):
            return DaemonState(name=HINT_WATERMARK, value=str(through), at=at)
        case ev.HintReceived():
            return DaemonState(name="last_webhook", value=event.kind, at=at)
        case ev.EconomicHintReceived():
            return DaemonState(name=LAST_ECONOMIC_HINT, value=event.kind, at=at)
        case ev.StrayReported():
            return DaemonState(name=f"stray:{event.kind}:{event.number}", value=event.note, at=at,
                               extra={"managed_key": event.key})
        case ev.CheckReported(name=name, ok=ok, detail=detail):
            return DaemonState(name=f"check:{name}", value="ok" if ok else "failed", at=at,
                               extra={"detail": detail})
        case ev.RestoreMarked(through_seq=through):
            return DaemonState(name=RESTORE, value=str(through), at=at)
        case ev.RateLimitRecorded():
            return _fold_rate_limits(row, at, event)
        case _:
            return row


def rate_limits(tables: Tables) -> tuple[float, ratelimits.Counts]:
    """The recorded pause end (0.0: none) and calls by minute (:data:`RATE_LIMITS`)."""
    row = tables.daemon().get(RATE_LIMITS)
    return (0.0, ()) if row is None else _parse_rate_limits(row)


def _parse_rate_limits(row: DaemonState) -> tuple[float, ratelimits.Counts]:
    try:
        paused = float(row.value or 0.0)
        counts = tuple((int(m), int(c)) for m, _sep, c in
                       (pair.partition(":") for pair in row.extra.get("calls", "").split()))
    except ValueError:  # a row this code did not write: nothing to honour
        return 0.0, ()
    return paused, counts


def _fold_rate_limits(row: Row | None, at: str, event: ev.RateLimitRecorded) -> DaemonState:
    paused, counts = _parse_rate_limits(row) if isinstance(row, DaemonState) else (0.0, ())
    merged = ratelimits.budget_restore(ratelimits.Budget(), counts + event.calls, 0.0)
    if merged.counts:  # keep the 24 hours before the newest recorded minute: bounded
        newest = merged.counts[-1][0] * ratelimits.MINUTE_S
        merged = ratelimits.budget_window(merged, newest)
    return DaemonState(name=RATE_LIMITS, value=repr(max(paused, event.paused_until)), at=at,
                       extra={"calls": " ".join(f"{m}:{c}" for m, c in merged.counts)})


PROJECTIONS: Final[tuple[Projection, ...]] = (
    Projection("desired_customers", DesiredCustomer, (ev.CustomerUpserted, ev.EntityGone),
               _fact_keys("customer", ev.CustomerUpserted), fold_customer),
    Projection("desired_projects", DesiredProject, (ev.ProjectUpserted, ev.EntityGone),
               _fact_keys("project", ev.ProjectUpserted), fold_project),
    Projection("desired_invoices", DesiredInvoice,
               (ev.InvoiceFinalized, ev.InvoiceConflict, ev.EntityGone),
               _fact_keys("invoice", ev.InvoiceFinalized), fold_invoice),
    Projection("desired_payments", DesiredPayment, (ev.PaymentObserved,),
               _fact_keys("payment", ev.PaymentObserved), fold_payment),
    Projection("desired_expenses", DesiredExpense, (ev.BookedEntryRecorded,),
               _fact_keys("expense", ev.BookedEntryRecorded), fold_expense),
    Projection("entity_states", EntityState, _STATE_EVENTS, _state_keys, fold_state),
    Projection("daemon_state", DaemonState,
               (ev.PollCursorAdvanced, ev.HintWatermarkAdvanced, ev.HintReceived,
                ev.EconomicHintReceived,
                ev.StrayReported, ev.CheckReported, ev.RestoreMarked, ev.RateLimitRecorded),
               _daemon_keys, fold_daemon),
)

_BY_TYPE: dict[type, tuple[Projection, ...]] = {}


def projections_for(event_type: type) -> tuple[Projection, ...]:
    """The projections that fold events of this type (computed once per type)."""
    found = _BY_TYPE.get(event_type)
    if found is None:
        found = tuple(p for p in PROJECTIONS if issubclass(event_type, p.handles))
        _BY_TYPE[event_type] = found
    return found


def restore_candidates(tables: Tables) -> list[str]:
    """The ``entity_states`` keys ``moment-sync restore`` marks in doubt: every entity the log
    has written to, not already in doubt, whose life in e-conomic is not over (a booked invoice
    is: booking is the last write the daemon makes to it)."""
    return sorted(key for key, st in tables.states().items()
                  if not st.in_doubt and not (st.kind == "invoice" and st.booked))


Change = tuple[str, str, Row | None, int]


class Tables:
    """The in-memory image of every projection table: ``{table: {key: row}}``.

    :meth:`apply` folds one event and returns the ``(table, key)`` pairs it changed, so the
    store writes exactly those rows in the event's transaction.
    """

    __slots__ = ("checkpoint", "row_seq", "rows")

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Row]] = {p.table: {} for p in PROJECTIONS}
        self.row_seq: dict[str, dict[str, int]] = {p.table: {} for p in PROJECTIONS}
        self.checkpoint = 0

    def apply(self, seq: int, at: str, event: ev.Event,
              changed: list[Change] | None = None) -> list[Change]:
        """Fold one event; add ``(table, key, row before, its seq)`` for every row changed to
        ``changed`` (a new list when none is given) and return it."""
        if changed is None:
            changed = []
        for projection in projections_for(type(event)):
            name = projection.table
            table = self.rows[name]
            for key in projection.keys(event):
                old = table.get(key)
                new = projection.fold(old, seq, at, event)
                if new is not None and new is not old:
                    table[key] = new
                    seqs = self.row_seq[name]
                    changed.append((name, key, old, seqs.get(key, 0)))
                    seqs[key] = seq
        self.checkpoint = seq
        return changed

    def undo(self, changed: list[Change], checkpoint: int) -> None:
        """Put back rows changed by :meth:`apply` (newest first), after a failed commit."""
        for table, key, old, old_seq in reversed(changed):
            if old is None:
                self.rows[table].pop(key, None)
                self.row_seq[table].pop(key, None)
            else:
                self.rows[table][key] = old
                self.row_seq[table][key] = old_seq
        self.checkpoint = checkpoint

    def customers(self) -> dict[str, DesiredCustomer]:
        return self.rows["desired_customers"]  # type: ignore[return-value]

    def projects(self) -> dict[str, DesiredProject]:
        return self.rows["desired_projects"]  # type: ignore[return-value]

    def invoices(self) -> dict[str, DesiredInvoice]:
        return self.rows["desired_invoices"]  # type: ignore[return-value]

    def payments(self) -> dict[str, DesiredPayment]:
        return self.rows["desired_payments"]  # type: ignore[return-value]

    def expenses(self) -> dict[str, DesiredExpense]:
        return self.rows["desired_expenses"]  # type: ignore[return-value]

    def states(self) -> dict[str, EntityState]:
        return self.rows["entity_states"]  # type: ignore[return-value]

    def state(self, kind: str, key: str) -> EntityState:
        found = self.states().get(f"{kind}:{key}")
        return found if found is not None else EntityState(kind=kind, key=key)

    def daemon(self) -> dict[str, DaemonState]:
        return self.rows["daemon_state"]  # type: ignore[return-value]


_row_encoder = msgspec.json.Encoder(order="deterministic")
_row_decoders: Final[dict[str, msgspec.json.Decoder[Row]]] = {
    p.table: msgspec.json.Decoder(p.row_type) for p in PROJECTIONS}


def encode_row(row: Row) -> bytes:
    return _row_encoder.encode(row)


def decode_row(table: str, data: bytes) -> Row:
    """A row as its table stores it, :func:`~daemon.core.rows.compact`."""
    return compact(_row_decoders[table].decode(data))
