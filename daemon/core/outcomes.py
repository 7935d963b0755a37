"""The outcomes of talking to e-conomic (and, for the kinds that flow the other way, to Moment),
and the daemon's own records (checks, restores, rate limits): the events the reconcilers and
the daemon append. Part of the one vocabulary, :mod:`daemon.core.events`, which re-exports them;
import them from there.
"""

from __future__ import annotations

from daemon.core.eventbase import Event


class _Outcome(Event, frozen=True, kw_only=True):
    kind: str
    key: str

    @property
    def entity_key(self) -> str:
        return self.key


class WriteIntended(_Outcome, frozen=True, kw_only=True, tag="write_intended"):
    """Recorded (durably) before the first send of a write; its key is reused on every retry.
    An invoice's transfer intent records the journal it is sent to (None: not sent to any)."""

    action: str
    idempotency_key: str
    content_hash: str = ""
    journal_number: int | None = None


class Applied(_Outcome, frozen=True, kw_only=True, tag="applied"):
    """e-conomic holds the desired state for this entity (after a write, or found in sync)."""

    action: str
    content_hash: str = ""
    economic_number: int | None = None
    object_version: str = ""
    warnings: tuple[str, ...] = ()
    #: the write's outcome was unknown and a lookup found it done (an expense Moment has)
    found_by_lookup: bool = False


class Failed(_Outcome, frozen=True, kw_only=True, tag="failed"):
    action: str
    error: str
    retryable: bool
    attempt: int = 1
    retry_at: float | None = None


class DriftRepaired(_Outcome, frozen=True, kw_only=True, tag="drift_repaired"):
    fields: tuple[str, ...] = ()
    detail: str = ""


class StrayReported(_Outcome, frozen=True, kw_only=True, tag="stray_reported"):
    """An e-conomic record that looks like a managed one under another number; never deleted."""

    number: int
    note: str = ""


class Parked(_Outcome, frozen=True, kw_only=True, tag="parked"):
    """The entity waits for a person; ``source`` says who parked it (``"ingest"`` for a
    Moment object that could not be fetched or normalized; empty: reconcile)."""

    reason: str
    attempts: int = 0
    last_error: str = ""
    source: str = ""


class Unparked(_Outcome, frozen=True, kw_only=True, tag="unparked"):
    by: str = "operator"


class InvoiceEntryCreated(_Outcome, frozen=True, kw_only=True, tag="invoice_entry_created"):
    """The draft entry exists in the journal (created now, or found by lookup)."""

    journal_number: int
    entry_number: int
    voucher_number: int
    accounting_year: str
    found_by_lookup: bool = False
    #: the ``contraVatCode`` the entry was sent with ("" for none); None when not known (found
    #: by a lookup, or recorded before the daemon kept it)
    vat_code: str | None = None


class InvoiceEntryGone(_Outcome, frozen=True, kw_only=True, tag="invoice_entry_gone"):
    """The invoice's draft entry is no longer in e-conomic (a person deleted it) and no entry
    of it is booked: the invoice is to be transferred again."""

    journal_number: int | None = None
    entry_number: int | None = None
    voucher_number: int | None = None
    detail: str = ""


class InvoicePdfAttached(_Outcome, frozen=True, kw_only=True, tag="invoice_pdf_attached"):
    accounting_year: str
    voucher_number: int
    document_number: int | None = None


class InvoicePdfSkipped(_Outcome, frozen=True, kw_only=True, tag="invoice_pdf_skipped"):
    """The PDF could not be stored (too big, or no attachments on this agreement): a warning."""

    reason: str


class InvoiceBooked(_Outcome, frozen=True, kw_only=True, tag="invoice_booked"):
    accounting_year: str
    voucher_number: int
    found_by_lookup: bool = False


class BookedMismatch(_Outcome, frozen=True, kw_only=True, tag="booked_mismatch"):
    """A booked invoice differs from Moment (``fields`` ``["moment"]``: Moment's own invoice
    changed after booking) or from e-conomic's booked entry (``amount``, ``customer``,
    ``date``, ``vat``, ``vat_code``, or ``missing``): reported, never edited."""

    detail: str
    fields: tuple[str, ...] = ()


class BookedMatched(_Outcome, frozen=True, kw_only=True, tag="booked_matched"):
    """A booked invoice reported as differing (``BookedMismatch``) agrees with e-conomic's
    booked entry again: the report is withdrawn. ``cleared`` is the sentence withdrawn."""

    cleared: str = ""


class WentWithout(_Outcome, frozen=True, kw_only=True, tag="went_without"):
    """The entity goes to e-conomic without a dependency that is parked (an invoice without
    its project, with ``invoice_without_project = "book"``): a warning, and from then on the
    entity's desired state leaves that dependency out."""

    dependency: str  # "project:7"
    warning: str


class CheckReported(Event, frozen=True, kw_only=True, tag="check_reported"):
    name: str
    ok: bool
    detail: str = ""


class RestoreMarked(Event, frozen=True, kw_only=True, tag="restore_marked"):
    """``moment-sync restore``: the log was brought back from a replica or a backup and may
    lack its tail, so each listed entity's last write may be missing from it. Each is in doubt
    until its next write has been preceded by a lookup in e-conomic (DESIGN.md, "Losing the
    host loses nothing")."""

    #: ``"kind:key"`` of every entity marked, as the ``entity_states`` projection keys them
    entities: tuple[str, ...] = ()
    #: the log's last sequence number when the restore was marked
    through_seq: int = 0


class RateLimitRecorded(Event, frozen=True, kw_only=True, tag="rate_limit_recorded"):
    """e-conomic's limits as the client met them, so a restart honours them (DESIGN.md,
    "Limits survive restarts"): appended when a 429 starts a pause, and at most once a minute and
    at shutdown for the calls made since the previous record."""

    #: POSIX time a 429 pause ends (0.0: none recorded); a later record never shortens it
    paused_until: float = 0.0
    #: the calls made since the previous record: ``(minute since the epoch, calls)`` ascending
    calls: tuple[tuple[int, int], ...] = ()
