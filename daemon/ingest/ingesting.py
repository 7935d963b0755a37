"""Appending what a Moment snapshot says: one fact when its content changed, else nothing.

What it does: given a snapshot fetched from Moment (by a hint, a poll, a full scan or a
resync), decides against the log's projections whether it is a new fact, and appends it (with
the invoice PDF stored first); records an object Moment no longer has as gone, a snapshot that
cannot be a fact as parked, and a second invoice claiming a recorded number as a conflict.

Guarantees:

* Check and append run under one lock per Moment object, so two snapshots of the same object
  never interleave; a customer or project snapshot older (lower ``version``) than the recorded
  fact of the same Moment object is stale and appends nothing, so a slow poll can never put old
  content back over a newer hint.
* A customer or project fact is appended only when its content hash differs from the latest
  fact for that entity (or the entity is gone or has none); A, B, A is three facts.
* Gone is not forever: an object recorded gone (after a 404 or a full scan that missed it)
  that Moment shows again is recorded again, unchanged or not, and managed again; an invoice
  comes back with the fact and PDF recorded first.
* An invoice number is recorded once: the first Moment invoice to be recorded under it keeps
  it; another Moment invoice claiming it is an :class:`~daemon.core.events.InvoiceConflict`
  (its ``detail`` is the reason for a person), never a second fact, and that invoice is parked
  under ``id:<its Moment id>`` with the same sentence (so it is listed and alerted); the first
  is not parked. Once it is recorded under a number of its own, the ``id:`` parking (of a
  conflict or a refusal) is lifted.
  Two invoices racing for a fresh number collide on the key ``invoice:<number>``, and the loser
  is recorded as the conflict.
* Every event written here is durable when the method returns. When the PDF cannot be taken
  the invoice is parked (``Parked`` with ``source="ingest"``) and no fact is written.
* A customer or project fact under a new number records the same Moment object's entity under
  its old number as gone (renumbered in Moment): one Moment object is one managed entity.
* A successful fact (or a confirmed unchanged one) unparks the entity only when ingest parked
  it: reconcile's parking is never lifted here.
* Moment's retryable errors (from the PDF download) are raised unchanged: the caller retries.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Final

import anyio
import msgspec
import structlog

from daemon.core import events as ev
from daemon.core import rows as rw
from daemon.ingest import normalizing, pdfs
from daemon.moment import client as moment_client
from daemon.moment import shapes
from daemon.store import eventlog

_log = structlog.get_logger(__name__)

SOURCE: Final = "ingest"


class Outcome(enum.StrEnum):
    """What processing one Moment object did to the log."""

    APPENDED = "appended"      # a new fact
    UNCHANGED = "unchanged"    # same content as the latest fact: nothing appended
    STALE = "stale"            # older than the recorded fact: nothing appended
    IGNORED = "ignored"        # not a fact (a draft invoice)
    GONE = "gone"              # Moment no longer has it: EntityGone appended
    UNKNOWN = "unknown"        # Moment no longer has it and the log never had it: nothing
    PARKED = "parked"          # Parked appended (number unusable, PDF refused, fetch failed)
    CONFLICT = "conflict"      # InvoiceConflict appended
    QUEUED = "queued"          # handed to the hint processor to retry later
    UNREADABLE = "unreadable"  # listed without a usable id: nothing to fetch or park


class Ingestor:
    """Turns snapshots into events on ``log``; ``limiter`` bounds concurrent Moment requests
    (the PDF download here, and the caller's fetches when it shares the limiter)."""

    def __init__(self, *, log: eventlog.EventLog, client: moment_client.MomentClient,
                 limiter: anyio.CapacityLimiter,
                 pdf_max_bytes: int = pdfs.MAX_PDF_BYTES) -> None:
        self.log = log
        self.client = client
        self.limiter = limiter
        self._pdf_max_bytes = pdf_max_bytes
        self._locks: dict[tuple[str, int], tuple[anyio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def locked(self, kind: str, moment_id: int) -> AsyncIterator[None]:
        """Hold the lock of one Moment object (locks are dropped when nobody holds them)."""
        key = (kind, moment_id)
        lock, users = self._locks.get(key, (anyio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    # --- lookups --------------------------------------------------------------------------

    def rows(self, kind: str) -> dict[str, rw.DesiredCustomer] | dict[str, rw.DesiredProject] \
            | dict[str, rw.DesiredInvoice]:
        tables = self.log.tables
        if kind == "customer":
            return tables.customers()
        if kind == "project":
            return tables.projects()
        return tables.invoices()

    def known_key(self, kind: str, moment_id: int, *, include_gone: bool = False) -> str | None:
        """The entity key the log has for this Moment object, or None (a scan of one table)."""
        for key, row in self.rows(kind).items():
            if row.fact.moment_id == moment_id and (include_gone or not row.gone):
                return key
        return None

    def known_ids(self, kind: str) -> dict[int, str]:
        """Moment id -> entity key of every managed (not gone) object of a kind."""
        return {row.fact.moment_id: key for key, row in self.rows(kind).items() if not row.gone}

    # --- snapshots ------------------------------------------------------------------------

    async def ingest(self, snapshot: normalizing.Snapshot) -> Outcome:
        """Record what ``snapshot`` says (see the module guarantees)."""
        kind = normalizing.kind_of(snapshot)
        async with self.locked(kind, snapshot.id):
            if isinstance(snapshot, shapes.Invoice):
                return await self._invoice(snapshot)
            fact = (normalizing.customer_fact(snapshot) if isinstance(snapshot, shapes.Customer)
                    else normalizing.project_fact(snapshot))
            if isinstance(fact, normalizing.Refusal):
                return await self._refuse(fact)
            row = self.rows(kind).get(fact.number)
            if row is not None and not row.gone and row.fact.moment_id == fact.moment_id:
                if fact.version < row.fact.version:
                    return Outcome.STALE
                if ev.content_hash(row.fact) == ev.content_hash(fact):
                    await self._unpark(kind, fact.number)
                    return Outcome.UNCHANGED
            key = normalizing.fact_key(fact)
            if row is not None and row.gone and row.fact.moment_id == fact.moment_id:
                # back after being recorded gone (DESIGN.md: gone is not forever); the same
                # snapshot's key is taken by the fact recorded before it went
                key = f"{key}:back:{row.seq}"
            appended = await self.log.append(fact, idempotency_key=key)
            await self._unpark(kind, fact.number)
            await self._unpark(kind, f"id:{fact.moment_id}")  # parked before it was known
            await self._renumbered(kind, fact.moment_id, fact.number)
            if appended.new:
                _log.info("moment fact recorded", kind=kind, key=fact.number,
                          moment_id=fact.moment_id, seq=appended.seq)
            return Outcome.APPENDED if appended.new else Outcome.UNCHANGED

    async def _invoice(self, invoice: shapes.Invoice) -> Outcome:
        if not invoice.is_fact:
            return Outcome.IGNORED
        number = normalizing.invoice_number_of(invoice)
        if number is None:
            refusal = normalizing.invoice_fact(invoice, pdf_sha256="", pdf_size=0)
            assert isinstance(refusal, normalizing.Refusal)
            return await self._refuse(refusal)
        key = str(number)
        row = self.log.tables.invoices().get(key)
        if row is not None:
            return await self._recorded(row, invoice)
        try:
            async with self.limiter:
                pdf = await pdfs.fetch_and_store(self.client, self.log, invoice.id,
                                                 max_bytes=self._pdf_max_bytes)
        except pdfs.PdfRefused as exc:
            return await self.park("invoice", invoice.id, key=key, reason=str(exc),
                                   token=f"v{invoice.version}:pdf")
        fact = normalizing.invoice_fact(invoice, pdf_sha256=pdf.sha256, pdf_size=pdf.size)
        assert isinstance(fact, ev.InvoiceFinalized)
        appended = await self.log.append(fact, idempotency_key=normalizing.fact_key(fact))
        row = self.log.tables.invoices().get(key)
        if row is not None and row.fact.moment_id != invoice.id:
            return await self._conflict(row.fact, invoice)
        await self._unpark("invoice", key)
        await self._unpark("invoice", f"id:{invoice.id}")  # a conflict or refusal, now fixed
        if appended.new:
            _log.info("moment fact recorded", kind="invoice", key=key, moment_id=invoice.id,
                      seq=appended.seq, pdf_size=pdf.size)
            return Outcome.APPENDED
        return Outcome.UNCHANGED

    async def _recorded(self, row: rw.DesiredInvoice, invoice: shapes.Invoice) -> Outcome:
        recorded = row.fact
        if recorded.moment_id != invoice.id:
            return await self._conflict(recorded, invoice)
        back = False
        if row.gone:
            # Moment shows it again (its 404 was a hiccup): managed again, with the PDF
            # recorded first (the one e-conomic gets)
            appended = await self.log.append(
                msgspec.structs.replace(recorded, version=invoice.version),
                idempotency_key=f"invoice:{recorded.number}:back:{row.seq}")
            back = appended.new
        await self._unpark("invoice", str(recorded.number))
        if invoice.status == "CREDITED" and recorded.status != "CREDITED":
            appended = await self.log.append(normalizing.credited(recorded, invoice),
                                             idempotency_key=normalizing.credited_key(
                                                 recorded.number))
            return Outcome.APPENDED if appended.new or back else Outcome.UNCHANGED
        return Outcome.APPENDED if back else Outcome.UNCHANGED

    async def _conflict(self, recorded: ev.InvoiceFinalized, invoice: shapes.Invoice) -> Outcome:
        number = recorded.number
        detail = (f"Moment invoice id {invoice.id} ({invoice.status}, "
                  f"{invoice.total_including_vat} {invoice.currency}) claims invoice number "
                  f"{number}, already recorded for Moment invoice id {recorded.moment_id}; the "
                  f"first is kept and this one is not transferred: give it its own number in "
                  f"Moment")
        appended = await self.log.append(
            ev.InvoiceConflict(number=number, moment_id=invoice.id,
                               recorded_moment_id=recorded.moment_id, detail=detail),
            idempotency_key=f"invoice-conflict:{number}:{invoice.id}")
        if appended.new:
            _log.warning("moment invoice number conflict", number=number, moment_id=invoice.id,
                         recorded_moment_id=recorded.moment_id, seq=appended.seq)
        await self.park("invoice", invoice.id, key=f"id:{invoice.id}", reason=detail,
                        token=f"conflict:{number}")
        return Outcome.CONFLICT

    # --- gone, parked ---------------------------------------------------------------------

    async def _renumbered(self, kind: str, moment_id: int, number: str) -> None:
        """The Moment object now has ``number``: its entity under an old number is gone (it is
        no longer managed; e-conomic keeps the old record, as for any object gone)."""
        old = [(key, row.seq) for key, row in self.rows(kind).items()
               if key != number and not row.gone and row.fact.moment_id == moment_id]
        for key, seq in old:
            appended = await self.log.append(
                ev.EntityGone(kind=kind, key=key, moment_id=moment_id,
                              detail=f"Moment renumbered this {kind} from {key} to {number}; "
                                     f"{number} is managed from now on and {key} no longer "
                                     f"(nothing is deleted in e-conomic)"),
                idempotency_key=f"gone:{kind}:{moment_id}:{seq}")
            if appended.new:
                _log.info("moment object renumbered", kind=kind, key=key, number=number,
                          moment_id=moment_id, seq=appended.seq)

    async def gone(self, kind: str, moment_id: int) -> Outcome:
        """Moment answered 404 for this object: record it gone when the log manages it."""
        async with self.locked(kind, moment_id):
            key = self.known_key(kind, moment_id)
            if key is None:
                return Outcome.UNKNOWN
            row = self.rows(kind)[key]
            appended = await self.log.append(
                ev.EntityGone(kind=kind, key=key, moment_id=moment_id,
                              detail=f"Moment has no {kind} with id {moment_id} any more; "
                                     f"it is no longer managed (nothing is deleted in "
                                     f"e-conomic)"),
                idempotency_key=f"gone:{kind}:{moment_id}:{row.seq}")
            if appended.new:
                _log.info("moment object gone", kind=kind, key=key, moment_id=moment_id,
                          seq=appended.seq)
            return Outcome.GONE

    async def park(self, kind: str, moment_id: int, *, key: str, reason: str,
                   token: str | None = None, attempts: int = 0,
                   last_error: str = "") -> Outcome:
        """Append ``Parked`` (source ingest). ``token`` makes a repeat of the same refusal of
        the same version collapse; without it every call records a new parking."""
        suffix = (f"{token}:{hashlib.sha256(reason.encode()).hexdigest()[:16]}"
                  if token is not None else uuid.uuid4().hex)
        appended = await self.log.append(
            ev.Parked(kind=kind, key=key, reason=reason, attempts=attempts,
                      last_error=last_error, source=SOURCE),
            idempotency_key=f"parked:{kind}:{moment_id}:{suffix}")
        if appended.new:
            _log.warning("moment object parked", kind=kind, key=key, moment_id=moment_id,
                         reason=reason, seq=appended.seq)
        return Outcome.PARKED

    async def _refuse(self, refusal: normalizing.Refusal) -> Outcome:
        return await self.park(refusal.kind, refusal.moment_id, key=refusal.key,
                               reason=refusal.reason, token=f"v{refusal.version}")

    async def _unpark(self, kind: str, key: str) -> None:
        if not self.log.tables.state(kind, key).parked:
            return
        for record in reversed(await self.log.read_entity(kind, key)):
            event = record.event
            if isinstance(event, ev.Parked):
                if event.source == SOURCE:
                    await self.log.append(ev.Unparked(kind=kind, key=key, by=SOURCE),
                                          idempotency_key=f"unparked:{kind}:{key}:{record.seq}")
                return
