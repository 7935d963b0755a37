"""The accountant's wording: what the daemon was doing, and why e-conomic refused it, as a
sentence that names the record, what is wrong, and what to do in Moment or e-conomic.

Pure: functions of an action name and an error; no I/O. Never put a token, a header or a
request body other than e-conomic's own field messages into a sentence.
"""

from __future__ import annotations

from typing import Final

from daemon.economic import errors
from daemon.moment import errors as moment_errors

_ACTIONS: Final = {"create_expense": "creating the expense in Moment",
                   "find_expense": "looking the expense up in Moment",
                   "put": "writing the customer", "create": "creating the project",
                   "update": "updating the project", "transfer": "creating the journal entry",
                   "attach": "attaching the PDF", "book": "booking the entry",
                   "read": "reading e-conomic",
                   "set_payment": "setting the invoice's paid status in Moment",
                   "read_payment": "reading the invoice's paid status in Moment"}


def describe(action: str) -> str:
    """What the daemon was doing, as words (``"put"`` → ``"writing the customer"``)."""
    return _ACTIONS.get(action, action)


def service_of(err: object) -> str:
    """Which service an error came from, as the sentence names it."""
    return "Moment" if isinstance(err, moment_errors.MomentError) else "e-conomic"


def kept_failing(action: str, attempts: int, *, service: str = "e-conomic") -> str:
    """Why an item whose retryable failures used up its attempts is parked."""
    return (f"{service} kept failing ({attempts} attempts) while {describe(action)}; it will "
            "be tried again when retried")


def explain_payment(invoice: str, moment_id: int, action: str,
                    err: moment_errors.MomentError) -> str:
    """A sentence an accountant can act on, for Moment refusing an invoice's paid status."""
    what = f"payment of invoice {invoice} (Moment id {moment_id})"
    if isinstance(err, moment_errors.Unauthorized):
        return (f"{what}: Moment refused the daemon's API key while {describe(action)}; "
                "create a new API key in Moment, update the daemon's moment-api-key, then "
                "retry")
    if isinstance(err, moment_errors.NotFound):
        return (f"{what}: Moment has no invoice with that id any more; if the invoice was "
                "deleted in Moment there is nothing to mark paid, otherwise resync the invoice "
                "and retry")
    if isinstance(err, moment_errors.RequestRejected) and err.status == 409:
        return (f"{what}: Moment says the invoice is a draft and cannot be paid; finalize "
                "it in Moment, then retry")
    return (f"{what}: Moment refused {describe(action)}: {err}; check the invoice in Moment "
            "and its customer entry in e-conomic, then retry")


def waiting_for(dep_kind: str, dep_key: str, reason: str) -> str:
    """Why an item whose dependency is parked is parked too."""
    return f"waiting for {dep_kind} {dep_key}, which is parked: {reason}"


def explain_moment(kind: str, key: str, action: str, err: moment_errors.MomentError, *,
                   project: str = "") -> str:
    """A sentence an accountant can act on, for Moment's terminal refusal of ``action``."""
    what = f"{kind} {key}"
    if isinstance(err, moment_errors.Unauthorized):
        return (f"{what}: Moment refused the daemon's API key while {describe(action)}; create "
                "a new API key in Moment and update the moment-api-key credential, then retry")
    if isinstance(err, moment_errors.RequestRejected):
        on = f" on project {project}" if project else ""
        return (f"{what}: Moment refused the expense{on} ({err.args[0]}); check that the "
                f"project exists in Moment and that the entry in e-conomic is right, then retry")
    return f"{what}: Moment refused {describe(action)}: {err}"


def explain(kind: str, key: str, action: str,
            err: errors.EconomicError | moment_errors.MomentError) -> str:
    """A sentence an accountant can act on, for a terminal refusal."""
    what = f"{kind} {key}"
    if isinstance(err, moment_errors.MomentError):
        return explain_moment(kind, key, action, err)
    if isinstance(err, errors.MissingModule):
        return (f"{what}: the e-conomic agreement has no project module (Projektstyring); "
                "enable it in e-conomic, then retry")
    if isinstance(err, errors.Unauthorized):
        return (f"{what}: e-conomic refused the daemon's tokens; install the app again and "
                "update the agreement grant token, then retry")
    if isinstance(err, errors.Forbidden):
        return (f"{what}: the app's role in e-conomic does not allow {describe(action)}; "
                "give the app the SuperUser role, then retry")
    if isinstance(err, errors.ValidationError):
        detail = "; ".join(f"{k or 'request'}: {' '.join(v)}" for k, v in err.fields.items())
        return (f"{what}: e-conomic refused {describe(action)}"
                f"{' (' + err.code + ')' if err.code else ''}: {detail or err.message}; "
                "fix the data in Moment or the settings in e-conomic, then retry")
    return f"{what}: e-conomic refused {describe(action)}: {err}"
