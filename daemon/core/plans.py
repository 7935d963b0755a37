"""Plans: what the daemon must do to bring one e-conomic record to its desired state.

``plan(desired, live)`` is a pure function of the mapped desired fields
(:mod:`daemon.core.mapping`) and the live record as the shell read it (converted to the
``Live*`` structs here, so the core never sees the client's types). It returns one action.
Whether the daemon "had applied it before" is :func:`applied_before`, and which fields a write
repairs as drift is :func:`drift`: each written once, for every caller. Also here: the typed
report of ``moment-sync plan`` (:class:`PlanReport`), shared by the daemon that produces it and
the CLI that decodes and renders it.

Invariants:
- only fields Moment owns are ever changed (:data:`mapping.OWNED_CUSTOMER_FIELDS`,
  :data:`mapping.OWNED_PROJECT_FIELDS`); everything else a person keeps in e-conomic survives,
  because the shell merges the changes into the live record it read;
- a customer or project missing under Moment's number is re-created under it (``recreate`` when
  the daemon had applied it before), and records that look like it under another number are
  reported as strays; nothing is ever deleted;
- accounting entries are never edited: a booked invoice that no longer matches is reported;
- a closed project cannot be reopened by any client: it is reported, not written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Final, Literal

import msgspec

from daemon.core import countries
from daemon.core import mapping as mp
from daemon.core import rows as rw


class LiveCustomer(msgspec.Struct, frozen=True, kw_only=True):
    """A legacy ``/customers`` record; absent strings are ``""``."""

    number: int
    name: str = ""
    email: str = ""
    corporate_id: str = ""
    address: str = ""
    zip: str = ""
    city: str = ""
    country: str = ""
    vat_zone: int | None = None
    last_updated: str = ""


class LiveProject(msgspec.Struct, frozen=True, kw_only=True):
    number: int
    name: str = ""
    customer_number: int | None = None
    project_group: int | None = None
    closed: bool = False
    barred: bool = False
    object_version: str = ""
    last_updated: str = ""


class LiveEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A type-10 draft or booked entry of an invoice, as found by a lookup."""

    entry_number: int
    voucher_number: int
    invoice_number: str
    customer_number: int | None
    amount: Decimal
    date: str  # YYYY-MM-DD
    booked: bool = False
    journal_number: int | None = None  # a draft's journal (booked entries do not say)


ActionName = Literal["nothing", "create", "update", "recreate", "report_closed", "transfer",
                     "attach", "book", "report_booked_mismatch", "wait"]
WRITES: Final[frozenset[str]] = frozenset(("create", "update", "recreate", "transfer", "attach",
                                           "book"))


class Action(msgspec.Struct, frozen=True, kw_only=True):
    """One step. ``fields`` names the owned fields that differ (for ``update``);
    ``detail`` says why in words for reports."""

    name: ActionName
    fields: tuple[str, ...] = ()
    detail: str = ""

    @property
    def writes(self) -> bool:
        return self.name in WRITES


NOTHING: Final = Action(name="nothing")


def applied_before(state: rw.EntityState) -> bool:
    """The daemon put this entity into e-conomic before (so a missing record was deleted or
    renumbered there: ``recreate``, not ``create``)."""
    return bool(state.applied_hash) or state.economic_number is not None


def drift(action: Action, *, applied_hash: str, content: str) -> tuple[str, ...]:
    """The fields a write of ``action`` repairs that someone changed in e-conomic: all of an
    ``update`` when what was last applied is still what Moment wants (otherwise Moment changed
    and this is an ordinary update), ``missing`` for a ``recreate``, else none."""
    if action.name == "recreate":
        return ("missing",)
    if action.name == "update" and applied_hash == content:
        return action.fields
    return ()


def _norm(value: object) -> object:
    return "" if value is None else value


def _differs(field: str, desired: mp.CustomerFields, live: LiveCustomer) -> bool:
    if field == "country" and desired.country_code:
        # any name of the same country, in any language or case, is the same country
        return not countries.same(live.country, desired.country_code)
    if field == "country":
        return bool(live.country.strip())
    return _norm(getattr(live, field)) != _norm(getattr(desired, field))


def customer_diff(desired: mp.CustomerFields, live: LiveCustomer) -> tuple[str, ...]:
    """The owned fields whose live value differs from the desired one (``None`` == ``""``):
    never a field Moment does not own (``desired.unowned``); the VAT zone only while Moment
    states a VAT code, or together with the country (a zone derived from the country is the
    accountant's once written)."""
    out = [f for f in mp.OWNED_CUSTOMER_FIELDS
           if f != "vat_zone" and f not in desired.unowned and _differs(f, desired, live)]
    if (desired.zone_owned or "country" in out) and live.vat_zone != desired.vat_zone:
        out.append("vat_zone")
    return tuple(out)


def customer_writes(desired: mp.CustomerFields, live: LiveCustomer | None) -> tuple[str, ...]:
    """The owned fields a write sets from Moment: on creation every one Moment owns, else only
    those that differ; every other field keeps e-conomic's value."""
    if live is None:
        return tuple(f for f in mp.OWNED_CUSTOMER_FIELDS if f not in desired.unowned)
    return customer_diff(desired, live)


def plan_customer(desired: mp.CustomerFields, live: LiveCustomer | None, *,
                  applied_before: bool) -> Action:
    if live is None:
        if applied_before:
            return Action(name="recreate", detail=f"customer {desired.number} is missing in "
                                                  "e-conomic (deleted or renumbered there)")
        return Action(name="create")
    changed = customer_diff(desired, live)
    return Action(name="update", fields=changed) if changed else NOTHING


def project_diff(desired: mp.ProjectFields, live: LiveProject) -> tuple[str, ...]:
    out = []
    if live.name != desired.name:
        out.append("name")
    if live.customer_number != desired.customer_number:
        out.append("customer_number")
    if live.barred:
        out.append("barred")
    return tuple(out)


def plan_project(desired: mp.ProjectFields, live: LiveProject | None, *,
                 applied_before: bool) -> Action:
    if live is None:
        if applied_before:
            return Action(name="recreate", detail=f"project {desired.number} is missing in "
                                                  "e-conomic (deleted or renumbered there)")
        return Action(name="create")
    if live.closed:
        return Action(name="report_closed",
                      detail=f"project {desired.number} is closed in e-conomic, and no program "
                             "can reopen it; reopen it in e-conomic, or close it in Moment too")
    changed = project_diff(desired, live)
    return Action(name="update", fields=changed) if changed else NOTHING


class InvoiceProgress(msgspec.Struct, frozen=True, kw_only=True):
    """What the log says has happened to an invoice (from its EntityState)."""

    entry_created: bool = False
    pdf_done: bool = False
    booked: bool = False
    applied_hash: str = ""


def progress_of(state: rw.EntityState) -> InvoiceProgress:
    return InvoiceProgress(entry_created=state.voucher_number is not None,
                           pdf_done=state.pdf_done, booked=state.booked,
                           applied_hash=state.applied_hash)


def entry_matches(desired: mp.InvoiceEntry, live: LiveEntry) -> bool:
    """The lookup's comparison: invoice number, amount and date (DESIGN.md)."""
    return (live.invoice_number.strip() == str(desired.invoice_number)
            and live.amount == desired.amount and live.date[:10] == desired.date)


def plan_invoice(desired: mp.InvoiceEntry, progress: InvoiceProgress, *, include_pdf: bool,
                 auto_book: bool, desired_hash: str) -> Action:
    """The next step of an invoice's transfer, from what the log recorded."""
    if not progress.entry_created:
        return Action(name="transfer")
    if include_pdf and not progress.pdf_done:
        return Action(name="attach")
    if auto_book and not progress.booked:
        return Action(name="book")
    # only Moment's own content recorded at sending counts (mp.invoice_content); a digest an
    # older daemon recorded of its mapping is no evidence that Moment changed anything
    if (progress.booked and progress.applied_hash.startswith(mp.CONTENT_PREFIX)
            and progress.applied_hash != desired_hash):
        return Action(name="report_booked_mismatch",
                      detail=f"invoice {desired.invoice_number} changed in Moment after it was "
                             "booked in e-conomic; booked entries are never edited: correct it "
                             "with a credit note")
    return NOTHING


def plan(desired: mp.CustomerFields | mp.ProjectFields,
         live: LiveCustomer | LiveProject | None, *, applied_before: bool = False) -> Action:
    """The one action for a customer or project (see the module docstring)."""
    if isinstance(desired, mp.CustomerFields):
        assert live is None or isinstance(live, LiveCustomer)
        return plan_customer(desired, live, applied_before=applied_before)
    assert live is None or isinstance(live, LiveProject)
    return plan_project(desired, live, applied_before=applied_before)


class Stray(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    number: int
    managed_key: str
    note: str


def find_strays(managed: Sequence[mp.CustomerFields], live: Iterable[LiveCustomer],
                moment_numbers: set[int]) -> list[Stray]:
    """e-conomic customers under a number Moment does not use whose organization number, or
    else name and e-mail, equal a managed customer's. Other e-conomic-only records are left
    alone and not reported."""
    by_org: dict[str, mp.CustomerFields] = {}
    by_name: dict[tuple[str, str], mp.CustomerFields] = {}
    for c in managed:
        if c.corporate_id.strip():
            by_org.setdefault(c.corporate_id.strip(), c)
        by_name.setdefault((c.name.strip().lower(), c.email.strip().lower()), c)
    out: list[Stray] = []
    for rec in live:
        if rec.number in moment_numbers:
            continue
        org = rec.corporate_id.strip()
        match = by_org.get(org) if org else None
        how = "organization number"
        if match is None and not org:
            match = by_name.get((rec.name.strip().lower(), rec.email.strip().lower()))
            how = "name and e-mail"
        if match is not None:
            out.append(Stray(kind="customer", number=rec.number, managed_key=str(match.number),
                             note=f"e-conomic customer {rec.number} has the same {how} as "
                                  f"Moment's customer {match.number}; it was left as it is "
                                  "(merge or delete it in e-conomic if it is a duplicate)"))
    return out


def find_project_strays(managed: Sequence[mp.ProjectFields], live: Iterable[LiveProject],
                        moment_numbers: set[int]) -> list[Stray]:
    """e-conomic projects under a number Moment does not use with a managed project's name and
    customer (a renumbered project): reported, never deleted."""
    by_name = {(p.name.strip().lower(), p.customer_number): p for p in managed}
    out: list[Stray] = []
    for rec in live:
        if rec.number in moment_numbers:
            continue
        match = by_name.get((rec.name.strip().lower(), rec.customer_number))
        if match is not None:
            out.append(Stray(kind="project", number=rec.number, managed_key=str(match.number),
                             note=f"e-conomic project {rec.number} has the name and customer of "
                                  f"Moment's project {match.number}; it was left as it is"))
    return out


# --- the report of ``moment-sync plan`` (DESIGN.md: plan's JSON) ----------------------------
# Produced by :mod:`daemon.reconcile.planning`, sent by ``GET /plan``, decoded and rendered by
# the CLI. Decoding is lenient (unknown fields are ignored, missing ones take their default),
# so a CLI and a daemon of different versions still understand each other.


class PlannedAction(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    action: str
    fields: list[str] = []
    detail: str = ""


class KindPlan(msgspec.Struct, kw_only=True):
    desired: int = 0
    pending: int = 0
    actions: list[PlannedAction] = []


class PlanNote(msgspec.Struct, frozen=True, kw_only=True):
    """A parked item or a mapping problem: listed, not counted."""

    kind: str
    key: str
    reason: str = ""


class PlanStray(msgspec.Struct, frozen=True, kw_only=True):
    kind: str = "customer"
    number: int | str = 0
    managed_key: str = ""
    note: str = ""
    reported_at: str | msgspec.UnsetType = msgspec.UNSET  # present once reported in the log


class EconomicOnly(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    number: int


class PlanReport(msgspec.Struct, kw_only=True):
    """``pending`` counts only changes the daemon would make; parked items, mapping problems,
    strays and e-conomic-only records are listed but not counted."""

    pending: int = 0
    kinds: dict[str, KindPlan] = {}
    parked: list[PlanNote] = []
    problems: list[PlanNote] = []
    strays: list[PlanStray] = []
    economic_only: list[EconomicOnly] = []


class PlanDecodeError(ValueError):
    """A plan answer that is not the documented shape."""


def decode_plan(data: bytes) -> PlanReport:
    """Plan JSON (``GET /plan``, ``plan --json``) into a :class:`PlanReport`."""
    try:
        return msgspec.json.decode(data, type=PlanReport)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise PlanDecodeError(f"the daemon's /plan answer is not understood: {exc}") from None
