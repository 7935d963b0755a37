"""Benchmarks of the e-conomic client against the in-process sandbox.

``run()`` returns:
- ``economic.client_rps``: GETs of one customer per second through :class:`EconomicClient`;
- ``economic.raw_aiohttp_rps``: the same GET in a bare aiohttp loop, same sandbox, same run
  (goal: client_rps / raw_aiohttp_rps >= 0.8);
- ``economic.paging_calls_10k``: calls the client makes to list 10,000 customers (goal: 10).
The sandbox's rate limit is switched off so the figures measure the client, not the bucket.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from daemon.core.secrets import Secret
from daemon.economic.client import EconomicClient
from daemon.ops import clocking
from daemon.sandbox.economic import EconomicSandbox, RateLimit

REQUESTS = 1500
ROUNDS = 5


async def _client_rps(client: EconomicClient) -> float:
    start = time.perf_counter()
    for _ in range(REQUESTS):
        await client.get_customer(1)
    return REQUESTS / (time.perf_counter() - start)


async def _raw_rps(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> float:
    start = time.perf_counter()
    for _ in range(REQUESTS):
        async with session.get(url, headers=headers) as resp:
            await resp.read()
    return REQUESTS / (time.perf_counter() - start)


async def run() -> dict[str, float]:
    async with EconomicSandbox.running(rate_limit=RateLimit(enabled=False),
                                       record_limit=1000) as sb:
        sb.agreement.add_customers(10_000)
        headers = {"X-AppSecretToken": sb.app_secret_token,
                   "X-AgreementGrantToken": sb.agreement_grant_token,
                   "Accept": "application/json"}
        async with EconomicClient(rest_url=sb.rest_url, apis_url=sb.apis_url,
                                  app_secret_token=Secret(sb.app_secret_token),
                                  agreement_grant_token=Secret(sb.agreement_grant_token),
                                  clock=clocking.SystemClock(),
                                  daily_call_budget=10_000_000) as client, \
                aiohttp.ClientSession() as session:
            url = f"{sb.rest_url}/customers/1"
            await client.get_customer(1)  # warm both connections
            await _raw_rps(session, url, headers)
            client_best = raw_best = 0.0
            for _ in range(ROUNDS):  # interleaved, best of each, to even out noise
                client_best = max(client_best, await _client_rps(client))
                raw_best = max(raw_best, await _raw_rps(session, url, headers))
            def pages() -> int:  # collection GETs only, not /rest/customers/{n}
                return sum(1 for s in sb.served if s.path == "/rest/customers")
            before = pages()
            seen = sum([1 async for _ in client.iter_customers()])
            calls = pages() - before
            if seen != 10_000:
                raise RuntimeError(f"listed {seen} customers, not 10000")
    return {"economic.client_rps": round(client_best, 1),
            "economic.raw_aiohttp_rps": round(raw_best, 1),
            "economic.paging_calls_10k": float(calls)}


if __name__ == "__main__":
    print(asyncio.run(run()))
