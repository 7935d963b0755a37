"""The status socket over a real Unix socket: every route, permissions, and hostile clients."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon.core import reports
from daemon.ops import asking, binding, metrics, statusserver
from tests.ops.fakes import SAMPLE_PARKED, SAMPLE_STATUS, FakeProvider

pytestmark = pytest.mark.anyio


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory under /tmp: AF_UNIX paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="ms-ops-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
async def server(
    short_dir: Path, provider: FakeProvider
) -> AsyncIterator[statusserver.StatusServer]:
    served = statusserver.StatusServer(
        provider, metrics.Metrics(), idle_timeout=0.5, max_body=1024, shutdown_timeout=1.0
    )
    await served.start(short_dir / "run" / "status.sock", environ={})
    try:
        yield served
    finally:
        await served.stop()


@pytest.fixture
def client(server: statusserver.StatusServer) -> asking.StatusClient:
    return asking.StatusClient(server.address, timeout=5.0)


async def raw_exchange(path: str, data: bytes, *, limit: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    received = bytearray()
    with anyio.fail_after(limit):
        async with await anyio.connect_unix(path) as stream:
            if data:
                await stream.send(data)
            while True:
                try:
                    received += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
    return bytes(received)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- the socket file ----------------------------------------------------------------------------

async def test_socket_is_0660_in_a_0750_directory(server: statusserver.StatusServer) -> None:
    path = Path(server.address)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o660
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o750
    assert os.listdir(path.parent) == ["status.sock"]  # no temporary left behind


async def test_stop_removes_the_socket_it_bound(short_dir: Path, provider: FakeProvider) -> None:
    served = statusserver.StatusServer(provider, metrics.Metrics())
    path = short_dir / "status.sock"
    await served.start(path, environ={})
    assert path.exists()
    await served.stop()
    assert not path.exists()
    await served.stop()  # twice is harmless


async def test_refuses_a_path_that_is_not_a_socket(short_dir: Path, provider: FakeProvider) -> None:
    path = short_dir / "status.sock"
    path.write_text("precious")
    served = statusserver.StatusServer(provider, metrics.Metrics())
    with pytest.raises(binding.SocketPathError, match="exists and is not a socket"):
        await served.start(path, environ={})
    assert path.read_text() == "precious"
    assert os.listdir(short_dir) == ["status.sock"]


async def test_replaces_a_stale_socket(short_dir: Path, provider: FakeProvider) -> None:
    path = short_dir / "status.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: a crashed daemon's socket
    served = statusserver.StatusServer(provider, metrics.Metrics())
    await served.start(path, environ={})
    try:
        assert (await asking.StatusClient(path).healthz()) == (200, "running")
    finally:
        await served.stop()


async def test_refuses_a_socket_another_daemon_answers_on(
    server: statusserver.StatusServer, provider: FakeProvider
) -> None:
    second = statusserver.StatusServer(provider, metrics.Metrics())
    with pytest.raises(binding.SocketPathError, match="another process answers"):
        await second.start(Path(server.address), environ={})
    assert (await asking.StatusClient(server.address).healthz()) == (200, "running")


async def test_refuses_a_path_too_long_for_af_unix(provider: FakeProvider) -> None:
    served = statusserver.StatusServer(provider, metrics.Metrics())
    with pytest.raises(binding.SocketPathError, match="too long"):
        await served.start(Path("/tmp/" + "x" * 120 + "/status.sock"), environ={})


# -- every route --------------------------------------------------------------------------------

async def test_status_answers_the_providers_document(client: asking.StatusClient) -> None:
    assert msgspec.json.decode(await client.status()) == SAMPLE_STATUS


@pytest.mark.parametrize(
    ("state", "code"),
    [("running", 200), ("degraded", 200), ("starting", 503), ("stopping", 503)],
)
async def test_healthz_codes(
    client: asking.StatusClient, provider: FakeProvider, state: str, code: int
) -> None:
    provider.current_state = state
    assert await client.healthz() == (code, state)


async def test_metrics_is_prometheus_text(client: asking.StatusClient) -> None:
    answer = await client.request("GET", "/metrics")
    families = {f.name for f in text_string_to_metric_families(answer.body.decode())}
    assert "moment_sync_queue_depth" in families
    assert "moment_sync_economic_calls" in families


async def test_metrics_content_type(server: statusserver.StatusServer) -> None:
    reply = await raw_exchange(
        server.address, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    head = reply.split(b"\r\n\r\n", 1)[0].lower()
    assert b"content-type: text/plain; version=0.0.4; charset=utf-8" in head


async def test_entity_found_and_unknown(client: asking.StatusClient) -> None:
    document = msgspec.json.decode(await client.entity("customer", "10001"))
    assert document["economic_ids"] == {"customerNumber": 10001}
    with pytest.raises(asking.DaemonError, match="no customer 10002 in the event log") as caught:
        await client.entity("customer", "10002")
    assert caught.value.status == 404


async def test_unknown_kind_is_a_404_that_names_the_kinds(client: asking.StatusClient) -> None:
    answer = await client.request("GET", "/entities/vendor/1", accept_error=True)
    assert answer.status == 404
    assert answer.json() == {
        "error": "unknown kind 'vendor': use one of customer, project, invoice, expense, "
        "payment"}
    answer = await client.request("POST", "/resync/vendor/1", accept_error=True)
    assert answer.status == 404


async def test_bad_key_is_a_400(client: asking.StatusClient, provider: FakeProvider) -> None:
    answer = await client.request("GET", "/entities/customer/%20x", accept_error=True)
    assert answer.status == 400
    error = answer.json()
    assert isinstance(error, dict) and "is not a Moment number" in error["error"]
    assert provider.calls == []


async def test_parked_and_retry(client: asking.StatusClient, provider: FakeProvider) -> None:
    assert msgspec.json.decode(await client.parked()) == SAMPLE_PARKED
    assert msgspec.json.decode(await client.retry("project", "7")) == {
        "kind": "project", "key": "7", "retrying": True}
    assert msgspec.json.decode(await client.parked()) == []
    with pytest.raises(asking.DaemonError, match="project 7 is not parked"):
        await client.retry("project", "7")


async def test_resync(client: asking.StatusClient, provider: FakeProvider) -> None:
    answer = await client.request("POST", "/resync/customer/10001")
    assert answer.status == 202
    assert answer.json() == {"kind": "customer", "key": "10001", "queued": True}
    with pytest.raises(asking.DaemonError, match="Moment has no invoice numbered 99") as caught:
        await client.resync("invoice", "99")
    assert caught.value.status == 404
    assert ("resync", ("customer", "10001")) in provider.calls
    paid = await client.request("POST", "/resync/payment/12")  # e-conomic -> Moment too
    assert (paid.status, paid.json()) == (202, {"kind": "payment", "key": "12", "queued": True})
    assert ("resync", ("payment", "12")) in provider.calls


async def test_reconcile_answers_202_with_the_count(client: asking.StatusClient) -> None:
    answer = await client.request("POST", "/reconcile")
    assert (answer.status, answer.json()) == (202, {"queued": 95})
    assert await client.reconcile() == 95


async def test_backfill_of_expenses_queues_and_bad_requests_change_nothing(
        client: asking.StatusClient, provider: FakeProvider) -> None:
    assert await client.backfill_expenses("2026-01-01") == 95
    assert provider.calls[-1] == ("backfill_expenses", dt.date(2026, 1, 1))
    for target, status, words in (
            ("/backfill/expenses?since=2026-13-01", 400, "is not a date YYYY-MM-DD"),
            ("/backfill/expenses", 400, "is not a date YYYY-MM-DD"),
            ("/backfill/expenses?since=2026-01-01&x=1", 400, "unknown query parameter 'x'"),
            ("/backfill/expenses?since=1999-01-01", 409, "expenses are off")):
        before = len(provider.calls)
        answer = await client.request("POST", target, accept_error=True)
        error = answer.json()
        assert answer.status == status and isinstance(error, dict)
        assert words in error["error"]
        assert all(name == "backfill_expenses" for name, _a in provider.calls[before:])


async def test_an_expense_key_is_year_and_entry(client: asking.StatusClient,
                                                provider: FakeProvider) -> None:
    answer = await client.request("POST", "/resync/expense/2026:4711", accept_error=True)
    error = answer.json()
    assert answer.status == 404 and isinstance(error, dict)
    assert "e-conomic has no booked entry 2026:4711" in error["error"]
    assert provider.calls[-1] == ("resync", ("expense", "2026:4711"))


async def test_plan_for_all_and_one_kind(client: asking.StatusClient) -> None:
    whole = msgspec.json.decode(await client.plan())
    assert whole["kinds"] == ["customer", "project", "invoice", "expense", "payment"]
    assert msgspec.json.decode(await client.plan("customer"))["kinds"] == ["customer"]
    for target, words in (("/plan?kind=vendor", "unknown kind 'vendor'"),
                          ("/plan?kinds=customer", "unknown query parameter 'kinds'")):
        answer = await client.request("GET", target, accept_error=True)
        assert answer.status == 400
        error = answer.json()
        assert isinstance(error, dict) and words in error["error"]


async def test_unknown_route_and_wrong_method(client: asking.StatusClient) -> None:
    answer = await client.request("GET", "/nope", accept_error=True)
    assert (answer.status, answer.json()) == (404, {"error": "no such request: GET /nope"})
    answer = await client.request("GET", "/reconcile", accept_error=True)
    assert answer.status == 405
    error = answer.json()
    assert isinstance(error, dict) and "use POST" in error["error"]


async def test_a_failing_provider_gives_500_and_the_server_carries_on(
    client: asking.StatusClient, provider: FakeProvider
) -> None:
    provider.fail = True
    answer = await client.request("GET", "/status", accept_error=True)
    assert (answer.status, answer.json()) == (500, {"error": "internal error"})
    provider.fail = False
    assert msgspec.json.decode(await client.status())["state"] == "running"


# -- hostile and careless clients ---------------------------------------------------------------

async def test_request_body_is_bounded(server: statusserver.StatusServer) -> None:
    body = b"x" * 4096
    request = (b"POST /reconcile HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body)) + body
    reply = await raw_exchange(server.address, request)
    assert reply.startswith(b"HTTP/1.1 413 ")


async def test_a_small_body_is_accepted(server: statusserver.StatusServer) -> None:
    request = (b"POST /reconcile HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               b"Content-Length: 2\r\n\r\n{}")
    reply = await raw_exchange(server.address, request)
    assert reply.startswith(b"HTTP/1.1 202 ")


def status_of(reply: bytes) -> int:
    """The status code of a raw HTTP/1.x answer (0 when there is none)."""
    parts = reply.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return 0
    return int(parts[1])


GARBAGE = [
    b"\x16\x03\x01\x00\xff\x01\x00\x00\xfb\x03\x03 tls hello\r\n\r\n",
    b"\x00\x01\x02\x03\r\n\r\n",
    b"HELLO THERE\r\n\r\n",
    b"GET /status HTTP/9.9\r\n\r\n",
    b"GET /status HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    b"GET /status HTTP/1.1\r\nX: " + b"y" * 20000 + b"\r\n\r\n",
    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
]


async def test_garbage_gets_a_4xx_and_other_clients_are_served(
    server: statusserver.StatusServer,
) -> None:
    with anyio.fail_after(10):
        async with await anyio.connect_unix(server.address) as bystander:
            for garbage in GARBAGE:
                reply = await raw_exchange(server.address, garbage)
                assert 400 <= status_of(reply) < 500, (garbage[:40], reply[:80])
            # the connection opened before the garbage still gets its answer
            await bystander.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = await bystander.receive()
            assert status_of(answer) == 200
            assert answer.endswith(b'{"state":"running"}')


async def test_silent_client_is_dropped_after_the_idle_timeout(
    server: statusserver.StatusServer,
) -> None:
    started = time.monotonic()
    assert await raw_exchange(server.address, b"", limit=5.0) == b""
    assert 0.3 <= time.monotonic() - started < 3.0


async def test_half_a_request_is_dropped_after_the_idle_timeout(
    server: statusserver.StatusServer,
) -> None:
    started = time.monotonic()
    reply = await raw_exchange(server.address, b"GET /status HTTP/1.1\r\nHost: x", limit=5.0)
    assert reply == b""
    assert 0.3 <= time.monotonic() - started < 3.0


async def test_thousand_connect_disconnect_cycles_leak_no_fds(
    server: statusserver.StatusServer, client: asking.StatusClient
) -> None:
    await client.healthz()  # warm up: lazily opened resources are not a leak
    before = open_fds()
    for cycle in range(1000):
        stream = await anyio.connect_unix(server.address)
        if cycle % 10 == 0:
            await stream.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await stream.receive()).startswith(b"HTTP/1.1 200")
        await stream.aclose()
    for _ in range(250):  # the server closes its ends as it notices the clients went away
        if open_fds() <= before:
            break
        await anyio.sleep(0.02)
    assert open_fds() == before
    assert await client.healthz() == (200, "running")


# -- the client's own errors --------------------------------------------------------------------

async def test_client_says_daemon_not_running_without_a_socket(short_dir: Path) -> None:
    with pytest.raises(asking.DaemonNotRunning, match="no status socket at"):
        await asking.StatusClient(short_dir / "status.sock").status()


async def test_client_says_daemon_not_running_when_nobody_answers(short_dir: Path) -> None:
    path = short_dir / "status.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    with pytest.raises(asking.DaemonNotRunning, match="nothing answers on"):
        await asking.StatusClient(path).status()


async def test_client_quotes_keys_into_one_segment(
    client: asking.StatusClient, provider: FakeProvider
) -> None:
    with pytest.raises(asking.DaemonError) as caught:
        await client.entity("customer", "../../reconcile")
    assert caught.value.status == 400
    assert provider.calls == []


# -- systemd socket activation ------------------------------------------------------------------

def test_inherited_socket_ignores_another_process_and_cleans_the_environment() -> None:
    environ = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1", "LISTEN_FDNAMES": "status",
               "PATH": "/bin"}
    assert binding.inherited_socket(environ) is None
    assert environ == {"PATH": "/bin"}
    assert binding.inherited_socket({}) is None


async def test_serves_on_the_socket_systemd_passes_as_fd_3(
    short_dir: Path, provider: FakeProvider
) -> None:
    path = short_dir / "activated.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    saved = os.dup(3) if _fd_open(3) else None
    inheritable = saved is not None and os.get_inheritable(3)
    try:
        os.dup2(listener.fileno(), 3)
        listener.close()
        served = statusserver.StatusServer(provider, metrics.Metrics())
        environ = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "1"}
        await served.start(short_dir / "unused.sock", environ=environ)
        try:
            assert environ == {}
            assert not (short_dir / "unused.sock").exists()
            assert await asking.StatusClient(path).healthz() == (200, "running")
        finally:
            await served.stop()
        assert path.exists()  # systemd's socket file is systemd's to remove
    finally:
        if saved is not None:
            os.dup2(saved, 3, inheritable=inheritable)
            os.close(saved)


def test_refuses_an_inherited_socket_of_the_wrong_type() -> None:
    datagram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    saved = os.dup(3) if _fd_open(3) else None
    inheritable = saved is not None and os.get_inheritable(3)
    try:
        os.dup2(datagram.fileno(), 3)
        with pytest.raises(binding.SocketPathError, match="not a Unix stream socket"):
            binding.inherited_socket({"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "1"})
    finally:
        datagram.close()
        if saved is not None:
            os.dup2(saved, 3, inheritable=inheritable)
            os.close(saved)
        else:
            os.close(3)


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


class HangingProvider(FakeProvider):
    """A provider whose /status never answers (a wedged daemon)."""

    async def status(self) -> reports.StatusReport:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


async def test_a_hanging_daemon_times_out_in_the_client_and_stop_is_bounded(
    short_dir: Path,
) -> None:
    served = statusserver.StatusServer(HangingProvider(), metrics.Metrics(), shutdown_timeout=0.3)
    await served.start(short_dir / "status.sock", environ={})
    try:
        with pytest.raises(asking.DaemonUnreachable, match=r"did not answer within 0\.2s"):
            await asking.StatusClient(served.address, timeout=0.2).status()
        assert await asking.StatusClient(served.address).healthz() == (200, "running")
    finally:
        started = time.monotonic()
        with anyio.fail_after(5):
            await served.stop()
    assert time.monotonic() - started < 3.0
