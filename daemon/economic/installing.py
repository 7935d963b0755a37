"""Install and keep installed the daemon's e-conomic webhooks (DESIGN.md, "e-conomic webhook
receiver"), and say how they stand.

One webhook per kind the daemon wants (:attr:`Plan.kinds`), of the event type
``[economic] webhook_events`` names: URL ``webhook_url`` + ``/webhooks/economic/`` + token,
content type JSON, the kind's ``postData`` template (:func:`daemon.core.webhooks.post_data`),
and the token again in the ``X-Moment-Sync-Token`` custom header. A webhook of the daemon's
is one whose URL starts with ``webhook_url`` + ``/webhooks/economic/``; one of that event type
under any other URL is someone else's, left alone and reported (``foreign``).

:func:`survey` only reads (``status``, ``check``). :func:`install` creates what is missing,
updates one of the daemon's that has other settings (never a second one: e-conomic allows one
per type, and a ``WebhookAlreadyExistsForEventType`` on create means one appeared meanwhile,
which is then read and updated), and re-enables one e-conomic disabled, saying so.
:func:`remove` deletes only the daemon's own. Each returns a :class:`Report`: a state per kind
(``installed``, ``missing``, ``disabled``, ``differs``, ``foreign``, ``unknown``: e-conomic does
not offer the event type) and what was done. No text here holds the token: e-conomic's error
messages may quote the URL, so every one is scrubbed before it is kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Final

from daemon.core import webhooks as hooks
from daemon.core.secrets import REDACTED, Secret
from daemon.economic import client as economic_client
from daemon.economic import errors
from daemon.economic import webhooks as api

STATES: Final = ("installed", "missing", "disabled", "differs", "foreign", "unknown")


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """What the daemon wants: ``kinds`` of ``events`` (kind -> event type) under ``url``."""

    url: str
    token: Secret
    events: Mapping[str, str]
    kinds: Sequence[hooks.Kind]

    @property
    def prefix(self) -> str:
        return hooks.url_prefix(self.url)

    def want(self, kind: hooks.Kind) -> api.WebhookWrite:
        """The webhook of ``kind`` as it should be (reveals the token: never log it)."""
        token = self.token.reveal()
        return api.WebhookWrite(
            eventType=self.events[kind], name=f"{hooks.NAME} {kind}",
            url=self.prefix + token, contentType=hooks.CONTENT_TYPE,
            postData=hooks.post_data(kind, self.events[kind]),
            customHeaders=[api.Header(key=hooks.TOKEN_HEADER, value=token)])

    def scrub(self, text: str) -> str:
        return text.replace(self.token.reveal(), REDACTED) if self.token else text


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One wanted kind: its event type, state, and what was done or is wrong (a sentence)."""

    kind: hooks.Kind
    event_type: str
    state: str
    detail: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Report:
    entries: tuple[Entry, ...] = ()
    #: why the webhooks could not be read or written at all ("" when they could)
    error: str = ""
    #: what :func:`install` changed, one sentence each
    done: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.error and all(e.state == "installed" for e in self.entries)

    @property
    def installed(self) -> list[str]:
        return [e.event_type for e in self.entries if e.state == "installed"]

    def lines(self) -> list[str]:
        """``moment-sync webhooks status``: one line per event type."""
        out = [f"{e.event_type:<22} {e.state:<10} {e.detail}".rstrip() for e in self.entries]
        if self.error:
            out.append(f"error: {self.error}")
        return out

    def summary(self) -> str:
        """One sentence for the ``webhooks`` check."""
        if self.error:
            return f"the webhooks could not be read: {self.error}"
        if self.ok:
            return f"installed and enabled: {', '.join(self.installed)}"
        wrong = "; ".join(f"{e.event_type} {e.state}" + (f" ({e.detail})" if e.detail else "")
                          for e in self.entries if e.state != "installed")
        return f"not all installed: {wrong}; those kinds rely on the sweeps"


def _state(plan: Plan, kind: hooks.Kind, found: api.Webhook | None) -> Entry:
    event = plan.events[kind]
    if found is None:
        return Entry(kind, event, "missing")
    if not found.url.startswith(plan.prefix):
        return Entry(kind, event, "foreign",
                     "another app's webhook has this event type; it is left alone")
    want = plan.want(kind)
    same = (found.url, found.contentType, found.postData or "", found.customHeaders or []) == \
        (want.url, want.contentType, want.postData or "", want.customHeaders or [])
    if not same:
        return Entry(kind, event, "differs")
    if found.isDisabled:
        since = f" since {found.lastDisabledDate}" if found.lastDisabledDate else ""
        return Entry(kind, event, "disabled", f"e-conomic disabled it{since}")
    return Entry(kind, event, "installed")


async def _read(webhooks: api.WebhooksApi) -> tuple[set[str], dict[str, api.Webhook]]:
    offered = {t.name for t in await webhooks.event_types() if t.name}
    return offered, {w.eventType: w for w in await webhooks.listing()}


def _error(plan: Plan, err: errors.EconomicError) -> str:
    return plan.scrub(str(err))


async def survey(client: economic_client.EconomicClient, plan: Plan) -> Report:
    """How the wanted webhooks stand (reads only)."""
    try:
        offered, found = await _read(api.WebhooksApi(client))
    except errors.EconomicError as err:
        return Report(error=_error(plan, err))
    entries = []
    for kind in plan.kinds:
        event = plan.events[kind]
        if event not in offered:
            entries.append(Entry(kind, event, "unknown",
                                 f"e-conomic offers no event type {event}; fix "
                                 f"[economic] webhook_events.{kind}"))
        else:
            entries.append(_state(plan, kind, found.get(event)))
    return Report(entries=tuple(entries))


async def install(client: economic_client.EconomicClient, plan: Plan) -> Report:
    """Create, update or re-enable each wanted webhook of the daemon's; see the module doc.
    A webhook e-conomic refuses to write leaves its kind in the state it was found in, with
    e-conomic's reason; the other kinds go on."""
    webhooks = api.WebhooksApi(client)
    before = await survey(client, plan)
    if before.error:
        return before
    entries: list[Entry] = []
    done: list[str] = []
    for entry in before.entries:
        if entry.state in ("installed", "foreign", "unknown"):
            entries.append(entry)
            continue
        kind = entry.kind
        try:
            said = await _put_in_place(webhooks, plan, kind, entry)
        except errors.EconomicError as err:
            entries.append(dataclasses.replace(
                entry, detail=f"e-conomic refused the change: {_error(plan, err)}"))
            continue
        done.append(said)
        entries.append(Entry(kind, entry.event_type, "installed", said))
    return Report(entries=tuple(entries), done=tuple(done))


async def _put_in_place(webhooks: api.WebhooksApi, plan: Plan, kind: hooks.Kind,
                        entry: Entry) -> str:
    """Make ``kind``'s webhook as wanted; returns what was done (a sentence)."""
    want = plan.want(kind)
    if entry.state == "missing":
        try:
            await webhooks.create(want)
            return f"{want.eventType} installed"
        except errors.ValidationError as err:
            if err.code != api.ALREADY_EXISTS:
                raise
        # created by someone meanwhile: read it, and update it if it is ours
    for attempt in range(2):
        found = await webhooks.get(want.eventType)
        if found is None:
            await webhooks.create(want)
            return f"{want.eventType} installed"
        state = _state(plan, kind, found)
        if state.state in ("installed", "foreign"):
            return f"{want.eventType} {state.state}"
        try:
            await webhooks.update(api.WebhookWrite(
                **{f: getattr(want, f) for f in want.__struct_fields__
                   if f != "objectVersion"}, objectVersion=found.objectVersion))
        except errors.Conflict:
            if attempt:
                raise
            continue  # changed in between: read it again
        if state.state == "disabled":
            return f"{want.eventType} was disabled by e-conomic and is enabled again"
        return f"{want.eventType} updated to the daemon's settings"
    raise AssertionError("unreachable")  # pragma: no cover


async def remove(client: economic_client.EconomicClient, plan: Plan) -> Report:
    """Delete the daemon's own webhooks of every event type in ``plan.events`` (others' are
    left alone); returns how they stand afterwards."""
    webhooks = api.WebhooksApi(client)
    done: list[str] = []
    try:
        found = {w.eventType: w for w in await webhooks.listing()}
        for event in plan.events.values():
            hook = found.get(event)
            if hook is not None and hook.url.startswith(plan.prefix):
                await webhooks.delete(event)
                done.append(f"{event} removed")
    except errors.EconomicError as err:
        return Report(error=_error(plan, err), done=tuple(done))
    after = await survey(client, plan)
    return dataclasses.replace(after, done=tuple(done))
