"""webhooksapi v1.0.0 (``openapi-webhooks-api.json``; REFERENCE.md section 8): the event types
and the webhooks of the agreement, typed.

:class:`WebhooksApi` goes through the client's caller (its rate limit, daily budget and error
classes); like every client method it returns Structs or raises a
:mod:`daemon.economic.errors` error. A :class:`Webhook`'s ``url`` and ``customHeaders`` hold the
daemon's webhook token: never log a webhook, and never put one in an error or an event.
"""

from __future__ import annotations

from typing import Final

from daemon.economic import client as economic_client
from daemon.economic import errors
from daemon.economic.calling import new_idempotency_key
from daemon.economic.payloads import Payload

WEBHOOKS: Final = "webhooksapi/v1.0.0"
ALREADY_EXISTS: Final = "WebhookAlreadyExistsForEventType"
READ_ONLY: Final = "WebhookReadOnly"


class Header(Payload, kw_only=True):
    key: str | None = None
    value: str | None = None


class MergeField(Payload, kw_only=True):
    fieldName: str | None = None
    description: str | None = None


class EventType(Payload, kw_only=True):
    name: str | None = None
    description: str | None = None
    mergeFields: list[MergeField] | None = None


class WebhookWrite(Payload, kw_only=True):
    """The writable fields of the spec's ``Webhook`` (``objectVersion`` for a PUT)."""

    eventType: str
    name: str = ""
    url: str = ""
    contentType: str = ""
    postData: str | None = None
    customHeaders: list[Header] | None = None
    isDisabled: bool = False
    objectVersion: str | None = None


class Webhook(WebhookWrite, kw_only=True):
    lastDisabledDate: str | None = None
    lastUpdated: str | None = None

    def __repr__(self) -> str:  # its url and headers carry a token
        return f"<Webhook {self.eventType}>"


class WebhookCreated(Payload, kw_only=True):
    eventType: str | None = None


class WebhooksApi:
    """The agreement's webhooks through ``client`` (the client's own plumbing, this package)."""

    def __init__(self, client: economic_client.EconomicClient) -> None:
        self._client = client

    async def event_types(self) -> list[EventType]:
        """``GET /EventTypes``: what e-conomic offers, with the merge fields of each."""
        return await self._client._get(list[EventType], "apis", f"{WEBHOOKS}/EventTypes",
                                       endpoint="GET /EventTypes")

    async def listing(self) -> list[Webhook]:
        """``GET /webhooks``, every cursor page."""
        return [w async for w in self._client._cursor_pages(
            Webhook, f"{WEBHOOKS}/webhooks", endpoint="GET /webhooks")]

    async def get(self, event_type: str) -> Webhook | None:
        """``GET /webhooks/{eventType}``; None when there is none."""
        try:
            return await self._client._get(Webhook, "apis",
                                           f"{WEBHOOKS}/webhooks/{event_type}",
                                           endpoint="GET /webhooks/{eventType}")
        except errors.NotFound:
            return None

    async def create(self, hook: WebhookWrite) -> None:
        """``POST /webhooks``; a type that has one already is ``ValidationError`` with code
        :data:`ALREADY_EXISTS`."""
        await self._client.caller.call("POST", "apis", f"{WEBHOOKS}/webhooks",
                                       endpoint="POST /webhooks", json=hook,
                                       idempotency_key=new_idempotency_key())

    async def update(self, hook: WebhookWrite) -> None:
        """``PUT /webhooks`` (the event type and ``objectVersion`` in the body; a stale version
        is :class:`errors.Conflict`)."""
        await self._client.caller.call("PUT", "apis", f"{WEBHOOKS}/webhooks",
                                       endpoint="PUT /webhooks", json=hook,
                                       idempotency_key=new_idempotency_key())

    async def delete(self, event_type: str) -> None:
        """``DELETE /webhooks/{eventType}``; one already gone is not an error."""
        try:
            await self._client.caller.call("DELETE", "apis",
                                           f"{WEBHOOKS}/webhooks/{event_type}",
                                           endpoint="DELETE /webhooks/{eventType}",
                                           idempotency_key=new_idempotency_key())
        except errors.NotFound:
            return
