"""The webhook receiver refuses every bad request with a 4xx and a message, appending nothing."""

from __future__ import annotations

import dataclasses
import io
import json
import logging

import aiohttp
import pytest

from daemon.core import events as ev
from daemon.ingest import receiving
from tests.ingest.conftest import TOKEN, Harness, raw_answer

pytestmark = pytest.mark.anyio

GOOD = b'{"event": "UPDATE", "customer": {"id": 5, "customerNumber": "10001"}}'
JSON = "application/json"


@dataclasses.dataclass(frozen=True)
class Bad:
    name: str
    body: bytes
    status: int
    message: str
    content_type: str | None = JSON
    token: str = TOKEN
    method: str = "POST"
    chunked: bool = False


BAD_REQUESTS = [
    Bad("wrong token", GOOD, 404, "not found", token="not-the-token"),
    Bad("token with a suffix", GOOD, 404, "not found", token=TOKEN + "x"),
    Bad("empty token", GOOD, 404, "Not Found", token=""),
    Bad("1 MiB body", b"{" + b" " * (1024 * 1024) + b"}", 413, "over the limit"),
    Bad("1 MiB body, chunked", b"[" + b"1," * (512 * 1024) + b"1]", 413, "over the limit",
        chunked=True),
    Bad("text/plain", GOOD, 415, "application/json", content_type="text/plain"),
    Bad("form body", b"event=UPDATE", 415, "application/json",
        content_type="application/x-www-form-urlencoded"),
    Bad("no content type", GOOD, 415, "application/json", content_type=None),
    Bad("bad JSON", b'{"event": "UPDATE", "customer": {"id": 5}', 400, "not valid JSON"),
    Bad("empty body", b"", 400, "empty"),
    Bad("not UTF-8", b'{"event": "\xff"}', 400, "not UTF-8"),
    Bad("NaN", b'{"event": "UPDATE", "customer": {"id": NaN}}', 400, "NaN"),
    Bad("a list", b"[1, 2]", 400, "must be an object"),
    Bad("unknown object kind", b'{"event": "UPDATE", "supplier": {"id": 5}}', 400,
        "unknown object kind 'supplier'"),
    Bad("no object", b'{"event": "UPDATE"}', 400, "no object"),
    Bad("two objects", b'{"event": "U", "customer": {"id": 5}, "project": {"id": 6}}', 400,
        "more than one object kind"),
    Bad("number where an object belongs", b'{"event": "UPDATE", "customer": 5}', 400,
        "customer must be an object, got a number"),
    Bad("string id", b'{"event": "UPDATE", "invoice": {"id": "5"}}', 400,
        "invoice.id must be a positive integer"),
    Bad("negative id", b'{"event": "UPDATE", "project": {"id": -1}}', 400,
        "project.id must be a positive integer"),
    Bad("number for customerNumber", b'{"event": "U", "customer": {"id": 5, '
        b'"customerNumber": 10001}}', 400, "customerNumber must be a string"),
    Bad("missing event", b'{"customer": {"id": 5}}', 400, "event is missing"),
    Bad("duplicate key", b'{"event": "U", "event": "V", "customer": {"id": 5}}', 400,
        "appears twice"),
    Bad("GET", b"", 405, "Method Not Allowed", method="GET"),
    Bad("an id of 4,301 digits", b'{"event": "U", "customer": {"id": ' + b"7" * 4301 + b"}}",
        400, "a number in it is too long"),
]


async def _send(http: aiohttp.ClientSession, port: int, bad: Bad) -> tuple[int, str]:
    url = f"http://127.0.0.1:{port}{receiving.PATH_PREFIX}{bad.token}"
    headers = {} if bad.content_type is None else {"Content-Type": bad.content_type}
    data: bytes | object = io.BytesIO(bad.body) if len(bad.body) > 65536 else bad.body
    if bad.chunked:
        async def stream() -> object:
            for i in range(0, len(bad.body), 65536):
                yield bad.body[i:i + 65536]
        data = stream()
    elif bad.content_type is None:
        headers["Content-Type"] = ""
    async with http.request(bad.method, url, data=data, headers=headers,
                            skip_auto_headers=["Content-Type"]) as response:
        return response.status, await response.text()


@pytest.mark.parametrize("bad", BAD_REQUESTS, ids=[b.name for b in BAD_REQUESTS])
async def test_a_bad_request_is_refused_and_appends_nothing(harness: Harness, bad: Bad,
                                                            caplog: pytest.LogCaptureFixture,
                                                            capsys: pytest.CaptureFixture[str],
                                                            ) -> None:
    caplog.set_level(logging.DEBUG)
    before = await harness.log.count()
    async with aiohttp.ClientSession() as http:
        status, text = await _send(http, harness.receiver.port, bad)
        assert (status, bad.message in text) == (bad.status, True), text
        if bad.status not in (405,) and bad.token:
            assert json.loads(text) == {"status": status, "message": json.loads(text)["message"]}
        assert await harness.log.count() == before
        # the receiver goes on accepting good hints on a fresh connection and on this one
        good = dataclasses.replace(bad, body=GOOD, content_type=JSON, token=TOKEN, method="POST",
                                   chunked=False)
        status, text = await _send(http, harness.receiver.port, good)
        assert status == 202, text
    assert await harness.log.count() == before + 1
    assert (await harness.events(ev.HintReceived))[-1] == ev.HintReceived(
        kind="customer", moment_id=5, number="10001", event="UPDATE")
    output = capsys.readouterr()
    for text in (caplog.text, output.out, output.err):
        assert TOKEN not in text


def test_the_table_is_big_enough() -> None:
    assert len(BAD_REQUESTS) >= 12
    assert {b.status for b in BAD_REQUESTS} == {400, 404, 405, 413, 415}


async def test_checks_run_in_order_token_size_type_body(harness: Harness) -> None:
    huge_text = b"x" * (receiving.MAX_BODY_BYTES + 1)
    async with aiohttp.ClientSession() as http:
        cases = [
            (Bad("wrong token beats size", huge_text, 404, "", content_type="text/plain",
                 token="nope"), 404),
            (Bad("size beats type", huge_text, 413, "", content_type="text/plain"), 413),
            (Bad("type beats body", b"not json", 415, "", content_type="text/plain"), 415),
        ]
        for bad, status in cases:
            assert (await _send(http, harness.receiver.port, bad))[0] == status, bad.name
        exactly = b'{"event": "UPDATE", "customer": {"id": 7}, "pad": "'
        pad = receiving.MAX_BODY_BYTES - len(exactly) - 2
        at_limit = Bad("at the limit", exactly + b" " * 0 + b"x" * pad + b'"}', 400,
                       "unknown object kind 'pad'")
        assert len(at_limit.body) == receiving.MAX_BODY_BYTES
        status, text = await _send(http, harness.receiver.port, at_limit)
        assert status == 400 and "unknown object kind 'pad'" in text


async def test_202_comes_after_the_hint_is_committed(harness: Harness) -> None:
    async with aiohttp.ClientSession() as http, http.post(
            harness.url, data=b'{"event": "CREATE_NEW", "invoice": {"id": 9}}',
            headers={"Content-Type": "application/json; charset=utf-8"}) as response:
        assert response.status == 202
        seq = (await response.json())["seq"]
    records = await harness.log.read()
    assert [r.seq for r in records if r.type == "hint_received"] == [seq]
    hint = next(r for r in records if r.seq == seq)
    assert hint.event == ev.HintReceived(kind="invoice", moment_id=9, event="CREATE_NEW")
    assert hint.occurred_at.startswith("2026-11-20T09:00:00")  # the webhook's time


async def test_a_failing_log_is_a_503_and_the_receiver_survives(harness: Harness) -> None:
    class Broken(Exception):
        pass

    real = harness.log.append

    async def broken(*args: object, **kwargs: object) -> object:
        raise Broken("disk full")

    harness.log.append = broken  # type: ignore[method-assign,assignment]
    try:
        async with aiohttp.ClientSession() as http, http.post(
                harness.url, data=GOOD, headers={"Content-Type": JSON}) as response:
            assert response.status == 503
            assert "could not be recorded" in (await response.json())["message"]
    finally:
        harness.log.append = real  # type: ignore[method-assign]
    async with aiohttp.ClientSession() as http, http.post(
            harness.url, data=GOOD, headers={"Content-Type": JSON}) as response:
        assert response.status == 202


async def test_an_empty_token_is_refused_at_start(harness: Harness) -> None:
    from daemon.core import secrets

    with pytest.raises(ValueError, match="webhook token is empty"):
        receiving.Receiver(log=harness.log, token=secrets.Secret(""))


@pytest.mark.parametrize("raw", [
    f"POST /webhooks/moment/{TOKEN} HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n".encode(),
    f"POST /webhooks/moment/{TOKEN} HTTP/9.9\r\nHost: x\r\n\r\n".encode(),
    f"POST /webhooks/moment/{TOKEN}\x00 HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    f"POST /webhooks/moment/{TOKEN} HTTP/1.1\r\nContent-Length: x{TOKEN}\r\n\r\n".encode(),
    f"{TOKEN} {TOKEN}\r\n\r\n".encode(),
    f"POST /webhooks/moment/{TOKEN} HTTP/1.1 {TOKEN}\r\nHost: x\r\n\r\n".encode(),
    f"POST /webhooks/moment/{TOKEN} HTTP/1.1\r\nHost: x\r\nX-{TOKEN}\x01: y\r\n\r\n".encode(),
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + TOKEN.encode() + b"\r\n\r\n",
], ids=["bad header", "bad version", "NUL in target", "bad content length", "garbage",
        "bad request line", "bad header name", "TLS on the HTTP port"])
async def test_a_malformed_request_is_logged_without_the_token(
        harness: Harness, raw: bytes, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:

    caplog.set_level(logging.DEBUG)
    before = await harness.log.count()
    answer = await raw_answer(harness.receiver.port, raw)
    assert answer.split(b" ", 2)[1] == b"400", answer
    assert TOKEN.encode() not in answer, answer  # the answer does not echo the request
    assert await harness.log.count() == before
    output = capsys.readouterr()
    for text in (caplog.text, output.out, output.err):
        assert TOKEN not in text
    assert "Error handling request" in caplog.text


async def test_slow_clients_are_cut_off_and_a_good_hint_still_gets_its_202(
        harness: Harness) -> None:
    """Slowloris: more slow connections than the cap, some stuck in their headers, some in
    their body. Each is cut off by its timeout (headers: closed; body: 408), the receiver never
    holds more than its cap, and a good hint sent behind them all is answered 202."""
    import anyio

    from daemon.core import secrets

    cap = 4
    receiver = receiving.Receiver(log=harness.log, token=secrets.Secret(TOKEN), port=0,
                                  header_timeout_s=0.2, body_timeout_s=0.3,
                                  max_connections=cap)
    slow_headers = (f"POST {receiving.PATH_PREFIX}{TOKEN} HTTP/1.1\r\nHost: x\r\n"
                    f"Content-Type: application/json\r\n").encode()
    slow_body = (f"POST {receiving.PATH_PREFIX}{TOKEN} HTTP/1.1\r\nHost: x\r\n"
                 f"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n"
                 '{"event": "UPDATE", ').encode()
    answers: dict[int, bytes] = {}

    async def slow(i: int) -> None:
        answers[i] = await raw_answer(receiver.port, slow_headers if i % 2 else slow_body)

    async with anyio.create_task_group() as tg:
        await tg.start(receiver.serve)
        async with anyio.create_task_group() as clients:
            for i in range(3 * cap):
                clients.start_soon(slow, i)
            timeout = aiohttp.ClientTimeout(total=30)
            async with aiohttp.ClientSession(timeout=timeout) as http, http.post(
                    f"http://127.0.0.1:{receiver.port}{receiving.PATH_PREFIX}{TOKEN}",
                    data=GOOD, headers={"Content-Type": JSON}) as response:
                assert response.status == 202, await response.text()
        tg.cancel_scope.cancel()
    assert sorted(answers) == list(range(3 * cap))
    for i, answer in answers.items():
        if i % 2:
            assert answer == b"", answer  # headers never completed: closed without a word
        else:
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            assert b"did not arrive within 0.3 s" in answer
    assert receiver.peak_connections <= cap
    assert await harness.events(ev.HintReceived) == [ev.HintReceived(
        kind="customer", moment_id=5, number="10001", event="UPDATE")]


def test_the_bounds_are_the_designs() -> None:
    assert (receiving.HEADER_TIMEOUT_S, receiving.BODY_TIMEOUT_S,
            receiving.MAX_CONNECTIONS) == (10.0, 30.0, 256)


async def test_every_answer_is_told_to_on_answer(harness: Harness) -> None:
    """``on_answer`` hears the status of each answer, good and bad (the daemon counts them in
    ``moment_sync_webhook_requests_total``)."""
    import anyio

    from daemon.core import secrets

    heard: list[tuple[str, int]] = []
    receiver = receiving.Receiver(log=harness.log, token=secrets.Secret(TOKEN), port=0,
                                  on_answer=lambda source, status: heard.append((source, status)))
    async with anyio.create_task_group() as tg:
        await tg.start(receiver.serve)
        url = f"http://127.0.0.1:{receiver.port}{receiving.PATH_PREFIX}"
        async with aiohttp.ClientSession() as http:
            for token, body, content_type in ((TOKEN, GOOD, JSON), ("wrong", GOOD, JSON),
                                              (TOKEN, GOOD, "text/plain"), (TOKEN, b"[]", JSON)):
                async with http.post(url + token, data=body,
                                     headers={"Content-Type": content_type}) as response:
                    await response.read()
        tg.cancel_scope.cancel()
    assert heard == [("moment", 202), ("moment", 404), ("moment", 415), ("moment", 400)]


async def test_an_address_in_use_is_a_sentence_naming_daemon_listen(harness: Harness) -> None:
    """The same sentence as ``daemon.metrics_listen``'s (one :class:`ListenError` for both), so
    the daemon stops its start with it instead of a traceback; nothing is left bound."""
    import socket

    from daemon import settings as config
    from daemon.core import secrets

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        receiver = receiving.Receiver(log=harness.log, token=secrets.Secret(TOKEN),
                                      host="127.0.0.1", port=port)
        with pytest.raises(config.ListenError,
                           match=rf"^daemon.listen: cannot listen on 127.0.0.1:{port}: \S") as err:
            await receiver.start()
        assert err.value.key == "daemon.listen"
        await receiver.stop()  # safe after a failed start
