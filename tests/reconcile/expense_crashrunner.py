"""Test-only daemon stand-in for the expense crash-point sweep: ``python -m
tests.reconcile.expense_crashrunner DB``, with the e-conomic sandbox's URLs and tokens in
``SANDBOX_REST_URL``, ``SANDBOX_APIS_URL``, ``SANDBOX_APP_TOKEN``, ``SANDBOX_GRANT_TOKEN`` and
the Moment sandbox's in ``SANDBOX_MOMENT_URL``, ``SANDBOX_MOMENT_COMPANY``,
``SANDBOX_MOMENT_KEY``. Reads the booked entries into the log, runs the reconciler (one write
in flight, so the step a crash names is the only one in doubt) until every expense is in
Moment, and exits 0 (3 when it does not converge in 60 s). ``MOMENT_SYNC_TEST_CRASH_AT`` makes
it SIGKILL itself at that step, as the real daemon would.
"""

from __future__ import annotations

import os
import sys

import anyio

from daemon.core.backoff import Policy
from daemon.core.secrets import Secret
from daemon.economic.client import EconomicClient
from daemon.ingest.expensing import BookedEntries
from daemon.moment.client import MomentClient
from daemon.ops import clocking
from daemon.reconcile.running import Reconciler
from daemon.store.eventlog import EventLog
from tests.reconcile.expensing import EXPENSES


async def main(db: str) -> int:
    env = os.environ
    clock = clocking.SystemClock()  # a daemon of its own, killed at a step: real time
    log = await EventLog.open(db, clock=clock)
    try:
        async with EconomicClient(rest_url=env["SANDBOX_REST_URL"],
                                  apis_url=env["SANDBOX_APIS_URL"],
                                  app_secret_token=Secret(env["SANDBOX_APP_TOKEN"]),
                                  agreement_grant_token=Secret(env["SANDBOX_GRANT_TOKEN"]),
                                  clock=clock, timeout_s=5.0) as client, \
                MomentClient(api_url=env["SANDBOX_MOMENT_URL"],
                             company=env["SANDBOX_MOMENT_COMPANY"],
                             api_key=Secret(env["SANDBOX_MOMENT_KEY"]), clock=clock,
                             timeout_s=5.0) as moment:
            reader = BookedEntries(log=log, client=client, clock=clock,
                                   lookback_s=10 * 365 * 86400.0)
            await reader.read_new()
            rec = Reconciler(log=log, client=client, options=EXPENSES, clock=clock,
                             policy=Policy(base_s=0.01, cap_s=0.2, max_attempts=50),
                             max_in_flight=1, moment=moment)
            with anyio.move_on_after(60.0):
                async with anyio.create_task_group() as tg:
                    await tg.start(rec.run)
                    while True:
                        counts = rec.status().entities["expense"]
                        if counts.desired and counts.in_sync == counts.desired and rec.idle():
                            tg.cancel_scope.cancel()
                            return 0
                        await anyio.sleep(0.02)
            return 3
    finally:
        await log.close()


if __name__ == "__main__":
    sys.exit(anyio.run(main, sys.argv[1]))
