"""Test helper run as a subprocess: append events from 4 tasks forever, printing each
acknowledged idempotency key (flushed) so the test knows what was promised durable."""

from __future__ import annotations

import sys

import anyio

from daemon.core import events as ev
from daemon.ops import clocking
from daemon.store import eventlog


async def main(path: str) -> None:
    async with await eventlog.EventLog.open(path, clock=clocking.SystemClock()) as log:
        done = {r.idempotency_key for r in await log.read(limit=10**9)}

        async def writer(task: int) -> None:
            i = 0
            while True:
                key = f"t{task}-{i}"
                if key not in done:
                    event = (ev.CustomerUpserted(moment_id=i, number=str(i % 50), name=key)
                             if i % 3 else ev.Parked(kind="project", key=str(i % 20), reason=key))
                    await log.append(event, idempotency_key=key)
                    sys.stdout.write(key + "\n")
                    sys.stdout.flush()
                i += 1

        async with anyio.create_task_group() as tg:
            for task in range(4):
                tg.start_soon(writer, task)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
