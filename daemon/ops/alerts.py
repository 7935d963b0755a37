"""The alerts the daemon mails, in words an accountant can act on: pure data, no I/O.

Every :class:`Alert` names what it is about (``entity``), says what went wrong (``problem``) and
what to do (``action``). The constructors below are the only way the daemon builds them, so the
wording lives in one place. No alert ever carries a token, a header or a raw response body: the
callers pass reasons and e-conomic error codes, and :func:`_clean` keeps each text on one
paragraph of bounded length.
"""

from __future__ import annotations

import enum
from typing import Final

import msgspec

_MAX_TEXT: Final = 600


class AlertKind(enum.StrEnum):
    """One throttle window per kind."""

    PARKED = "parked"
    TOKENS_REJECTED = "tokens_rejected"
    CHECK_FAILED = "check_failed"
    PDF_NOT_ATTACHED = "pdf_not_attached"
    DRIFT_REPAIRED = "drift_repaired"
    WARNING = "warning"
    BOOKED_MISMATCH = "booked_mismatch"


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One thing a person should know about."""

    kind: AlertKind
    severity: Severity
    entity: str
    problem: str
    action: str
    at: float  # Unix time when the daemon noticed it


#: What to do when a preflight check fails, by check name (DESIGN.md's ``check`` command).
CHECK_ADVICE: Final[dict[str, str]] = {
    "tokens": "Reconnect the moment-sync app in e-conomic (Settings → Apps) and store the new "
              "agreement grant token in the credential economic-agreement-grant-token.",
    "project_module": "Activate the Projects module in e-conomic (Settings → Subscription). "
                      "Customers and invoices without a project keep syncing meanwhile.",
    "customer_group": "Create the customer group in e-conomic (Settings → Customers → Customer "
                      "groups), or set [economic] customer_group to one that exists.",
    "payment_terms": "Create the payment terms in e-conomic (Settings → Payment terms), or set "
                     "[economic] payment_terms to one that exists.",
    "currency": "Check [economic] currency: it must be a currency e-conomic offers, such as DKK.",
    "project_group": "Create the project group in e-conomic (Projects → Settings → Project "
                     "groups), or set [economic] project_group to one that exists; "
                     "[economic] internal_project_group must be an internal group (type "
                     "Internal), or 0.",
    "journal": "Create the journal in e-conomic (Accounting → Journals), or set [economic] "
               "journal_number to one that exists.",
    "default_account": "Create the account in the chart of accounts, or set [economic] "
                       "default_account to an existing operating account.",
    "vat_zones": "Make [economic] vat_zones name VAT zones that exist in e-conomic.",
    "invoice_vat_code": "Set [economic] invoice_vat_code to a VAT code that exists in e-conomic "
                        "(Settings → VAT), or leave it empty.",
    "accounting_year": "Create the accounting year covering today in e-conomic (Accounting → "
                       "Accounting years).",
    "replication": "Read Litestream's own log (journalctl -u moment-sync-replica@NAME, or the "
                   "sidecar's): create the bucket, or correct the replica's credentials, then "
                   "restart Litestream. moment-sync keeps syncing meanwhile, but a host lost "
                   "now loses what the replica lacks.",
    "webhooks": "Run `moment-sync webhooks status`: a webhook another app holds for an event "
                "type, or one e-conomic will not take, leaves that kind to the sweeps (every "
                "reconcile_interval); remove the other app's webhook in e-conomic, or fix "
                "[economic] webhook_url or webhook_events, then `moment-sync webhooks install`.",
    "config": "Correct the configuration file; the daemon keeps running with the previous one "
              "until a reload succeeds.",
}

_GENERIC_CHECK_ADVICE: Final = (
    "Correct the setting in e-conomic or in the configuration file, then run "
    "`moment-sync check` to confirm."
)


def _clean(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


#: The kinds that flow from e-conomic into Moment.
INTO_MOMENT: Final = frozenset({"payment", "expense"})


def _entity(kind: str, key: str) -> str:
    return f"{kind} {key}"


def item_parked(*, kind: str, key: str, reason: str, at: float, advice: str = "") -> Alert:
    """An item stopped syncing until someone acts; ``reason`` is the park reason sentence.

    ``advice`` overrides the generic action (the reason usually already says what to fix).
    """
    retry = f"`moment-sync parked --retry {kind} {key}`"
    action = advice or (
        f"Fix what the reason above describes (in e-conomic or in Moment), then run {retry} "
        "or wait for the next full reconcile."
    )
    # the kinds e-conomic's books bring into Moment go the other way
    where = "Moment" if kind in INTO_MOMENT else "e-conomic"
    return Alert(
        kind=AlertKind.PARKED, severity=Severity.ERROR, entity=_entity(kind, key),
        problem=_clean(f"It is not being copied to {where}: {reason}"),
        action=_clean(action), at=at,
    )


def tokens_rejected(*, detail: str, at: float) -> Alert:
    """e-conomic refused the daemon's tokens (401/403 on every call): nothing syncs."""
    return Alert(
        kind=AlertKind.TOKENS_REJECTED, severity=Severity.ERROR, entity="the e-conomic agreement",
        problem=_clean(
            "e-conomic refused moment-sync's access tokens, so nothing is being copied to "
            f"e-conomic until this is fixed ({detail})."
        ),
        action=CHECK_ADVICE["tokens"] + " Then restart moment-sync.", at=at,
    )


def check_failed(*, name: str, detail: str, at: float) -> Alert:
    """A preflight check failed (at start, on a full sweep, or on a reload)."""
    return Alert(
        kind=AlertKind.CHECK_FAILED, severity=Severity.ERROR, entity=f"preflight check {name}",
        problem=_clean(detail),
        action=CHECK_ADVICE.get(name, _GENERIC_CHECK_ADVICE), at=at,
    )


def pdf_not_attached(*, invoice: str, reason: str, at: float) -> Alert:
    """The invoice was booked but its PDF could not be attached (a warning, not a failure)."""
    return Alert(
        kind=AlertKind.PDF_NOT_ATTACHED, severity=Severity.WARNING,
        entity=_entity("invoice", invoice),
        problem=_clean(
            "The invoice is entered in e-conomic, but its PDF could not be attached to the "
            f"voucher: {reason}"
        ),
        action=(
            "Attach the PDF to the voucher by hand in e-conomic, or move the agreement to a "
            "package that allows attached documents. Nothing else needs to be done."
        ), at=at,
    )


def drift_repaired(*, kind: str, key: str, fields: list[str], at: float) -> Alert:
    """Someone changed a field Moment owns in e-conomic; the daemon put Moment's value back."""
    what = ", ".join(fields) if fields else "the record"
    problem = (f"The {kind} was missing in e-conomic (deleted or renumbered there) and was "
               "created again under Moment's number." if fields == ["missing"] else
               f"{what} had been changed in e-conomic and was set back to Moment's value.")
    return Alert(
        kind=AlertKind.DRIFT_REPAIRED, severity=Severity.INFO, entity=_entity(kind, key),
        problem=_clean(problem),
        action=(
            "Nothing, unless the change in e-conomic was meant: Moment is the master for "
            "these fields, so make such changes in Moment."
        ), at=at,
    )


def entity_warning(*, kind: str, key: str, warning: str, at: float) -> Alert:
    """The entity went to e-conomic, but not quite as Moment has it (an invoice entered
    without its parked project, say): ``warning`` says how and why."""
    return Alert(
        kind=AlertKind.WARNING, severity=Severity.WARNING, entity=_entity(kind, key),
        problem=_clean(f"It is in e-conomic, with a warning: {warning}"),
        action=_clean(
            "Fix what the warning names (in e-conomic or in Moment) if it matters; the "
            f"{kind} itself needs nothing more. `moment-sync events --entity {kind}:{key}` "
            "shows its history."), at=at,
    )


def booked_mismatch(*, invoice: str, fields: list[str], note: str, at: float) -> Alert:
    """A booked invoice differs from e-conomic's booked entry (``note`` names it, what differs
    with both values, and that booked entries are never edited)."""
    del fields  # named in the note, with their values
    return Alert(
        kind=AlertKind.BOOKED_MISMATCH, severity=Severity.WARNING,
        entity=_entity("invoice", invoice), problem=_clean(note),
        action=("Check the booked entry in e-conomic. If it is wrong, correct it there with a "
                "new entry or a credit note; the daemon never edits booked entries."), at=at,
    )
