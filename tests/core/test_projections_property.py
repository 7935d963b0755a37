"""Projections are pure folds: incremental, full replay and resume-from-checkpoint agree."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.core import events as ev
from daemon.core import projections as pj
from daemon.store import eventlog, replaying
from tests.clocks import FakeClock

NUMBERS = st.sampled_from(["1", "2", "3", "10001"])

customer = st.builds(
    ev.CustomerUpserted, moment_id=st.integers(1, 4), number=NUMBERS,
    name=st.sampled_from(["A", "B", "Ø"]), email=st.sampled_from(["", "a@x.dk"]),
    version=st.integers(0, 3))
project = st.builds(ev.ProjectUpserted, moment_id=st.integers(1, 4), number=NUMBERS,
                    name=st.sampled_from(["P", "Q"]), customer_number=NUMBERS)
invoice = st.builds(ev.InvoiceFinalized, moment_id=st.integers(1, 3), number=st.integers(1, 3),
                    total_including_vat=st.sampled_from(["100.00", "-50.00"]),
                    customer_number=NUMBERS)
gone = st.builds(ev.EntityGone, kind=st.sampled_from(ev.KINDS), key=NUMBERS,
                 moment_id=st.integers(1, 4))
conflict = st.builds(ev.InvoiceConflict, number=st.integers(1, 3), moment_id=st.integers(4, 6),
                     recorded_moment_id=st.integers(1, 3))
outcome = st.one_of(
    st.builds(ev.WriteIntended, kind=st.sampled_from(ev.KINDS), key=NUMBERS,
              action=st.sampled_from(["create", "update", "transfer"]),
              idempotency_key=st.text(max_size=3), journal_number=st.none() | st.just(2)),
    st.builds(ev.InvoiceEntryGone, kind=st.just("invoice"), key=NUMBERS,
              entry_number=st.none() | st.integers(1, 9)),
    st.builds(ev.Applied, kind=st.sampled_from(ev.KINDS), key=NUMBERS, action=st.just("create"),
              content_hash=st.text(max_size=4), economic_number=st.none() | st.integers(1, 9),
              warnings=st.lists(st.sampled_from(["cut", "x"]), max_size=2).map(tuple)),
    st.builds(ev.Failed, kind=st.sampled_from(ev.KINDS), key=NUMBERS, action=st.just("create"),
              error=st.just("boom"), retryable=st.booleans(), attempt=st.integers(1, 5)),
    st.builds(ev.Parked, kind=st.sampled_from(ev.KINDS), key=NUMBERS, reason=st.just("r")),
    st.builds(ev.Unparked, kind=st.sampled_from(ev.KINDS), key=NUMBERS),
    st.builds(ev.RetryRequested, kind=st.sampled_from(ev.KINDS), key=NUMBERS),
    st.builds(ev.InvoiceEntryCreated, kind=st.just("invoice"), key=NUMBERS,
              journal_number=st.just(1),
              entry_number=st.integers(1, 9), voucher_number=st.integers(1, 9),
              accounting_year=st.just("2026")),
    st.builds(ev.InvoiceBooked, kind=st.just("invoice"), key=NUMBERS,
              accounting_year=st.just("2026"), voucher_number=st.integers(1, 9)),
    st.builds(ev.InvoicePdfSkipped, kind=st.just("invoice"), key=NUMBERS, reason=st.just("big")),
    st.builds(ev.PollCursorAdvanced, kind=st.sampled_from(ev.KINDS), cursor=st.text(max_size=3),
              full_scan=st.booleans()),
    st.builds(ev.StrayReported, kind=st.just("customer"), key=NUMBERS, number=st.integers(1, 9)),
    st.builds(ev.HintReceived, kind=st.sampled_from(ev.KINDS), moment_id=st.integers(1, 4)),
)
booked = st.builds(ev.BookedEntryRecorded, year=st.sampled_from(["2025", "2026"]),
                   entry_number=st.integers(1, 4), entry_type=st.sampled_from([3, 5, 10]),
                   project_number=NUMBERS, amount=st.sampled_from(["100.00", "-12.50", "x"]),
                   problem=st.sampled_from(["", "amount does not parse"]))
expense_outcome = st.one_of(
    st.builds(ev.WriteIntended, kind=st.just("expense"), key=st.sampled_from(["2026:1", "2025:2"]),
              action=st.just("create_expense"), idempotency_key=st.text(max_size=3)),
    st.builds(ev.Applied, kind=st.just("expense"), key=st.sampled_from(["2026:1", "2025:2"]),
              action=st.just("create_expense"), content_hash=st.text(max_size=4),
              found_by_lookup=st.booleans()),
    st.builds(ev.RestoreMarked, entities=st.just(("expense:2026:1",)),
              through_seq=st.integers(0, 30)),
    # minutes far apart, so some fall out of the row's 24 hours as newer ones are folded in
    st.builds(ev.RateLimitRecorded, paused_until=st.sampled_from([0.0, 1_780_000_600.5]),
              calls=st.lists(st.tuples(st.integers(29_666_000, 29_670_000), st.integers(1, 9)),
                             max_size=3, unique_by=lambda p: p[0]).map(
                                 lambda c: tuple(sorted(c)))),
)
any_event = st.one_of(customer, project, invoice, gone, conflict, outcome, booked,
                      expense_outcome)
# idempotency keys drawn from a small pool, so duplicates are common
stream = st.lists(st.tuples(any_event, st.integers(0, 40).map(lambda i: f"k{i}")),
                  min_size=1, max_size=60)


def _snapshot(tables: pj.Tables) -> dict[str, dict[str, bytes]]:
    return {table: {key: b"%d " % tables.row_seq[table][key] + pj.encode_row(row)
                    for key, row in rows.items()} for table, rows in tables.rows.items()}


async def _live(path: Path) -> dict[str, dict[str, bytes]]:
    rows, _checkpoint, _last = await replaying.live_rows(str(path))
    return rows


async def _scenario(tmp: Path, items: list[tuple[ev.Event, str]], split: int) -> None:
    incremental = tmp / "incremental" / "events.db"
    resumed = tmp / "resumed" / "events.db"
    incremental.parent.mkdir()
    resumed.parent.mkdir()
    # 1. incremental: one append per event, as the daemon does
    async with await eventlog.EventLog.open(incremental, clock=FakeClock()) as log:
        for event, key in items:
            await log.append(event, idempotency_key=key, occurred_at="2026-11-20T00:00:00Z")
        in_memory = _snapshot(log.tables)
    live = await _live(incremental)
    # 2. full replay from zero
    replayed, _count = await replaying.fold_all(str(incremental))
    assert _snapshot(replayed) == live == in_memory
    # 3. resume: append the first part, then open without catching up and append the rest
    #    through a log whose checkpoint lags; catching up on open folds the gap
    async with await eventlog.EventLog.open(resumed, clock=FakeClock()) as log:
        for event, key in items[:split]:
            await log.append(event, idempotency_key=key, occurred_at="2026-11-20T00:00:00Z")
    async with await eventlog.EventLog.open(resumed, clock=FakeClock()) as log:
        for event, key in items[split:]:
            await log.append(event, idempotency_key=key, occurred_at="2026-11-20T00:00:00Z")
    assert await _live(resumed) == live
    verdict = await replaying.replay_verify(resumed)
    assert verdict.ok, verdict.differences


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=stream, data=st.data())
def test_incremental_replay_and_resume_agree(tmp_path_factory: pytest.TempPathFactory,
                                             items: list[tuple[ev.Event, str]],
                                             data: st.DataObject) -> None:
    split = data.draw(st.integers(0, len(items)))
    anyio.run(_scenario, tmp_path_factory.mktemp("p"), items, split)


@settings(max_examples=60, deadline=None)
@given(items=stream, split=st.integers(0, 60))
def test_resume_from_any_checkpoint_in_memory(items: list[tuple[ev.Event, str]],
                                              split: int) -> None:
    """The pure fold: folding a prefix, storing its rows as the store does (encoded), loading
    them into fresh tables, then folding the rest, equals one pass."""
    seen: dict[str, int] = {}
    numbered: list[tuple[int, ev.Event]] = []
    for event, key in items:
        if key not in seen:
            seen[key] = len(seen) + 1
            numbered.append((seen[key], event))
    whole = pj.Tables()
    for seq, event in numbered:
        whole.apply(seq, "t", event)
    first, rest = numbered[:split], numbered[split:]
    prefix = pj.Tables()
    for seq, event in first:
        prefix.apply(seq, "t", event)
    part = pj.Tables()
    for table, rows in prefix.rows.items():
        for key, row in rows.items():
            part.rows[table][key] = pj.decode_row(table, pj.encode_row(row))
            part.row_seq[table][key] = prefix.row_seq[table][key]
    for seq, event in rest:
        part.apply(seq, "t", event)
    assert _snapshot(part) == _snapshot(whole)
