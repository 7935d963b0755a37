"""Test-only daemon stand-in for the crash-point sweep: ``python -m tests.reconcile.crashrunner
DB``, with the sandbox's URLs and tokens in ``SANDBOX_REST_URL``, ``SANDBOX_APIS_URL``,
``SANDBOX_APP_TOKEN`` and ``SANDBOX_GRANT_TOKEN``. Opens the event log, runs the reconciler
until every invoice's transfer is complete, and exits 0 (3 when it does not converge in 60 s).
``MOMENT_SYNC_TEST_CRASH_AT`` makes it SIGKILL itself at that step, as the real daemon would.
"""

from __future__ import annotations

import os
import sys

import anyio

from daemon.core import mapping as mp
from daemon.core.backoff import Policy
from daemon.core.secrets import Secret
from daemon.economic.client import EconomicClient
from daemon.ops import clocking
from daemon.reconcile.running import Reconciler
from daemon.store.eventlog import EventLog


async def main(db: str) -> int:
    env = os.environ
    clock = clocking.SystemClock()  # a daemon of its own, killed at a step: real time
    log = await EventLog.open(db, clock=clock)
    try:
        async with EconomicClient(rest_url=env["SANDBOX_REST_URL"],
                                  apis_url=env["SANDBOX_APIS_URL"],
                                  app_secret_token=Secret(env["SANDBOX_APP_TOKEN"]),
                                  agreement_grant_token=Secret(env["SANDBOX_GRANT_TOKEN"]),
                                  clock=clock, timeout_s=5.0) as client:
            rec = Reconciler(log=log, client=client, options=mp.Options(),
                             clock=clock,
                             policy=Policy(base_s=0.01, cap_s=0.2, max_attempts=50))
            with anyio.move_on_after(60.0):
                async with anyio.create_task_group() as tg:
                    await tg.start(rec.run)
                    while True:
                        counts = rec.status().entities["invoice"]
                        if counts.in_sync == counts.desired and rec.idle():
                            tg.cancel_scope.cancel()
                            return 0
                        await anyio.sleep(0.02)
            return 3
    finally:
        await log.close()


if __name__ == "__main__":
    sys.exit(anyio.run(main, sys.argv[1]))
