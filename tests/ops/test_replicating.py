"""Watching Litestream: the replica's lag from its metrics, on virtual time. Litestream's
metrics text here is the shape v0.3.13 serves (the drill test reads the real one)."""

from __future__ import annotations

import pytest

from daemon.ops import replicating
from tests.clocks import FakeClock

pytestmark = pytest.mark.anyio
DB = "/var/lib/moment-sync/acme/events.db"


def metrics(shadow: tuple[int, int] | None, replica: tuple[int, int] | None,
            db: str = DB) -> str:
    lines = ["# HELP litestream_db_size The current size of the real DB",
             "# TYPE litestream_db_size gauge", f'litestream_db_size{{db="{db}"}} 16384']
    if shadow is not None:
        lines += ["# TYPE litestream_shadow_wal_index gauge",
                  f'litestream_shadow_wal_index{{db="{db}"}} {shadow[0]}',
                  "# TYPE litestream_shadow_wal_size gauge",
                  f'litestream_shadow_wal_size{{db="{db}"}} {shadow[1]}']
    if replica is not None:
        lines += ["# TYPE litestream_replica_wal_index gauge",
                  f'litestream_replica_wal_index{{db="{db}",name="s3"}} {replica[0]}',
                  "# TYPE litestream_replica_wal_offset gauge",
                  f'litestream_replica_wal_offset{{db="{db}",name="s3"}} {replica[1]}']
    return "\n".join(lines) + "\n"


class Litestream:
    """What the fake metrics endpoint serves next (or the error it raises)."""

    def __init__(self) -> None:
        self.text = metrics((0, 4152), (0, 4152))
        self.error: Exception | None = None

    async def fetch(self, url: str) -> str:
        if self.error is not None:
            raise self.error
        return self.text


def watch(litestream: Litestream, clock: FakeClock, max_lag: float = 60.0) -> replicating.Watch:
    return replicating.Watch(url="http://127.0.0.1:9090/metrics", db_path=DB, max_lag=max_lag,
                             clock=clock, fetch_text=litestream.fetch)


async def test_a_replica_that_holds_the_log_is_ok_with_no_lag() -> None:
    clock, lite = FakeClock(), Litestream()
    w = watch(lite, clock)
    await w.observe()
    assert (w.ok, w.lag_s, w.problem) == (True, 0.0, "")
    assert w.report().watched and w.report().last_error is None


async def test_a_busy_log_followed_a_moment_later_never_fails() -> None:
    clock, lite = FakeClock(), Litestream()
    w = watch(lite, clock, max_lag=10.0)
    for step in range(1, 40):
        # the log grows between samples; the replica holds what the previous sample saw
        lite.text = metrics((0, 4152 * (step + 1)), (0, 4152 * step))
        await w.observe()
        assert w.ok and w.lag_s <= 5.0, (step, w.lag_s)
        clock.advance(5.0)


async def test_a_replica_never_written_fails_after_max_lag_saying_why() -> None:
    clock, lite = FakeClock(), Litestream()
    lite.text = metrics((0, 16512), None)  # no bucket: no replica series at all
    w = watch(lite, clock, max_lag=60.0)
    await w.observe()
    assert w.ok and "bucket may not exist" in w.problem
    clock.advance(60.0)
    await w.observe()
    assert w.ok and w.lag_s == 60.0
    clock.advance(1.0)
    await w.observe()
    ok, detail = w.check()
    assert not ok and w.lag_s == 61.0
    assert detail.startswith("replication is failing: the replica is more than 60s behind")
    assert "credentials may be refused" in detail
    # the sentence stays the same while it keeps failing, so the check is recorded once
    clock.advance(30.0)
    await w.observe()
    assert w.check() == (False, detail)


async def test_a_replica_that_stops_moving_is_behind_by_the_time_since() -> None:
    clock, lite = FakeClock(), Litestream()
    w = watch(lite, clock, max_lag=30.0)
    await w.observe()
    clock.advance(10.0)
    lite.text = metrics((0, 9000), (0, 4152))  # new writes; the upload fails from now on
    await w.observe()
    clock.advance(31.0)
    lite.text = metrics((0, 12000), (0, 4152))
    await w.observe()
    assert not w.ok and w.lag_s == 31.0 and "cannot upload" in w.problem
    lite.text = metrics((0, 12000), (0, 12000))  # fixed: it caught up
    clock.advance(2.0)
    await w.observe()
    assert (w.ok, w.lag_s, w.problem) == (True, 0.0, "")


async def test_litestream_not_answering_fails_after_max_lag_and_counts_from_before() -> None:
    clock, lite = FakeClock(), Litestream()
    w = watch(lite, clock, max_lag=20.0)
    await w.observe()
    lite.error = ConnectionRefusedError(111, "Connection refused")
    clock.advance(25.0)
    await w.observe()
    assert not w.ok and w.lag_s == 25.0 and "did not answer" in w.problem
    # readable again but behind: the lag still runs from the last time it was caught up
    lite.error = None
    lite.text = metrics((0, 9000), (0, 4152))
    clock.advance(5.0)
    await w.observe()
    assert not w.ok and w.lag_s == 30.0


async def test_a_litestream_that_does_not_replicate_this_log_says_so() -> None:
    clock, lite = FakeClock(), Litestream()
    lite.text = metrics((0, 4152), (0, 4152), db="/var/lib/other/events.db")
    w = watch(lite, clock, max_lag=5.0)
    await w.observe()
    clock.advance(6.0)
    await w.observe()
    assert not w.ok and f"does not replicate {DB}" in w.problem


async def test_a_new_generation_starts_the_positions_over() -> None:
    clock, lite = FakeClock(), Litestream()
    w = watch(lite, clock, max_lag=5.0)
    lite.text = metrics((3, 90000), (3, 90000))
    await w.observe()
    clock.advance(1.0)
    lite.text = metrics((0, 4152), (0, 4152))  # a fresh snapshot after the WAL was reset
    await w.observe()
    assert (w.ok, w.lag_s) == (True, 0.0)


async def test_check_once_passes_at_once_or_fails_after_its_window() -> None:
    clock = FakeClock(autojump=True)
    lite = Litestream()
    start = clock.monotonic()
    ok, _ = await replicating.check_once("http://x/metrics", DB, window=10.0, clock=clock,
                                         fetch_text=lite.fetch)
    assert ok and clock.monotonic() == start
    lite.text = metrics((0, 16512), None)
    ok, detail = await replicating.check_once("http://x/metrics", DB, window=10.0,
                                              clock=clock, fetch_text=lite.fetch)
    assert not ok and "in 10s of watching" in detail and "bucket" in detail
    assert clock.monotonic() - start == 10.0


async def test_watching_looks_again_soon_while_something_is_wrong() -> None:
    clock, lite = FakeClock(autojump=True), Litestream()
    lite.error = ConnectionRefusedError(111, "Connection refused")  # Litestream not up yet
    w = watch(lite, clock, max_lag=60.0)
    recorded: list[tuple[float, bool, str]] = []

    async def record(ok: bool, detail: str) -> None:
        recorded.append((clock.monotonic(), ok, detail))
        if len(recorded) == 2:
            lite.error = None  # Litestream answers from now on
        if len(recorded) == 4:
            raise StopAsyncIteration

    start = clock.monotonic()
    with pytest.raises(StopAsyncIteration):
        await replicating.watching(w, record, clock=clock)
    # at once, a second later, a second later (answering now), then 15 s later
    assert [round(t - start, 3) for t, _ok, _d in recorded] == [0.0, 1.0, 2.0, 17.0]
    assert all(ok for _t, ok, _d in recorded)
    assert recorded[-1][2].startswith("Litestream keeps the replica up with the log")
