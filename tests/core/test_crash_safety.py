"""SIGKILL at random moments: the reopened log is a gap-free prefix, every acknowledged append
survived, and the projections verify against a replay from zero."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from daemon.store import eventlog, replaying
from tests.clocks import FakeClock
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def _run_and_kill(path: Path, delay: float) -> set[str]:
    """Start the appender, and SIGKILL it ``delay`` seconds after its first acknowledged append
    (not after the spawn: a loaded machine's slow start must not leave a run with nothing)."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.core.appender", str(path)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    assert first, f"the appender acknowledged nothing: {err.decode()[-2000:]}"
    return {line for line in (first + out).decode().splitlines() if line}


async def _check(path: Path, acknowledged: set[str]) -> int:
    async with await eventlog.EventLog.open(path, clock=FakeClock()) as log:
        records = await log.read(limit=10**9)
    seqs = [r.seq for r in records]
    assert seqs == list(range(1, len(seqs) + 1)), "sequence numbers have a gap"
    keys = {r.idempotency_key for r in records}
    assert acknowledged <= keys, f"acknowledged but lost: {sorted(acknowledged - keys)[:5]}"
    for task in range(4):
        mine = sorted(int(k.split("-")[1]) for k in keys if k.startswith(f"t{task}-"))
        assert mine == list(range(len(mine))), f"task {task} is not a prefix"
    verdict = await replaying.replay_verify(path)
    assert verdict.ok, verdict.differences[:3]
    return len(records)


def test_sigkill_many_times(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    rng = random.Random(7)
    acknowledged: set[str] = set()
    counts = []
    for _ in range(12):
        acknowledged |= _run_and_kill(path, rng.uniform(0.0, 0.8))
        counts.append(anyio.run(_check, path, acknowledged))
    assert counts[-1] > counts[0] > 0, "the appender made no progress between kills"
