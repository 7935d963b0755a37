"""How the daemon records preflight verdicts (``preflight.record_checks``): one event per change,
and the alert a person gets says what actually happened."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.ops import alerts, preflight
from daemon.store import eventlog
from tests.clocks import FakeClock


class Recorder:
    def __init__(self) -> None:
        self.alerts: list[alerts.Alert] = []

    def alert(self, alert: alerts.Alert) -> None:
        self.alerts.append(alert)


def fail(name: str, detail: str) -> preflight.Check:
    return preflight.Check(name=name, ok=False, detail=detail)


@pytest.mark.anyio
async def test_a_tokens_check_failed_by_a_5xx_is_not_called_a_refusal(tmp_path: Path) -> None:
    recorder = Recorder()
    async with await eventlog.EventLog.open(tmp_path / "events.db", clock=FakeClock()) as log:
        await preflight.record_checks(
            log, [fail("tokens", "could not reach e-conomic: GET /self -> 500")],
            recorder, clock=FakeClock())
        await preflight.record_checks(
            log, [fail("tokens", "e-conomic refused the tokens: GET /self -> 401")],
            recorder, clock=FakeClock())
    assert [a.kind for a in recorder.alerts] == [alerts.AlertKind.CHECK_FAILED,
                                                 alerts.AlertKind.TOKENS_REJECTED]


@pytest.mark.anyio
async def test_an_unchanged_verdict_is_recorded_and_alerted_once(tmp_path: Path) -> None:
    recorder = Recorder()
    async with await eventlog.EventLog.open(tmp_path / "events.db", clock=FakeClock()) as log:
        for _ in range(3):
            await preflight.record_checks(log, [fail("journal", "journal 1 does not exist")],
                                       recorder, clock=FakeClock())
        seq = log.last_seq
        await preflight.record_checks(log, [preflight.Check(name="journal", ok=True,
                                                         detail="journal 1 exists")],
                                   recorder, clock=FakeClock())
        assert log.last_seq == seq + 1
        assert log.tables.daemon()["check:journal"].value == "ok"
    assert len(recorder.alerts) == 1
