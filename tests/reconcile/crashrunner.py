"""Test-only daemon stand-in for the crash-point sweep: ``python -m tests.reconcile.crashrunner
DB``, with the sandbox's URLs and tokens in ``SANDBOX_REST_URL``, ``SANDBOX_APIS_URL``,
``SANDBOX_APP_TOKEN`` and ``SANDBOX_GRANT_TOKEN``. Opens the event log, runs the reconciler
until every invoice's transfer is complete, and exits 0 (3 when it does not converge in 60 s).
``MOMENT_SYNC_TEST_CRASH_AT`` makes it SIGKILL itself at that step, as the real daemon would.

With ``SANDBOX_MOMENT_URL``, ``SANDBOX_MOMENT_COMPANY`` and ``SANDBOX_MOMENT_KEY`` (a Moment
sandbox), payments are on: it reads the paid status of the booked invoices from e-conomic once
the invoices are done, and runs until every payment is in Moment too.
"""

from __future__ import annotations

import os
import sys

import anyio

from daemon.core import mapping as mp
from daemon.core.backoff import Policy
from daemon.core.secrets import Secret
from daemon.economic.client import EconomicClient
from daemon.ingest import paying
from daemon.moment.client import MomentClient
from daemon.ops import clocking
from daemon.reconcile.running import Reconciler
from daemon.store.eventlog import EventLog


def _moment(clock: clocking.SystemClock) -> MomentClient | None:
    env = os.environ
    if "SANDBOX_MOMENT_URL" not in env:
        return None
    return MomentClient(api_url=env["SANDBOX_MOMENT_URL"], company=env["SANDBOX_MOMENT_COMPANY"],
                        api_key=Secret(env["SANDBOX_MOMENT_KEY"]), clock=clock, timeout_s=5.0)


async def main(db: str) -> int:
    env = os.environ
    clock = clocking.SystemClock()  # a daemon of its own, killed at a step: real time
    log = await EventLog.open(db, clock=clock)
    moment = _moment(clock)
    try:
        async with EconomicClient(rest_url=env["SANDBOX_REST_URL"],
                                  apis_url=env["SANDBOX_APIS_URL"],
                                  app_secret_token=Secret(env["SANDBOX_APP_TOKEN"]),
                                  agreement_grant_token=Secret(env["SANDBOX_GRANT_TOKEN"]),
                                  clock=clock, timeout_s=5.0) as client:
            if moment is not None:
                await moment.__aenter__()
            rec = Reconciler(log=log, client=client, options=mp.Options(payments=True),
                             clock=clock, moment=moment,
                             policy=Policy(base_s=0.01, cap_s=0.2, max_attempts=50))
            reader = paying.PaidStatus(log=log, client=client, clock=clock)
            read = False
            with anyio.move_on_after(60.0):
                async with anyio.create_task_group() as tg:
                    await tg.start(rec.run)
                    while True:
                        entities = rec.status().entities
                        done = all(c.in_sync == c.desired for c in entities.values())
                        if done and rec.idle() and (moment is None or read):
                            tg.cancel_scope.cancel()
                            return 0
                        if done and rec.idle() and moment is not None:
                            await reader.refresh()  # the invoices are booked: their payments
                            read = True
                        await anyio.sleep(0.02)
            return 3
    finally:
        if moment is not None:
            await moment.aclose()
        await log.close()


if __name__ == "__main__":
    sys.exit(anyio.run(main, sys.argv[1]))
