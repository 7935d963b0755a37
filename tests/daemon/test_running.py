"""The real daemon as a subprocess (``python -m daemon run``) against both sandboxes.

One daemon serves the whole module, under a fake ``NOTIFY_SOCKET`` with ``WATCHDOG_USEC`` 2 s
and ``WATCHDOG_PID`` its own pid, as systemd sets them; it runs until the module is done, so its
tests pass in any order (sd_notify, the status socket, the commands, SIGHUP).
SIGTERM and the stopped daemon's state are test_stopped.py's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon.core import reports
from tests.daemon import harness, speaking

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

EVENT_KEYS = {"seq", "type", "kind", "key", "idempotency_key", "occurred_at", "recorded_at",
              "payload"}


class Started:
    """The module's daemon, and what the test saw the instant ``READY=1`` arrived."""

    def __init__(self, daemon: harness.Daemon, healthz: speaking.Reply,
                 status: speaking.Reply) -> None:
        self.daemon = daemon
        self.ready_at = time.monotonic()
        self.healthz_at_ready = healthz
        self.status_at_ready = status

    @property
    def setup(self) -> harness.Setup:
        return self.daemon.setup


@pytest.fixture(scope="module")
def started(sandboxes: harness.Sandboxes) -> Iterator[Started]:
    setup = harness.write_config(sandboxes, prefix="ms-run-")
    daemon = harness.Daemon(setup, watchdog_pid="self").start()
    try:
        daemon.wait_for("READY=1")
        # the very next thing: the socket must already answer
        healthz = daemon.ask("GET", "/healthz")
        status = daemon.ask("GET", "/status")
        yield Started(daemon, healthz, status)
    finally:
        daemon.close()


def events_json(setup: harness.Setup, *args: str) -> list[dict[str, Any]]:
    done = harness.cli("events", "--json", "-c", str(setup.config), *args)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


# --- sd_notify -----------------------------------------------------------------------------


def test_ready_comes_only_once_the_status_socket_answers(started: Started) -> None:
    assert started.healthz_at_ready.status == 200
    assert started.healthz_at_ready.json() == {"state": "running"}
    assert started.status_at_ready.status == 200
    assert started.status_at_ready.json()["state"] in ("running", "degraded")


def test_watchdog_pings_arrive_while_the_daemon_is_healthy(started: Started) -> None:
    """WATCHDOG_USEC 2 s: a ping every second while every component beats; pings keep coming
    after the first freshness window, where a wedged reconciler gives none
    (test_watchdog_wedged.py), as its control. (Waited for, not counted in a window: a loaded
    machine delays pings, it does not make them wrong.)"""
    daemon, after = started.daemon, started.ready_at + 2.0

    def later_pings() -> int:
        return sum(1 for at, m in list(daemon.messages)
                   if at > after and "WATCHDOG=1" in m.split("\n"))
    harness.wait_until(lambda: later_pings() >= 2, timeout=30, every=0.1,
                       what="two watchdog pings after the first freshness window")


# --- the status socket ---------------------------------------------------------------------


def test_status_has_the_documented_shape(started: Started) -> None:
    status = harness.in_sync(started.daemon)
    assert status["state"] == "running"
    assert isinstance(status["version"], str) and status["version"]
    assert isinstance(status["uptime_s"], float | int) and status["uptime_s"] >= 0
    assert isinstance(status["log"]["last_seq"], int) and status["log"]["last_seq"] > 0
    assert isinstance(status["log"]["events"], int)
    assert isinstance(status["projections"]["checkpoint"], int)
    assert status["projections"]["lag"] == 0
    assert set(status["entities"]) == {"customer", "project", "invoice"}
    for counts in status["entities"].values():
        assert {"desired", "in_sync", "pending", "parked"} <= set(counts)
        assert all(isinstance(counts[k], int) for k in ("desired", "in_sync", "pending",
                                                          "parked"))
    economic = status["economic"]
    assert {"used", "limit", "window_s"} <= set(economic["rate_limit"])
    assert economic["rate_limit"]["limit"] > 0
    assert isinstance(economic["calls_today"], int) and economic["calls_today"] > 0
    assert economic["paused_until"] is None and economic["last_error"] is None
    moment = status["moment"]
    assert {"last_webhook_at", "last_poll_at", "poll_cursor", "clock_skew_s"} <= set(moment)
    assert isinstance(moment["clock_skew_s"], float)
    assert set(moment["poll_cursor"]) == {"customer", "project", "invoice"}
    assert isinstance(moment["last_poll_at"], str)
    # the Moment client's limiter, as e-conomic's: the daemon's pace (DEFAULT_PACE), no pause
    assert moment["rate_limit"]["limit"] == 500 and moment["rate_limit"]["window_s"] == 60
    assert isinstance(moment["rate_limit"]["used"], int | float)
    assert moment["paused_until"] is None and moment["rate_limited"] == 0
    reconcile = status["reconcile"]
    assert {"last_full_at", "last_incremental_at", "drift_repaired", "strays"} <= set(reconcile)
    assert isinstance(reconcile["last_full_at"], str)
    assert isinstance(reconcile["drift_repaired"], int)
    assert isinstance(reconcile["strays"], list)
    checks = {c["name"]: c for c in status["checks"]}
    assert {"tokens", "project_module", "journal", "accounting_year"} <= set(checks)
    assert all(c["ok"] is True and isinstance(c["detail"], str) for c in checks.values())
    # the CLI reads the same StatusReport the daemon sends: nothing on the wire is lost on the
    # way back through it, and it has no field the wire lacks
    assert msgspec.to_builtins(reports.decode_status(msgspec.json.encode(status))) == status


def test_healthz_answers_200_while_running(started: Started) -> None:
    reply = started.daemon.ask("GET", "/healthz")
    assert (reply.status, reply.json()) == (200, {"state": "running"})


def test_entity_answer_has_desired_state_live_and_history(started: Started) -> None:
    harness.in_sync(started.daemon)
    reply = started.daemon.ask("GET", "/entities/customer/10001")
    assert reply.status == 200
    entity = reply.json()
    assert {"desired", "state", "live", "history"} <= set(entity)
    desired = entity["desired"]["fact"]
    assert desired["number"] == "10001" and desired["name"]
    assert entity["state"]["economic_number"] == 10001
    assert entity["state"]["parked"] is False
    assert isinstance(entity["live"], dict)
    assert entity["live"]["customerNumber"] == 10001
    assert entity["live"]["name"] == desired["name"]
    types = [h["type"] for h in entity["history"]]
    assert "customer_upserted" in types and "applied" in types, types
    seqs = [h["seq"] for h in entity["history"]]
    assert seqs == sorted(seqs)


def test_an_unknown_entity_is_404(started: Started) -> None:
    assert started.daemon.ask("GET", "/entities/customer/99999").status == 404


def test_post_reconcile_answers_202_with_the_count_queued(started: Started) -> None:
    reply = started.daemon.ask("POST", "/reconcile")
    assert reply.status == 202
    body = reply.json()
    assert set(body) == {"queued"} and isinstance(body["queued"], int) and body["queued"] >= 0


def test_retrying_an_item_that_is_not_parked_is_404(started: Started) -> None:
    harness.in_sync(started.daemon)
    reply = started.daemon.ask("POST", "/parked/customer/10001/retry")
    assert reply.status == 404
    assert "error" in reply.json()


def test_metrics_parse_and_have_the_documented_families(started: Started) -> None:
    reply = started.daemon.ask("GET", "/metrics")
    assert reply.status == 200
    assert reply.content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(reply.body.decode())}
    expected = {
        "moment_sync_events_appended": "counter",
        "moment_sync_projection_lag_events": "gauge",
        "moment_sync_queue_depth": "gauge",
        "moment_sync_parked_items": "gauge",
        "moment_sync_economic_calls": "counter",
        "moment_sync_economic_rate_limited": "counter",
        "moment_sync_economic_rate_limit_used": "gauge",
        "moment_sync_economic_calls_today": "gauge",
        "moment_sync_moment_rate_limited": "counter",
        "moment_sync_moment_rate_limit_wait_seconds": "counter",
        "moment_sync_moment_rate_limit_used": "gauge",
        "moment_sync_moment_rate_limit_limit": "gauge",
        "moment_sync_moment_paused": "gauge",
        "moment_sync_drift_repaired": "counter",
        "moment_sync_last_successful_reconcile_timestamp_seconds": "gauge",
    }
    for name, kind in expected.items():
        assert name in families, f"{name} missing from /metrics"
        assert families[name].type == kind, name
    appended = sum(s.value for s in families["moment_sync_events_appended"].samples
                   if s.name.endswith("_total"))
    assert appended > 0
    calls = [s for s in families["moment_sync_economic_calls"].samples
             if s.name.endswith("_total")]
    assert any(s.labels["status"] == "200" for s in calls)
    # numbers are folded out of endpoint labels
    assert all(not any(part.isdigit() for part in s.labels["endpoint"].split("/"))
               for s in calls)


def test_the_status_socket_is_mode_0660(started: Started) -> None:
    mode = started.setup.socket.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660


def raw_unix(path: Path, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(10)
        conn.connect(str(path))
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_garbage_sending_client_gets_a_4xx_and_disturbs_nobody(started: Started) -> None:
    answer = raw_unix(started.setup.socket, b"\x00\x01\x02 garbage \xff\r\n\r\n")
    status_line = answer.split(b"\r\n", 1)[0].split()
    assert status_line[0] in (b"HTTP/1.0", b"HTTP/1.1") and status_line[1].startswith(b"4"), \
        answer[:80]
    assert started.daemon.ask("GET", "/healthz").status == 200


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_thousand_connect_disconnect_cycles_leak_no_descriptors(started: Started) -> None:
    pid = started.daemon.pid
    started.daemon.ask("GET", "/healthz")
    before = open_fds(pid)
    for i in range(1000):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(str(started.setup.socket))
            if i % 10 == 0:  # some send half a request before leaving
                conn.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")
    harness.wait_until(lambda: open_fds(pid) <= before + 2, timeout=10,
                       what=f"the daemon's descriptors back to {before} (now {open_fds(pid)})")
    assert started.daemon.ask("GET", "/healthz").status == 200


# --- commands beside the running daemon ----------------------------------------------------


def test_status_command_human_and_json(started: Started) -> None:
    config = str(started.setup.config)
    human = harness.cli("status", "-c", config)
    assert human.returncode == 0, human.stderr
    assert "RUNNING" in human.stdout.splitlines()[0]
    assert "customer" in human.stdout and "Checks" in human.stdout
    as_json = harness.cli("status", "--json", "-c", config)
    assert as_json.returncode == 0, as_json.stderr
    status = msgspec.json.decode(as_json.stdout)
    assert status["state"] == "running"
    assert set(status) >= {"state", "version", "uptime_s", "log", "projections", "entities",
                           "economic", "moment", "reconcile", "checks"}


def test_events_json_lines_have_exactly_the_contract_keys(started: Started) -> None:
    harness.in_sync(started.daemon)
    events = events_json(started.setup)
    assert events
    for event in events:
        assert set(event) == EVENT_KEYS, event
        assert isinstance(event["seq"], int)
        assert isinstance(event["payload"], dict)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert len({e["idempotency_key"] for e in events}) == len(events)


def test_events_since_gives_later_events_only(started: Started) -> None:
    everything = events_json(started.setup)
    middle = everything[len(everything) // 2]["seq"]
    later = events_json(started.setup, "--since", str(middle))
    assert later and all(e["seq"] > middle for e in later)
    assert [e["seq"] for e in later] == [e["seq"] for e in everything if e["seq"] > middle][
        :len(later)]


def test_events_entity_filters_one_entity(started: Started) -> None:
    events = events_json(started.setup, "--entity", "customer:10002")
    assert events
    assert all((e["kind"], e["key"]) == ("customer", "10002") for e in events)
    assert "customer_upserted" in [e["type"] for e in events]
    bad = harness.cli("events", "--entity", "nonsense", "-c", str(started.setup.config))
    assert bad.returncode == 1 and "KIND:KEY" in bad.stderr


def test_events_human_view(started: Started) -> None:
    done = harness.cli("events", "-c", str(started.setup.config))
    assert done.returncode == 0, done.stderr
    assert "customer_upserted" in done.stdout and "customer:10001" in done.stdout


def test_a_parked_item_is_listed_with_its_reason(started: Started,
                                                 sandboxes: harness.Sandboxes) -> None:
    record = sandboxes.call(lambda: sandboxes.moment.add_customer(
        name="Unknown VAT ApS", vat_code="NOWHERE"))
    key = record.customer_number

    def parked() -> bool:
        items: list[dict[str, Any]] = started.daemon.ask("GET", "/parked").json()
        return any((i["kind"], i["key"]) == ("customer", key) for i in items)

    harness.wait_until(parked, timeout=20, what=f"customer {key} to be parked")
    items = started.daemon.ask("GET", "/parked").json()
    item = next(i for i in items if i["key"] == key)
    assert set(item) == {"kind", "key", "reason", "attempts", "last_error", "parked_at"}
    assert "NOWHERE" in item["reason"]
    listed = harness.cli("parked", "-c", str(started.setup.config))
    assert listed.returncode == 0, listed.stderr
    assert key in listed.stdout and "NOWHERE" in listed.stdout
    status = harness.cli("status", "-c", str(started.setup.config))
    assert key in status.stdout
    # a parked item can be retried (it parks again: its VAT code is still unknown)
    assert started.daemon.ask("POST", f"/parked/customer/{key}/retry").status in (200, 202)
    # the module's daemon is shared: fixed in Moment and retried, the customer leaves the
    # daemon in sync for the tests that come after this one, in whatever order
    sandboxes.call(lambda: sandboxes.moment.change_customer(record.id, vat_code="DK"))

    def through() -> bool:
        if not parked():
            return True
        started.daemon.ask("POST", f"/parked/customer/{key}/retry")  # until Moment's change is in
        return False
    harness.wait_until(through, timeout=30, every=1.0,
                       what=f"customer {key} to go through once its VAT code is fixed")
    harness.in_sync(started.daemon)


def test_resync_through_the_running_daemon(started: Started) -> None:
    config = str(started.setup.config)
    done = harness.cli("resync", "customer", "10003", "-c", config)
    assert done.returncode == 0, done.stderr
    assert "customer 10003" in done.stdout
    unknown = harness.cli("resync", "customer", "88888", "-c", config)
    assert unknown.returncode == 1
    assert "88888" in unknown.stderr and "Traceback" not in unknown.stderr


# --- SIGHUP --------------------------------------------------------------------------------


def config_check(daemon: harness.Daemon) -> dict[str, Any] | None:
    status: dict[str, Any] = daemon.ask("GET", "/status").json()
    return next((c for c in status["checks"] if c["name"] == "config"), None)


def test_sighup_with_a_broken_config_keeps_running_and_reports_it(started: Started) -> None:
    config = started.setup.config
    good = config.read_text()
    config.write_text(good.replace("[daemon]\n", "[daemon]\nbogus_key = 1\n", 1))
    try:
        started.daemon.signal(signal.SIGHUP)
        harness.wait_until(lambda: config_check(started.daemon) is not None, timeout=10,
                           what="a failed config check after SIGHUP")
        check = config_check(started.daemon)
        assert check is not None and check["ok"] is False
        assert "bogus_key" in check["detail"]
        assert started.daemon.proc is not None and started.daemon.proc.poll() is None
        reply = started.daemon.ask("GET", "/healthz")
        assert reply.status == 200 and reply.json()["state"] == "degraded"
    finally:
        config.write_text(good)
    started.daemon.signal(signal.SIGHUP)
    harness.wait_until(lambda: config_check(started.daemon) is None, timeout=10,
                       what="the config check to disappear after the fixed reload")
    assert started.daemon.ask("GET", "/status").json()["state"] == "running"


def test_a_webhook_address_in_use_stops_the_start(sandboxes: harness.Sandboxes) -> None:
    """``[daemon] listen`` taken by another process: exit 1 with the sentence naming
    ``daemon.listen`` (as ``daemon.metrics_listen`` does), no traceback."""
    setup = harness.write_config(sandboxes, prefix="ms-run-")
    port, output = harness.start_on_a_taken_port(setup, "MOMENT_SYNC_DAEMON_LISTEN")
    assert f"daemon.listen: cannot listen on 127.0.0.1:{port}" in output
    assert "Traceback" not in output and "stopped on an error" not in output
    assert not setup.socket.exists()  # the status socket it had opened is gone again
