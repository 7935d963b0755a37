"""The daemon's e-conomic webhooks, as data: which it installs, what they send, what it takes.

DESIGN.md, "e-conomic webhook receiver". Per kind (``customer``, ``project``, ``daybook``) one
webhook of the event type ``[economic] webhook_events`` names, whose ``postData`` template
(:func:`post_data`) makes e-conomic send a small JSON object of merge fields, and whose URL
starts with :func:`url_prefix` (the daemon's own: a webhook of that event type under another URL
is someone else's and is left alone). :func:`decode_hint` takes such a body back, strictly: a
body that is not one answers 400 with the sentence it raises.

Pure: no I/O, and no secret (the token is added to the URL and the header by the installer,
the one place that reveals it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

import msgspec

from daemon.core import strictjson

Kind = Literal["customer", "project", "daybook"]
KINDS: Final[tuple[Kind, ...]] = ("customer", "project", "daybook")
#: the kinds a hint names record numbers of (a day-book hint names vouchers)
RECORD_KINDS: Final = ("customer", "project")
PATH: Final = "/webhooks/economic/"
TOKEN_HEADER: Final = "X-Moment-Sync-Token"  # noqa: S105 (a header name, not a secret)
CONTENT_TYPE: Final = "application/json"
NAME: Final = "moment-sync"
DEFAULT_EVENTS: Final[Mapping[str, str]] = {"customer": "CUSTOMER_UPDATED",
                                            "project": "PROJECT_UPDATED",
                                            "daybook": "DAYBOOK_BOOKED"}
#: the merge fields of each kind's template, by the key they fill
MERGE_FIELDS: Final[Mapping[str, Mapping[str, str]]] = {
    "customer": {"old": "[OLDNUMBER]", "new": "[NEWNUMBER]"},
    "project": {"old": "[OLDNUMBER]", "new": "[NEWNUMBER]"},
    "daybook": {"daybook": "[DAYBOOKNO]", "from": "[FROMSERIALNO]", "to": "[TOSERIALNO]"},
}
_MAX_DIGITS: Final = 18


class HintError(strictjson.BodyError):
    """A body that is not one of the daemon's e-conomic hints; ``str()`` says why (a 400)."""


class Hint(msgspec.Struct, frozen=True, kw_only=True):
    """One decoded hint: ``old``/``new`` for a record kind (either may be empty: a creation
    has no old number, a deletion no new one), ``daybook``/``first``/``last`` for a day book."""

    kind: Kind
    event: str
    old: str = ""
    new: str = ""
    daybook: str = ""
    first: str = ""
    last: str = ""

    def numbers(self) -> tuple[int, ...]:
        """The record numbers named, each once (old first)."""
        return tuple(dict.fromkeys(int(n) for n in (self.old, self.new) if n))


def url_prefix(webhook_url: str) -> str:
    """What the URL of every webhook of the daemon's starts with (the token follows)."""
    return webhook_url.rstrip("/") + PATH


def post_data(kind: Kind, event_type: str) -> str:
    """The ``postData`` template of ``kind``'s webhook: its event type, then its merge fields."""
    return msgspec.json.encode({"event": event_type, **MERGE_FIELDS[kind]}).decode()


def _number(top: Mapping[str, object], key: str) -> str:
    value = top.get(key, "")
    if not isinstance(value, str):
        raise HintError(f"{key} must be a string, got {strictjson.describe(value)}")
    value = value.strip()
    if value and (not value.isascii() or not value.isdigit() or len(value) > _MAX_DIGITS):
        raise HintError(f"{key} must be empty or a whole number, got {value[:40]!r}")
    return str(int(value)) if value else ""


def decode_hint(body: bytes, events: Mapping[str, str]) -> Hint:
    """Decode one delivery, or raise :class:`HintError` saying why. ``events`` maps each kind
    the daemon installed to its event type; the body's ``event`` must be one of them.

    Accepted: an object with a string ``event``; for a record kind ``old`` and ``new``, each a
    string that is empty or a whole number, at least one not empty; for the day book
    ``daybook``, ``from`` and ``to`` likewise (all may be empty: the read starts from the
    cursor whatever they name). Keys other than these are refused (the daemon wrote the
    template)."""
    try:
        data = strictjson.loads(body, what="an e-conomic hint")
    except strictjson.BodyError as exc:
        raise HintError(str(exc)) from None
    if not isinstance(data, dict):
        raise HintError(f"body must be an object, got {strictjson.describe(data)}")
    if "event" not in data:
        raise HintError("event is missing")
    event = data["event"]
    if not isinstance(event, str):
        raise HintError(f"event must be a string, got {strictjson.describe(event)}")
    kind = next((k for k in KINDS if events.get(k) == event), None)
    if kind is None:
        known = ", ".join(sorted(v for k, v in events.items() if k in KINDS)) or "none"
        raise HintError(f"event {event[:60]!r} is not one of the daemon's webhooks ({known})")
    allowed = {"event", *MERGE_FIELDS[kind]}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise HintError(f"unknown key {unknown[0]!r} in a {event} hint; expected "
                        f"{', '.join(sorted(allowed))}")
    if kind == "daybook":
        return Hint(kind=kind, event=event, daybook=_number(data, "daybook"),
                    first=_number(data, "from"), last=_number(data, "to"))
    old, new = _number(data, "old"), _number(data, "new")
    if not old and not new:
        raise HintError(f"a {event} hint must name old or new: both are empty")
    return Hint(kind=kind, event=event, old=old, new=new)
