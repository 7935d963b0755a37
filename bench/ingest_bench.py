"""Benchmark of the Moment webhook receiver over loopback.

``run()`` returns:
- ``ingest.hints_per_s``: webhook hints per second, 50 concurrent clients posting over loopback
  to :class:`daemon.ingest.receiving.Receiver`, each 202 only after the hint is committed to a
  file-backed event log (``synchronous=FULL``; group commit amortises the fsync);
- ``ingest.floor_per_s``: the same clients, same loop, same bodies against a bare aiohttp
  handler that reads the body and answers 202 without storing anything
  (goal: hints_per_s / floor_per_s >= 0.5);
- ``ingest.p99_ms``: the 99th percentile latency of the receiver's 202 under that load.

The hint processor is not running: this measures the receiver and the log, not Moment.
Rounds alternate receiver and floor; throughput is the best round of each, p99 is taken over
every receiver request of every round.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Final

import aiohttp
import anyio
from aiohttp import web

from daemon.core.secrets import Secret
from daemon.ingest import receiving
from daemon.ops import clocking
from daemon.store import eventlog

CLIENTS: Final = 50
PER_CLIENT: Final = 40
ROUNDS: Final = 5
TOKEN: Final = "bench-webhook-token-51f0"
BODIES: Final = [
    f'{{"event": "UPDATE", "customer": {{"id": {1000 + i}, "customerNumber": "{10001 + i}"}}}}'
    .encode() for i in range(100)
]
HEADERS: Final = {"Content-Type": "application/json"}


async def _load(session: aiohttp.ClientSession, url: str) -> tuple[float, list[float]]:
    """Requests per second and each request's latency (s), from CLIENTS concurrent posters."""
    latencies: list[float] = []

    async def client(offset: int) -> None:
        for i in range(PER_CLIENT):
            body = BODIES[(offset + i) % len(BODIES)]
            start = time.perf_counter()
            async with session.post(url, data=body, headers=HEADERS) as response:
                await response.read()
                if response.status != 202:
                    raise RuntimeError(f"bench request answered {response.status}")
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for n in range(CLIENTS):
            tg.start_soon(client, n)
    elapsed = time.perf_counter() - start
    return CLIENTS * PER_CLIENT / elapsed, latencies


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def _floor_site() -> tuple[web.AppRunner, int]:
    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=202, content_type="application/json",
                            body=b'{"status": 202}')

    app = web.Application(client_max_size=receiving.MAX_BODY_BYTES)
    app.router.add_post(receiving.ROUTE, accept)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    address = runner.addresses[0]
    return runner, int(address[1])


async def _measure(*, receiver_url: str, floor_url: str) -> dict[str, float]:
    """The receiver and the bare handler, round by round side by side; the best of each."""
    urls = {"receiver": receiver_url, "floor": floor_url}
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(connector=connector) as session:
        await _load(session, urls["floor"])  # warm up connections and the log
        await _load(session, urls["receiver"])
        best = {"receiver": 0.0, "floor": 0.0}
        receiver_latencies: list[float] = []
        for _ in range(ROUNDS):
            for name in ("receiver", "floor"):
                rate, latencies = await _load(session, urls[name])
                best[name] = max(best[name], rate)
                if name == "receiver":
                    receiver_latencies += latencies
    return {
        "ingest.hints_per_s": round(best["receiver"], 1),
        "ingest.floor_per_s": round(best["floor"], 1),
        "ingest.p99_ms": round(_p99(receiver_latencies) * 1000, 2),
    }


async def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        async with await eventlog.EventLog.open(Path(tmp) / "events.db",
                                                clock=clocking.SystemClock()) as log:
            receiver = receiving.Receiver(log=log, token=Secret(TOKEN), host="127.0.0.1",
                                          port=0)
            floor_runner, floor_port = await _floor_site()
            try:
                async with anyio.create_task_group() as serving:
                    # served as the daemon serves it: through its own accept loop and bounds
                    port = await serving.start(receiver.serve)
                    figures = await _measure(receiver_url=f"http://127.0.0.1:{port}"
                                             f"{receiving.PATH_PREFIX}{TOKEN}",
                                             floor_url=f"http://127.0.0.1:{floor_port}"
                                             f"{receiving.PATH_PREFIX}{TOKEN}")
                    serving.cancel_scope.cancel()
                stored = await log.count()
            finally:
                await floor_runner.cleanup()
                await receiver.stop()
    expected = (ROUNDS + 1) * CLIENTS * PER_CLIENT
    if stored != expected:
        raise RuntimeError(f"the log holds {stored} hints, expected {expected}")
    return figures


if __name__ == "__main__":
    import json

    print(json.dumps(anyio.run(run), indent=2))
