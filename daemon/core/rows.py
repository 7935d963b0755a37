"""The rows of the projections' tables (:mod:`daemon.core.projections` folds the log into
them): what Moment wants in e-conomic (``Desired*``, one per entity, its latest fact), what the
daemon knows of each entity's life there (:class:`EntityState`), and the daemon's own named
state (:class:`DaemonState`: cursors, watermarks, the last restore, e-conomic's limits), with
the names of those rows. :func:`compact` makes a row loaded from its table share the values
rows repeat, so 100,000 of them fit in memory.
"""

from __future__ import annotations

import sys
from typing import Final

import msgspec

from daemon.core import events as ev


class DesiredCustomer(msgspec.Struct, frozen=True, kw_only=True):
    fact: ev.CustomerUpserted
    seq: int
    gone: bool = False
    #: the optional fact fields (:data:`~daemon.core.events.CUSTOMER_OPTIONAL_FIELDS`) that some
    #: fact of this customer had a value in: Moment owns them even while it leaves them empty
    filled: tuple[str, ...] = ()


class DesiredProject(msgspec.Struct, frozen=True, kw_only=True):
    fact: ev.ProjectUpserted
    seq: int
    gone: bool = False


class DesiredInvoice(msgspec.Struct, frozen=True, kw_only=True):
    fact: ev.InvoiceFinalized
    seq: int
    gone: bool = False
    conflicts: tuple[int, ...] = ()  # Moment ids of other invoices claiming this number


class DesiredPayment(msgspec.Struct, frozen=True, kw_only=True):
    """The latest paid-status fact of a booked invoice (never gone: what e-conomic booked
    stays booked; whether Moment still has the invoice is the invoice row's)."""

    fact: ev.PaymentObserved
    seq: int
    gone: bool = False


class DesiredExpense(msgspec.Struct, frozen=True, kw_only=True):
    """A booked entry as recorded; whether it is an expense is decided with what else the log
    knows (:func:`daemon.core.expenses.not_an_expense`). Never gone: a booked entry stays."""

    fact: ev.BookedEntryRecorded
    seq: int
    gone: bool = False


class EntityState(msgspec.Struct, frozen=True, kw_only=True):
    """What the daemon knows of one entity's life in e-conomic."""

    kind: str
    key: str
    applied_hash: str = ""
    applied_seq: int = 0
    economic_number: int | None = None
    object_version: str = ""
    parked: bool = False
    reason: str = ""
    attempts: int = 0
    last_error: str = ""
    parked_at: str = ""
    intents: dict[str, str] = {}  # action -> idempotency key of the open intent
    journal_number: int | None = None
    entry_number: int | None = None
    voucher_number: int | None = None
    accounting_year: str = ""
    document_number: int | None = None
    pdf_done: bool = False
    booked: bool = False
    warnings: tuple[str, ...] = ()
    drift_repaired: int = 0
    entries_lost: int = 0  # draft entries found deleted since the last operator retry
    #: dependencies it went to e-conomic without ("project:7") -> the warning that said so
    without: dict[str, str] = {}
    mismatch: str = ""  # the last BookedMismatch's sentence, and the fields it names
    mismatch_fields: tuple[str, ...] = ()
    #: marked by ``moment-sync restore``: its last write may be missing from the log, so the
    #: next write is preceded by a lookup; cleared by the next recorded write
    in_doubt: bool = False
    vat_code: str | None = None  # the VAT code its entry was sent with; None: not known


#: The daemon-state row of the hint watermark. Logs written before
#: :class:`~daemon.core.events.HintWatermarkAdvanced` kept the watermark as
#: ``PollCursorAdvanced(kind="hints")``, which folds into this same row, so their watermark is
#: read on replay and after an upgrade.
HINT_WATERMARK: Final = "cursor:hints"
#: when the last e-conomic webhook delivery was recorded (``reconcile.last_hint_at``)
LAST_ECONOMIC_HINT: Final = "last_economic_hint"
#: The daemon-state row of the last ``moment-sync restore``: ``value`` the log's last sequence
#: number then, ``at`` when. Expenses the restored log may have lost a write of are looked up
#: in Moment before they are written (:mod:`daemon.reconcile.expenses`).
RESTORE: Final = "restore"
#: the daemon_state row of e-conomic's limits: ``value`` the latest pause's end (POSIX seconds),
#: ``extra["calls"]`` the recorded calls of the rolling 24 hours as ``"minute:calls ..."``
RATE_LIMITS: Final = "rate_limits"


class DaemonState(msgspec.Struct, frozen=True, kw_only=True):
    """One row per name: poll cursors, last webhook, strays, checks."""

    name: str
    value: str = ""
    at: str = ""
    extra: dict[str, str] = {}


Row = (DesiredCustomer | DesiredProject | DesiredInvoice | DesiredPayment | DesiredExpense
       | EntityState
       | DaemonState)


#: One shared tuple per distinct set of filled fields (at most 2**len(optional fields)): a
#: customer's ``filled`` decoded from its row is replaced by it, so 100,000 customers hold a
#: handful of tuples instead of 100,000 tuples of fresh strings (about 60 MB).
_FILLED: Final[dict[tuple[str, ...], tuple[str, ...]]] = {}


def shared_filled(filled: tuple[str, ...]) -> tuple[str, ...]:
    return _FILLED.setdefault(filled, filled)


class _EmptyMap(dict[str, str]):
    """The one empty ``intents``/``without`` that decoded rows share (120,000 states held
    120,000 empty dicts, 15 MB). Rows are never changed in place (a fold builds a new dict),
    and this one refuses to be: any change raises TypeError."""

    def _refuse(self, *args: object, **kwargs: object) -> None:
        raise TypeError("a projection row's mapping is not changed in place")

    __setitem__ = __delitem__ = update = setdefault = pop = popitem = clear = _refuse  # type: ignore[assignment]


_EMPTY_MAP: Final[dict[str, str]] = _EmptyMap()


def _mapping(value: dict[str, str]) -> dict[str, str]:
    return value if value else _EMPTY_MAP


def compact(row: Row) -> Row:
    """``row`` holding shared objects wherever rows repeat a value: the kind, the entity's
    number (also its table key), the values many customers share (postal code, city, country,
    VAT code) and an invoice's status and currency are interned (one string for all rows),
    the set of filled fields and an empty mapping are shared. Equal to ``row``; loading
    100,000 customers from their tables holds about 50 MB less."""
    intern = sys.intern
    replace = msgspec.structs.replace
    if isinstance(row, DesiredCustomer):
        c = row.fact
        return replace(row, filled=shared_filled(row.filled), fact=replace(
            c, number=intern(c.number), postal_code=intern(c.postal_code),
            city=intern(c.city), country_code=intern(c.country_code),
            vat_code=intern(c.vat_code)))
    if isinstance(row, DesiredInvoice):
        i = row.fact
        return replace(row, fact=replace(
            i, status=intern(i.status), currency=intern(i.currency),
            customer_number=intern(i.customer_number),
            project_number=intern(i.project_number)))
    if isinstance(row, DesiredProject):
        p = row.fact
        return replace(row, fact=replace(p, number=intern(p.number),
                                         customer_number=intern(p.customer_number)))
    if isinstance(row, EntityState):
        return replace(row, kind=intern(row.kind), key=intern(row.key),
                       intents=_mapping(row.intents), without=_mapping(row.without))
    return row
