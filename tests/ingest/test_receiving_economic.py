"""The e-conomic route of the receiver, ``POST /webhooks/economic/{token}``: the same checks in
the same order as Moment's (token in the path, and in ``X-Moment-Sync-Token`` when sent; size;
content type; body), every refusal appending nothing, a good hint recorded before its 202, and
the same bounds on slow clients."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator

import aiohttp
import anyio
import pytest

from daemon.core import events as ev
from daemon.core import secrets, webhooks
from daemon.ingest import receiving
from daemon.store import eventlog
from tests.clocks import FakeClock
from tests.ingest.conftest import raw_answer

pytestmark = pytest.mark.anyio

TOKEN = "economic-hook-7f3a91c2"
MOMENT_TOKEN = "moment-hook-0b5e"
JSON = "application/json"
GOOD = b'{"event": "CUSTOMER_UPDATED", "old": "1050", "new": "901050"}'
HEADER = webhooks.TOKEN_HEADER


@dataclasses.dataclass(frozen=True)
class Bad:
    name: str
    body: bytes
    status: int
    message: str
    content_type: str = JSON
    token: str = TOKEN
    header: str | None = TOKEN


BAD = [
    Bad("wrong token", GOOD, 404, "not found", token="not-it"),
    Bad("Moment's token", GOOD, 404, "not found", token=MOMENT_TOKEN),
    Bad("right path, wrong header", GOOD, 404, "not found", header="not-it"),
    Bad("right path, empty header", GOOD, 404, "not found", header=""),
    Bad("wrong path, right header", GOOD, 404, "not found", token="x" + TOKEN),
    Bad("over 64 KiB", b"{" + b" " * (receiving.MAX_BODY_BYTES + 1) + b"}", 413,
        "over the limit"),
    Bad("text/plain", GOOD, 415, "application/json", content_type="text/plain"),
    Bad("not JSON", b'{"event": "CUSTOMER_UPDATED"', 400, "not valid JSON"),
    Bad("empty", b"", 400, "empty"),
    Bad("a list", b"[]", 400, "must be an object"),
    Bad("no event", b'{"old": "1", "new": "2"}', 400, "event is missing"),
    Bad("event a number", b'{"event": 7, "old": "1"}', 400, "event must be a string"),
    Bad("an event not installed", b'{"event": "INVOICE_BOOKED", "old": "1"}', 400,
        "is not one of the daemon's webhooks"),
    Bad("old a number", b'{"event": "CUSTOMER_UPDATED", "old": 1050}', 400,
        "old must be a string, got a number"),
    Bad("new not a number", b'{"event": "PROJECT_UPDATED", "new": "12a"}', 400,
        "new must be empty or a whole number"),
    Bad("a negative number", b'{"event": "PROJECT_UPDATED", "new": "-3"}', 400,
        "new must be empty or a whole number"),
    Bad("neither old nor new", b'{"event": "CUSTOMER_UPDATED", "old": "", "new": " "}', 400,
        "must name old or new"),
    Bad("an unknown key", b'{"event": "CUSTOMER_UPDATED", "old": "1", "who": "x"}', 400,
        "unknown key 'who'"),
    Bad("a merge field left unfilled", b'{"event": "CUSTOMER_UPDATED", "old": "[OLDNUMBER]"}',
        400, "old must be empty or a whole number"),
    Bad("a key twice", b'{"event": "CUSTOMER_UPDATED", "old": "1", "old": "2"}', 400,
        "appears twice"),
    Bad("NaN", b'{"event": "CUSTOMER_UPDATED", "old": NaN}', 400, "NaN"),
    Bad("a day book with a word", b'{"event": "DAYBOOK_BOOKED", "daybook": "one"}', 400,
        "daybook must be empty or a whole number"),
]


@pytest.fixture
async def log() -> AsyncIterator[eventlog.EventLog]:
    log = await eventlog.EventLog.open(":memory:", clock=FakeClock())
    try:
        yield log
    finally:
        await log.close()


@pytest.fixture
async def port(log: eventlog.EventLog) -> AsyncIterator[int]:
    receiver = receiving.Receiver(log=log, token=secrets.Secret(MOMENT_TOKEN),
                                  economic_token=secrets.Secret(TOKEN),
                                  economic_events=webhooks.DEFAULT_EVENTS, port=0)
    async with anyio.create_task_group() as tg:
        yield await tg.start(receiver.serve)
        tg.cancel_scope.cancel()


async def send(port: int, *, body: bytes = GOOD, token: str = TOKEN,
               header: str | None = TOKEN, content_type: str = JSON) -> tuple[int, str]:
    headers = {"Content-Type": content_type}
    if header is not None:
        headers[HEADER] = header
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{port}{webhooks.PATH}{token}", data=body,
            headers=headers) as response:
        return response.status, await response.text()


@pytest.mark.parametrize("bad", BAD, ids=[b.name for b in BAD])
async def test_a_bad_request_is_refused_and_appends_nothing(
        log: eventlog.EventLog, port: int, bad: Bad, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    before = await log.count()
    status, text = await send(port, body=bad.body, token=bad.token, header=bad.header,
                              content_type=bad.content_type)
    assert status == bad.status and bad.message in json.loads(text)["message"], text
    assert await log.count() == before
    assert (await send(port))[0] == 202  # and the next good one is taken
    assert TOKEN not in caplog.text


def test_every_answer_is_in_the_table() -> None:
    assert {b.status for b in BAD} == {400, 404, 413, 415}


async def test_a_good_hint_is_committed_before_its_202(log: eventlog.EventLog, port: int
                                                       ) -> None:
    status, text = await send(port)
    assert status == 202
    seq = json.loads(text)["seq"]
    assert seq == log.last_seq
    [(_, event)] = await log.committed(after=seq - 1, limit=10)
    assert event == ev.EconomicHintReceived(kind="customer", event="CUSTOMER_UPDATED",
                                            old="1050", new="901050")
    # the header is optional (a proxy may drop it); the path's token is required
    assert (await send(port, header=None))[0] == 202
    status, _ = await send(port, body=b'{"event": "DAYBOOK_BOOKED", "daybook": "2", '
                           b'"from": "17", "to": "19"}')
    assert status == 202
    assert (await log.committed(after=log.last_seq - 1, limit=1))[0][1] == \
        ev.EconomicHintReceived(kind="daybook", event="DAYBOOK_BOOKED", daybook="2",
                                first="17", last="19")


async def test_checks_run_in_order_token_size_type_body(port: int) -> None:
    huge = b"x" * (receiving.MAX_BODY_BYTES + 1)
    assert (await send(port, body=huge, header="wrong", content_type="text/plain"))[0] == 404
    assert (await send(port, body=huge, content_type="text/plain"))[0] == 413
    assert (await send(port, body=b"nope", content_type="text/plain"))[0] == 415


async def test_without_webhook_url_there_is_no_economic_route(log: eventlog.EventLog) -> None:
    receiver = receiving.Receiver(log=log, token=secrets.Secret(MOMENT_TOKEN), port=0)
    async with anyio.create_task_group() as tg:
        port = await tg.start(receiver.serve)
        assert (await send(port, token=MOMENT_TOKEN, header=None))[0] == 404
        tg.cancel_scope.cancel()
    assert await log.count() == 0


async def test_a_slow_body_is_cut_off_with_408(log: eventlog.EventLog) -> None:
    receiver = receiving.Receiver(log=log, token=secrets.Secret(MOMENT_TOKEN),
                                  economic_token=secrets.Secret(TOKEN), port=0,
                                  body_timeout_s=0.2)
    request = (f"POST {webhooks.PATH}{TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Type: {JSON}\r\n"
               f"Content-Length: 200\r\n\r\n" '{"event": ').encode()
    async with anyio.create_task_group() as tg:
        port = await tg.start(receiver.serve)
        answer = await raw_answer(port, request)
        tg.cancel_scope.cancel()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert await log.count() == 0
