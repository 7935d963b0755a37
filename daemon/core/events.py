"""The event vocabulary: every fact from Moment and every outcome of talking to e-conomic.

Events are frozen, tagged msgspec Structs (the tag is the ``type`` column of the log). Their
schema only grows: a new field gets a default; no field is renamed or retyped; a new meaning is
a new type. Each row records :data:`SCHEMA_VERSION` of the vocabulary that wrote it. Stored
events decode leniently (unknown fields are ignored) so an older daemon can read a newer row's
known fields. Entity kinds are ``customer``, ``project`` and ``invoice`` (Moment -> e-conomic;
the entity key is the Moment number: ``"10001"``, ``"1"``, ``"42"``), ``expense``
(e-conomic -> Moment; the key is ``YEAR:ENTRY``, the calendar year of the booked entry's date and
its e-conomic entry number: ``"2026:4711"``) and ``payment`` (e-conomic -> Moment; the key is
the invoice number).

The facts are declared here; the base is in :mod:`daemon.core.eventbase` and the outcomes in
:mod:`daemon.core.outcomes`, and this module re-exports both: every caller imports the one
vocabulary from here.
"""

from __future__ import annotations

from typing import ClassVar, Final

import msgspec

from daemon.core.eventbase import ALL_KINDS as ALL_KINDS
from daemon.core.eventbase import KINDS as KINDS
from daemon.core.eventbase import SCHEMA_VERSION as SCHEMA_VERSION
from daemon.core.eventbase import Event as Event
from daemon.core.eventbase import Kind as Kind
from daemon.core.outcomes import Applied as Applied
from daemon.core.outcomes import BookedMatched as BookedMatched
from daemon.core.outcomes import BookedMismatch as BookedMismatch
from daemon.core.outcomes import CheckReported as CheckReported
from daemon.core.outcomes import DriftRepaired as DriftRepaired
from daemon.core.outcomes import Failed as Failed
from daemon.core.outcomes import InvoiceBooked as InvoiceBooked
from daemon.core.outcomes import InvoiceEntryCreated as InvoiceEntryCreated
from daemon.core.outcomes import InvoiceEntryGone as InvoiceEntryGone
from daemon.core.outcomes import InvoicePdfAttached as InvoicePdfAttached
from daemon.core.outcomes import InvoicePdfSkipped as InvoicePdfSkipped
from daemon.core.outcomes import Parked as Parked
from daemon.core.outcomes import RateLimitRecorded as RateLimitRecorded
from daemon.core.outcomes import RestoreMarked as RestoreMarked
from daemon.core.outcomes import StrayReported as StrayReported
from daemon.core.outcomes import Unparked as Unparked
from daemon.core.outcomes import WentWithout as WentWithout
from daemon.core.outcomes import WriteIntended as WriteIntended

# --- Moment facts ---------------------------------------------------------------------------


class CustomerUpserted(Event, frozen=True, kw_only=True, tag="customer_upserted"):
    """Moment's customer as fetched; appended only when its content changed."""

    entity_kind: ClassVar[str] = "customer"
    moment_id: int
    number: str
    name: str
    email: str = ""
    organization_number: str = ""
    street: str = ""
    postal_code: str = ""
    city: str = ""
    country_code: str = ""
    vat_code: str = ""
    version: int = 0
    last_modified: str = ""
    #: why this fact cannot be sent to e-conomic as it is (a value Moment holds that the daemon
    #: cannot use); empty when it can. The entity is parked with this sentence.
    problem: str = ""

    @property
    def entity_key(self) -> str:
        return self.number


#: The customer fact's fields Moment may leave empty; a field an earlier fact of the customer
#: had a value in stays Moment's when it is emptied (DESIGN.md, "Which fields Moment owns").
CUSTOMER_OPTIONAL_FIELDS: Final = ("email", "organization_number", "street", "postal_code",
                                   "city", "country_code")


class ProjectUpserted(Event, frozen=True, kw_only=True, tag="project_upserted"):
    entity_kind: ClassVar[str] = "project"
    moment_id: int
    number: str
    name: str
    customer_number: str = ""
    customer_moment_id: int | None = None
    version: int = 0
    last_modified: str = ""
    #: why this fact cannot be sent to e-conomic as it is (a value Moment holds that the daemon
    #: cannot use); empty when it can. The entity is parked with this sentence.
    problem: str = ""

    @property
    def entity_key(self) -> str:
        return self.number


class InvoiceFinalized(Event, frozen=True, kw_only=True, tag="invoice_finalized"):
    """A finalized (or credited) invoice or credit note; recorded once per invoice number."""

    entity_kind: ClassVar[str] = "invoice"
    moment_id: int
    number: int
    status: str = "FINALIZED"
    is_credit_note: bool = False
    credited_invoice_number: int | None = None
    description: str = ""
    invoice_date: str = ""
    due_date: str = ""
    currency: str = ""
    #: Moment's DKK per 100 units of ``currency``; empty when Moment gave none.
    exchange_rate: str = ""
    total_excluding_vat: str = "0"
    total_vat: str = "0"
    total_including_vat: str = "0"
    financial_account: str = ""
    customer_number: str = ""
    project_number: str = ""
    pdf_sha256: str = ""
    pdf_size: int = 0
    finalized_date: str = ""
    version: int = 0
    #: why this fact cannot be sent to e-conomic as it is (a value Moment holds that the daemon
    #: cannot use); empty when it can. The entity is parked with this sentence.
    problem: str = ""

    @property
    def entity_key(self) -> str:
        return str(self.number)


class EntityGone(Event, frozen=True, kw_only=True, tag="entity_gone"):
    """Moment no longer has the object: it is no longer managed; nothing is deleted."""

    kind: str
    key: str
    moment_id: int
    detail: str = ""

    @property
    def entity_key(self) -> str:
        return self.key


class InvoiceConflict(Event, frozen=True, kw_only=True, tag="invoice_conflict"):
    """A second, different invoice claimed an invoice number already recorded."""

    entity_kind: ClassVar[str] = "invoice"
    number: int
    moment_id: int
    recorded_moment_id: int
    detail: str = ""

    @property
    def entity_key(self) -> str:
        return str(self.number)


# --- e-conomic facts: paid status ----------------------------------------------------------


class PaymentObserved(Event, frozen=True, kw_only=True, tag="payment_observed"):
    """The customer row of an invoice the daemon booked, as e-conomic's booked entries show it
    (``amount`` and ``remainder`` as the decimal strings read, in the invoice's currency);
    appended when they differ from the last such fact of the invoice. ``seen_on`` is the UTC
    date the daemon first saw them: Moment's ``paidDate``. Kind ``payment``, keyed by the
    invoice number (DESIGN.md, "Mapping e-conomic -> Moment")."""

    entity_kind: ClassVar[str] = "payment"
    invoice_number: int
    moment_id: int  # the Moment invoice's id, from its fact in the log
    year: str  # the calendar year of the row's date
    entry_number: int
    voucher_number: int | None = None
    customer_number: int | None = None
    amount: str
    remainder: str
    currency: str = ""
    seen_on: str = ""

    @property
    def entity_key(self) -> str:
        return str(self.invoice_number)


# --- e-conomic facts ------------------------------------------------------------------------


class BookedEntryRecorded(Event, frozen=True, kw_only=True, tag="booked_entry_recorded"):
    """A booked entry (bookedEntriesapi) on a project, as read; recorded once per entry (a
    booked entry never changes in e-conomic: corrections are entries of their own). Money and
    dates are the decimal and ISO strings as e-conomic gave them; ``vat_rate`` and
    ``reverse_charge`` are what the agreement's VAT code ``vat_code`` said when the entry was
    read, and ``account_type`` the account's type then (``profitAndLoss``, ``status``, ...), so
    the expense it becomes is a pure function of this fact."""

    entity_kind: ClassVar[str] = "expense"
    year: str  # the calendar year of ``date`` ("0000" when the date does not parse)
    entry_number: int
    entry_type: int | None = None
    account_number: int | None = None
    account_type: str = ""
    project_number: str = ""
    amount: str = ""
    currency: str = ""
    date: str = ""
    text: str = ""
    vat_code: str = ""
    vat_rate: str = ""
    reverse_charge: bool = False
    voucher_number: int | None = None
    customer_number: int | None = None
    customer_invoice_number: int | None = None
    #: why this entry cannot become an expense as read (an amount, date or project that does
    #: not parse); empty when it can. Such an entry is skipped with a warning, never parked.
    problem: str = ""

    @property
    def entity_key(self) -> str:
        return f"{self.year}:{self.entry_number}"


# --- Moment hints and ingest bookkeeping ----------------------------------------------------


class HintReceived(Event, frozen=True, kw_only=True, tag="hint_received"):
    """A webhook hint, committed before the 202: something about this object changed."""

    kind: str
    moment_id: int
    number: str = ""
    event: str = ""
    source: str = "webhook"

    @property
    def entity_key(self) -> str:
        return self.number or f"id:{self.moment_id}"


class EconomicHintReceived(Event, frozen=True, kw_only=True, tag="economic_hint_received"):
    """An e-conomic webhook delivery, committed before the 202: the records it names changed
    in e-conomic (``old``/``new``: customer or project numbers, either may be empty; a
    renumbering names both), or a day book was booked (``daybook``, vouchers ``first`` to
    ``last``). ``kind`` is ``customer``, ``project`` or ``daybook``."""

    kind: str
    event: str = ""
    old: str = ""
    new: str = ""
    daybook: str = ""
    first: str = ""
    last: str = ""

    @property
    def entity_key(self) -> str:
        return self.new or self.old or self.daybook


class PollCursorAdvanced(Event, frozen=True, kw_only=True, tag="poll_cursor_advanced"):
    """The Moment poll cursor of ``kind``. Logs written before :class:`HintWatermarkAdvanced`
    existed kept the hint watermark here too, as ``kind="hints"``; it is still read as one."""

    kind: str
    cursor: str
    full_scan: bool = False


class HintWatermarkAdvanced(Event, frozen=True, kw_only=True, tag="hint_watermark_advanced"):
    """The hint processor's tracking record: every hint with ``seq <= through`` has been
    processed to an outcome (a fact, gone, parked, or recorded as failed)."""

    through: int


# --- operator requests ----------------------------------------------------------------------


class ResyncRequested(Event, frozen=True, kw_only=True, tag="resync_requested"):
    kind: str
    key: str
    by: str = "operator"

    @property
    def entity_key(self) -> str:
        return self.key


class RetryRequested(Event, frozen=True, kw_only=True, tag="retry_requested"):
    kind: str
    key: str
    by: str = "operator"

    @property
    def entity_key(self) -> str:
        return self.key


ANY_EVENT = (
    CustomerUpserted | ProjectUpserted | InvoiceFinalized | EntityGone | InvoiceConflict
    | HintReceived | EconomicHintReceived | PollCursorAdvanced | HintWatermarkAdvanced
    | ResyncRequested | RetryRequested | WriteIntended | Applied | Failed | DriftRepaired
    | StrayReported | Parked | Unparked
    | InvoiceEntryCreated | InvoicePdfAttached | InvoicePdfSkipped | InvoiceBooked
    | BookedMismatch | BookedMatched | WentWithout | CheckReported | InvoiceEntryGone
    | RestoreMarked | PaymentObserved | BookedEntryRecorded | RateLimitRecorded
)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ANY_EVENT)


def encode(event: Event) -> bytes:
    """msgspec JSON with the ``type`` tag, so ``sqlite3 events.db`` shows readable payloads."""
    return _encoder.encode(event)


def decode(payload: bytes | str) -> Event:
    event: Event = _decoder.decode(payload)
    return event


def entity_of(event: Event) -> tuple[str, str]:
    """The (kind, key) an event is about: kind from the class, or its ``kind`` field."""
    kind = getattr(event, "kind", None)
    return (kind if isinstance(kind, str) else event.entity_kind), event.entity_key


def type_name(event: Event) -> str:
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag


_VOLATILE: Final = ("version", "last_modified", "finalized_date")


def content_hash(event: Event) -> str:
    """A digest of what an event says, ignoring bookkeeping (version, modification times).

    Two snapshots with equal content hash carry the same facts: ingest appends a new fact only
    when this differs from the latest recorded one; reconcile records the hash it applied.
    """
    import hashlib

    fields = {f: getattr(event, f) for f in event.__struct_fields__ if f not in _VOLATILE}
    return hashlib.sha256(msgspec.json.encode(fields, order="deterministic")).hexdigest()[:32]
