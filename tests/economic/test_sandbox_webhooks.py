"""The sandbox's webhooksapi and its firing, over raw HTTP: every answer is checked against the
official spec when the test ends (the ``sandbox`` fixture), deliveries are received by a real
aiohttp server on 127.0.0.1, and retries wait on the fake clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from daemon.sandbox.economic import EconomicSandbox
from tests.clocks import FakeClock
from tests.economic.conftest import call

pytestmark = pytest.mark.anyio
RAW_REQUESTS = True  # the error cases send malformed bodies on purpose
W = "/apis/webhooksapi/v1.0.0"
J = "/apis/journalsapi/v15.0.0"
P = "/apis/projectsapi/v1.1.0"
YEAR = dt.datetime.now(dt.UTC).year
NUMBERS = '{"event": "%s", "old": "[OLDNUMBER]", "new": "[NEWNUMBER]"}'
DAYBOOK = '{"daybook": "[DAYBOOKNO]", "from": "[FROMSERIALNO]", "to": "[TOSERIALNO]"}'


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: what it got, and a gate that holds its answers."""

    url: str = ""
    got: list[tuple[str, dict[str, str], str]] = field(default_factory=list)
    status: int = 200
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        await self.gate.wait()
        self.got.append((request.path, dict(request.headers), await request.text()))
        return web.Response(status=self.status)

    def bodies(self) -> list[Any]:
        return [json.loads(body) for _path, _headers, body in self.got]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    rec.gate.set()
    app = web.Application()
    app.router.add_post("/webhooks/economic/{token}", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = next(a for a in runner.addresses if isinstance(a, tuple))[1]
    rec.url = f"http://127.0.0.1:{port}/webhooks/economic/tok"
    yield rec
    rec.gate.set()
    await runner.cleanup()


def hook(event: str, url: str, **kw: Any) -> dict[str, Any]:
    return {"eventType": event, "name": f"moment-sync {event}", "url": url,
            "contentType": "application/json", **kw}


async def install(http: aiohttp.ClientSession, url: str) -> None:
    token = [{"key": "X-Moment-Sync-Token", "value": "tok"}]
    for event, data in (("CUSTOMER_UPDATED", NUMBERS % "CUSTOMER_UPDATED"),
                        ("PROJECT_UPDATED", NUMBERS % "PROJECT_UPDATED"),
                        ("DAYBOOK_BOOKED", DAYBOOK)):
        st, doc, _ = await call(http, "POST", f"{W}/webhooks",
                                hook(event, url, postData=data, customHeaders=token))
        assert (st, doc) == (201, {"eventType": event})


async def test_crud_follows_the_spec(sandbox: EconomicSandbox,
                                     http: aiohttp.ClientSession) -> None:
    st, types, _ = await call(http, "GET", f"{W}/EventTypes")
    assert st == 200
    assert {t["name"]: [f["fieldName"] for f in t["mergeFields"]] for t in types} == {
        "CUSTOMER_UPDATED": ["[OLDNUMBER]", "[NEWNUMBER]"],
        "PROJECT_UPDATED": ["[OLDNUMBER]", "[NEWNUMBER]"],
        "DAYBOOK_BOOKED": ["[DAYBOOKNO]", "[FROMSERIALNO]", "[TOSERIALNO]"]}
    url = "https://sync.example.com/webhooks/economic/tok"
    st, doc, headers = await call(http, "POST", f"{W}/webhooks", hook(
        "CUSTOMER_UPDATED", url, postData=NUMBERS % "CUSTOMER_UPDATED",
        customHeaders=[{"key": "X-Moment-Sync-Token", "value": "tok"}]))
    assert (st, doc) == (201, {"eventType": "CUSTOMER_UPDATED"})
    assert headers["Location"].endswith(f"{W}/webhooks/CUSTOMER_UPDATED")
    st, doc, _ = await call(http, "POST", f"{W}/webhooks", hook("CUSTOMER_UPDATED", url))
    assert st == 400 and doc["errorCode"] == "WebhookAlreadyExistsForEventType"
    assert (await call(http, "POST", f"{W}/webhooks", hook("PROJECT_UPDATED", url)))[0] == 201
    st, one, _ = await call(http, "GET", f"{W}/webhooks/CUSTOMER_UPDATED")
    assert st == 200 and one["url"] == url and "isDisabled" not in one  # false: omitted
    assert one["customHeaders"] == [{"key": "X-Moment-Sync-Token", "value": "tok"}]

    sandbox.cursor_page_size = 1
    st, page, _ = await call(http, "GET", f"{W}/webhooks")
    assert [h["eventType"] for h in page["items"]] == ["CUSTOMER_UPDATED"]
    assert page["cursor"] == "PROJECT_UPDATED"
    st, page, _ = await call(http, "GET", f"{W}/webhooks?cursor=PROJECT_UPDATED")
    assert [h["eventType"] for h in page["items"]] == ["PROJECT_UPDATED"] and "cursor" not in page
    st, paged, _ = await call(http, "GET", f"{W}/webhooks/paged?sort=-eventType&pageSize=1")
    assert [h["eventType"] for h in paged] == ["PROJECT_UPDATED"]
    assert (await call(http, "GET", f"{W}/webhooks/paged?pageSize=101"))[0] == 400
    assert (await call(http, "GET", f"{W}/webhooks/count"))[1] == 2
    st, n, _ = await call(http, "GET", f"{W}/webhooks/count?filter=eventType$eq:PROJECT_UPDATED")
    assert (st, n) == (200, 1)
    st, doc, _ = await call(http, "GET", f"{W}/webhooks/count?filter=postData$eq:x")
    assert st == 400 and doc["errorCode"] == "BadFilterRequest"

    changed = {**one, "isDisabled": True, "name": "renamed"}
    assert (await call(http, "PUT", f"{W}/webhooks", changed))[0] == 204
    st, doc, _ = await call(http, "PUT", f"{W}/webhooks", changed)  # its version is stale now
    assert st == 409 and doc["errorCode"] == "UpdateConflict"
    st, now, _ = await call(http, "GET", f"{W}/webhooks/CUSTOMER_UPDATED")
    assert now["isDisabled"] is True and now["name"] == "renamed" and now["lastDisabledDate"]
    assert now["objectVersion"] != one["objectVersion"]
    st, doc, _ = await call(http, "PUT", f"{W}/webhooks", hook("DAYBOOK_BOOKED", url))
    assert st == 404 and doc["errorCode"] == "ResourceNotFound"
    assert (await call(http, "DELETE", f"{W}/webhooks/CUSTOMER_UPDATED"))[0] == 204
    assert (await call(http, "GET", f"{W}/webhooks/CUSTOMER_UPDATED"))[0] == 404
    assert (await call(http, "DELETE", f"{W}/webhooks/CUSTOMER_UPDATED"))[0] == 404
    assert (await call(http, "GET", f"{W}/webhooks/customer_updated"))[0] == 400
    assert list(sandbox.agreement.webhooks) == ["PROJECT_UPDATED"]


@pytest.mark.parametrize(("change", "code"), [
    ({"eventType": "INVOICE_PAID"}, "WebhookInvalidType"),
    ({"eventType": "customer_updated"}, "WebhookInvalidType"),
    ({"url": "not a url"}, "WebhookInvalidUrl"),
    ({"url": "https://"}, "WebhookInvalidUrl"),
    ({"url": "https://host:port/x"}, "WebhookInvalidUrl"),
    ({"url": "http://sync.example.com/hook"}, "WebhookInvalidUrlScheme"),
    ({"url": "http://10.0.0.1/hook"}, "WebhookInvalidUrlScheme"),
    ({"url": "ftp://127.0.0.1/hook"}, "WebhookInvalidUrlScheme"),
    ({"customHeaders": [{"key": f"X-{n}", "value": "v"} for n in range(6)]},
     "WebhookCustomHeadersTooMany"),
    ({"customHeaders": [{"key": "X-A", "value": "v" * 990}]}, "WebhookCustomHeadersTooLong"),
    ({"customHeaders": [{"key": "X-A", "value": "a\r\nX-Evil: 1"}]},
     "WebhookCustomHeaderInvalid"),
    ({"customHeaders": [{"key": "X A", "value": "v"}]}, "WebhookCustomHeaderInvalid"),
    ({"customHeaders": "X-A: v"}, "WebhookCustomHeaderInvalid"),
    ({"name": "n" * 101}, "InvalidValue"),
    ({"contentType": None}, "InvalidValue"),
    ({"url": None}, "InvalidValue"),
    ({"postData": "p" * 4001}, "InvalidValue"),
    ({"isDisabled": "no"}, "InvalidValue"),
])
async def test_a_bad_webhook_is_refused_and_changes_nothing(
        sandbox: EconomicSandbox, http: aiohttp.ClientSession, change: dict[str, Any],
        code: str) -> None:
    body = {**hook("CUSTOMER_UPDATED", "https://sync.example.com/h"), **change}
    st, doc, _ = await call(http, "POST", f"{W}/webhooks", body)
    assert st == 400 and doc["errorCode"] == code, doc
    assert doc["errors"][0]["errorCode"] == code and doc["errors"][0]["property"]
    assert sandbox.agreement.webhooks == {}


async def test_loopback_http_is_accepted_and_read_only_hooks_stay(
        sandbox: EconomicSandbox, http: aiohttp.ClientSession) -> None:
    for event, url in (("CUSTOMER_UPDATED", "http://127.0.0.1:8080/webhooks/economic/t"),
                       ("PROJECT_UPDATED", "http://localhost/webhooks/economic/t")):
        assert (await call(http, "POST", f"{W}/webhooks", hook(event, url)))[0] == 201
    st, made, _ = await call(http, "POST", "/admin/webhooks", {
        **hook("DAYBOOK_BOOKED", "https://erp.example.com/daybook"), "readOnly": True})
    assert st == 201 and made["readOnly"] is True and made["app"] == "person"
    st, one, _ = await call(http, "GET", f"{W}/webhooks/DAYBOOK_BOOKED")
    st, doc, _ = await call(http, "PUT", f"{W}/webhooks", {**one, "name": "mine now"})
    assert st == 400 and doc["errorCode"] == "WebhookReadOnly"
    st, doc, _ = await call(http, "DELETE", f"{W}/webhooks/DAYBOOK_BOOKED")
    assert st == 400 and doc["errorCode"] == "WebhookReadOnly"
    assert sandbox.agreement.webhooks["DAYBOOK_BOOKED"]["name"] == "moment-sync DAYBOOK_BOOKED"
    st, doc, _ = await call(http, "POST", "/admin/webhooks",
                            hook("DAYBOOK_BOOKED", "https://erp.example.com/other"))
    assert st == 400 and "WebhookAlreadyExistsForEventType" in doc["error"]
    assert (await call(http, "DELETE", "/admin/webhooks/DAYBOOK_BOOKED"))[0] == 204


async def test_every_change_fires_with_its_merge_fields(
        sandbox: EconomicSandbox, http: aiohttp.ClientSession, receiver: Receiver) -> None:
    await install(http, receiver.url)
    customer = {"name": "Nordlys", "currency": "DKK", "customerGroup": {"customerGroupNumber": 1},
                "paymentTerms": {"paymentTermsNumber": 1}, "vatZone": {"vatZoneNumber": 1}}
    assert (await call(http, "POST", "/rest/customers", {**customer, "customerNumber": 7}))[0] \
        == 201
    assert (await call(http, "PUT", "/rest/customers/7", customer))[0] == 200
    await call(http, "PATCH", "/admin/customers/7", {"name": "Renamed by a person"})
    await call(http, "POST", "/admin/customers/7/renumber", {"to": 70})
    st, _, _ = await call(http, "POST", f"{P}/Projects", {
        "name": "Roof", "projectGroupNumber": 1, "customerNumber": 70, "number": 3})
    assert st == 201
    await call(http, "POST", "/admin/projects/3/renumber", {"to": 30})
    assert (await call(http, "DELETE", "/admin/projects/30"))[0] == 204
    assert (await call(http, "DELETE", "/admin/customers/70"))[0] == 204
    await call(http, "POST", "/admin/customers", {"customerNumber": 8, "name": "Fjord"})
    entry = {"entryTypeNumber": 10, "journalNumber": 1, "date": f"{YEAR}-03-01T00:00:00Z",
             "amount": 100.0, "currency": "DKK", "customerNumber": 8,
             "contraAccountNumber": 1010, "customerInvoiceNumber": "1"}
    st, made, _ = await call(http, "POST", f"{J}/draft-entries/bulk",
                             {"entries": [entry, {**entry, "customerInvoiceNumber": "2"}]})
    numbers = made["entryNumbers"]
    vouchers = sorted(sandbox.agreement.draft_entries[n]["voucherNumber"] for n in numbers)
    assert (await call(http, "POST", f"{J}/journals/1/bookdraftentries",
                       {"entryNumbers": numbers}))[0] == 204
    st, booked, _ = await call(http, "POST", "/admin/supplier-invoices",
                               {"amount": "125.00", "date": f"{YEAR}-03-02"})
    assert st == 201
    await sandbox.firing.idle()

    c, p = "CUSTOMER_UPDATED", "PROJECT_UPDATED"
    # one worker per webhook: customers keep their order, projects theirs, day books theirs
    by_kind: dict[str, list[Any]] = {}
    for b in receiver.bodies():
        by_kind.setdefault(b.get("event", "DAYBOOK"), []).append(b)
    assert by_kind[c] == [{"event": c, "old": o, "new": n} for o, n in (
        ("", "7"), ("7", "7"), ("7", "7"), ("7", "70"), ("70", ""), ("", "8"))]
    assert by_kind[p] == [{"event": p, "old": o, "new": n} for o, n in (
        ("", "3"), ("3", "30"), ("30", ""))]
    assert by_kind["DAYBOOK"] == [
        {"daybook": "1", "from": str(vouchers[0]), "to": str(vouchers[-1])},
        {"daybook": "1", "from": str(booked["voucherNumber"]),
         "to": str(booked["voucherNumber"])}]
    assert vouchers[0] != vouchers[-1]
    for path, headers, _body in receiver.got:
        assert path == "/webhooks/economic/tok"
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Moment-Sync-Token"] == "tok"
    assert sandbox.firing.counts() == {"delivered": 11}
    st, seen, _ = await call(http, "GET", "/admin/webhooks/deliveries?eventType=DAYBOOK_BOOKED")
    assert [(d["status"], d["httpStatus"], d["attempts"]) for d in seen] == [
        ("delivered", 200, 1)] * 2
    assert "tok\"" not in json.dumps(seen)  # no custom header value is kept


async def test_firing_never_delays_the_change_that_causes_it(
        sandbox: EconomicSandbox, http: aiohttp.ClientSession, receiver: Receiver) -> None:
    await install(http, receiver.url)
    receiver.gate.clear()  # the receiver holds its answers
    for n in (1, 2, 3):
        st, _, _ = await call(http, "POST", "/admin/customers", {"customerNumber": n})
        assert st == 201  # answered while the first delivery is still waiting
    assert receiver.got == []
    assert [d.status for d in sandbox.firing.of("CUSTOMER_UPDATED")] == [
        "sending", "queued", "queued"]
    receiver.gate.set()
    await sandbox.firing.idle()
    assert [b["new"] for b in receiver.bodies()] == ["1", "2", "3"]


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/webhooks/economic/tok"


async def test_a_receiver_down_fails_retries_then_disables_and_re_enabling_fires_again(
        sandbox: EconomicSandbox, http: aiohttp.ClientSession, receiver: Receiver,
        clock: FakeClock) -> None:
    sandbox.firing.sleep = clock.sleep
    st, cfg, _ = await call(http, "PATCH", "/admin/config", {"webhooks": {
        "attempts": 2, "retry_delays_s": [7], "disable_after": 2}})
    assert cfg["webhooks"] == {"attempts": 2, "retry_delays_s": [7.0], "timeout_s": 10.0,
                               "disable_after": 2}
    st, doc, _ = await call(http, "PATCH", "/admin/config", {"webhooks": {"attempts": 0}})
    assert (st, doc) == (400, {"error": "webhooks.attempts: at least 1"})
    assert sandbox.firing.settings.attempts == 2
    await call(http, "POST", f"{W}/webhooks",
               hook("CUSTOMER_UPDATED", _closed_port_url(), postData=NUMBERS % "C"))
    start = clock.monotonic()
    for n in (1, 2, 3):  # all three queued before the first try
        sandbox.agreement.add_customer(n, f"Customer {n}")
    await sandbox.firing.idle()
    ds = sandbox.firing.of()
    assert [(d.status, d.attempts) for d in ds] == [("failed", 2), ("failed", 2), ("dropped", 0)]
    assert ds[0].error and "Connect" in ds[0].error and ds[0].http_status is None
    assert clock.monotonic() - start == 14.0  # one 7 s wait before each second try
    st, one, _ = await call(http, "GET", f"{W}/webhooks/CUSTOMER_UPDATED")
    assert one["isDisabled"] is True and one["lastDisabledDate"]
    await call(http, "POST", "/admin/customers", {"customerNumber": 4})
    assert len(sandbox.firing.of()) == 3  # a disabled webhook's changes are lost

    # the daemon re-enables it (and points it at a receiver that is up)
    fixed = {**one, "isDisabled": False, "url": receiver.url}
    assert (await call(http, "PUT", f"{W}/webhooks", fixed))[0] == 204
    await call(http, "PATCH", "/admin/customers/4", {"name": "Back"})
    await sandbox.firing.idle()
    assert receiver.bodies() == [{"event": "C", "old": "4", "new": "4"}]
    st, listed, _ = await call(http, "GET", "/admin/webhooks")
    assert listed["webhooks"][0]["failures"] == 0 and listed["webhooks"][0]["app"] == "sandbox-app"
    assert listed["deliveries"] == {"failed": 2, "dropped": 1, "delivered": 1}

    receiver.status = 500  # an answer that is not 2xx is a failure too
    await call(http, "PATCH", "/admin/customers/4", {"name": "Again"})
    await sandbox.firing.idle()
    last = sandbox.firing.of()[-1]
    assert (last.status, last.http_status, last.attempts) == ("failed", 500, 2)
    assert (await call(http, "DELETE", "/admin/webhooks/deliveries"))[0] == 204
    assert sandbox.firing.of() == []


async def test_admin_disables_a_webhook_as_e_conomic_does(
        sandbox: EconomicSandbox, http: aiohttp.ClientSession, receiver: Receiver) -> None:
    await install(http, receiver.url)
    st, before, _ = await call(http, "GET", f"{W}/webhooks/PROJECT_UPDATED")
    st, doc, _ = await call(http, "POST", "/admin/webhooks/PROJECT_UPDATED/disable")
    assert st == 200 and doc["isDisabled"] is True and doc["lastDisabledDate"]
    assert doc["objectVersion"] != before["objectVersion"]
    assert (await call(http, "POST", "/admin/webhooks/NOPE/disable"))[0] == 404
    sandbox.agreement.add_project(5, "Roof", customerNumber=1)
    sandbox.agreement.add_customer(9, "Still fires")
    await sandbox.firing.idle()
    assert receiver.bodies() == [{"event": "CUSTOMER_UPDATED", "old": "", "new": "9"}]
    # GET, then PUT with what was read and isDisabled off: enabled again
    st, now, _ = await call(http, "GET", f"{W}/webhooks/PROJECT_UPDATED")
    assert (await call(http, "PUT", f"{W}/webhooks", {**now, "isDisabled": False}))[0] == 204
    st, again, _ = await call(http, "GET", f"{W}/webhooks/PROJECT_UPDATED")
    assert "isDisabled" not in again and again["lastDisabledDate"] == now["lastDisabledDate"]
