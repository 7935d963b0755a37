"""Random bytes at the status socket: an error answer or a closed connection, never a crash,
and the next client is served."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.ops import asking, metrics, statusserver
from tests.ops.fakes import FakeProvider

_REQUEST_LINE = st.sampled_from([b"", b"GET / HTTP/1.1\r\n", b"POST /reconcile HTTP/1.1\r\n",
                                 b"GET /status HTTP/1.1\r\nContent-Length: 99999999\r\n"])


async def _exchange(path: str, data: bytes) -> bytes:
    received = bytearray()
    async with await anyio.connect_unix(path) as stream:
        await stream.send(data)
        await stream.send_eof()
        while True:
            try:
                received += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return bytes(received)


async def _check(data: bytes) -> None:
    directory = Path(tempfile.mkdtemp(dir="/tmp", prefix="ms-fuzz-"))
    served = statusserver.StatusServer(FakeProvider(), metrics.Metrics(), idle_timeout=0.5)
    try:
        await served.start(directory / "s.sock", environ={})
        with anyio.fail_after(5):
            reply = await _exchange(served.address, data)
            status = reply[9:12]
            assert reply == b"" or reply.startswith(b"HTTP/1."), reply[:60]
            assert not status.startswith(b"5"), reply[:200]
            assert await asking.StatusClient(served.address).healthz() == (200, "running")
    finally:
        await served.stop()
        shutil.rmtree(directory, ignore_errors=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(head=_REQUEST_LINE, junk=st.binary(max_size=2048))
def test_random_bytes_never_break_the_server(head: bytes, junk: bytes) -> None:
    anyio.run(_check, head + junk, backend="asyncio")
