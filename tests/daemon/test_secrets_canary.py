"""Secrets canary (issue 6, item 6): unique secret values go through every error path of the
real daemon, and never come out anywhere a person or a file could read them.

The five secrets are ``canary-<role>-<uuid>`` values that the sandboxes accept. The module's
scenario runs the daemon twice on one state directory:

1. with ``MOMENT_SYNC_TEST_CRASH_AT=invoice.after_send``: a crash (SIGKILL) in the middle of an
   invoice's reconcile;
2. restarted, with faults queued: an e-conomic call that times out (the client's timeout,
   shortened to 3 s by ``MOMENT_SYNC_TEST_ECONOMIC_TIMEOUT_S``), e-conomic 500s and 503s,
   Moment 500, 503 and 429; then both
   services rotate their tokens for a while (e-conomic answers 401 to reads and writes, Moment
   401 to the poller, an item parks for refused tokens) and take the canaries back; webhook
   requests carry the token in the path, good and bad, well-formed and not, and one that is not
   even HTTP; the e-conomic webhook token, in the URLs of the webhooks the daemon installs in
   the sandbox, goes to its route in the path and in ``X-Moment-Sync-Token``, right and wrong;
   ``moment-sync check`` runs with a wrong canary token (401).

Then every output is searched for each canary (also base64 of Moment's Basic credentials):
the daemon's stdout and stderr, every status-socket answer, the commands' output
(``events --json`` included), and the raw bytes of ``events.db``, ``-wal`` and ``-shm`` taken
while the daemon ran and after it stopped.
"""

from __future__ import annotations

import base64
import json
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon.reconcile.hooks import TIMEOUT_ENV
from tests.daemon import harness, speaking

pytestmark = [pytest.mark.slow, pytest.mark.timeout(110)]

RUN = uuid.uuid4().hex
CANARIES = {
    "economic-app": f"canary-app-{RUN}",
    "economic-grant": f"canary-grant-{RUN}",
    "moment-api-key": f"canary-moment-{RUN}",
    "webhook-token": f"canary-hook-{RUN}",
    "economic-webhook-token": f"canary-ehook-{RUN}",
    "wrong-grant": f"canary-wrong-{RUN}",
    "bad-webhook-token": f"canary-badhook-{RUN}",
}
NEEDLES = [*CANARIES.values(), RUN,
           base64.b64encode(f"apikey:{CANARIES['moment-api-key']}".encode()).decode()]


@dataclass
class Artefacts:
    """Everything the scenario saw; each value is searched for every needle."""

    logs: dict[str, bytes] = field(default_factory=dict)
    answers: dict[str, bytes] = field(default_factory=dict)
    commands: dict[str, bytes] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


def leaks(blobs: dict[str, bytes]) -> list[str]:
    return [f"{needle[:14]}… in {name}" for name, blob in blobs.items()
            for needle in NEEDLES if needle.encode() in blob]


def snapshot_db(setup: harness.Setup, label: str, into: dict[str, bytes]) -> None:
    for suffix in ("", "-wal", "-shm"):
        path = setup.db.with_name(setup.db.name + suffix)
        if path.exists():
            into[f"{label}:{path.name}"] = path.read_bytes()


def metric_total(daemon: harness.Daemon, name: str, **labels: str) -> float:
    total = 0.0
    text = daemon.ask("GET", "/metrics").body.decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v
                                           for k, v in labels.items()):
                total += sample.value
    return total


def post_raw(port: int, data: bytes) -> bytes:
    """Send bytes that may not be HTTP; whatever comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := conn.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


def statuses(sb: harness.Sandboxes) -> list[int]:
    return [r.status for r in sb.economic_requests()]


def crash_run(setup: harness.Setup, art: Artefacts) -> None:
    daemon = harness.Daemon(setup, env={"MOMENT_SYNC_TEST_CRASH_AT": "invoice.after_send"})
    daemon.start()
    try:
        art.facts["crash_exit"] = daemon.wait(40)
    finally:
        daemon.close()


def webhooks(setup: harness.Setup, sb: harness.Sandboxes, art: Artefacts) -> None:
    hint = sb.call(lambda: sb.moment.hint("customer", 1001, "UPDATE"))
    good, bad = setup.webhook_url(), setup.webhook_url(CANARIES["bad-webhook-token"])
    codes = {
        "good": speaking.fetch("POST", good, body=hint).status,
        "bad": speaking.fetch("POST", bad, body=hint).status,
        "good_garbage": speaking.fetch("POST", good, body=["not", "a", "hint"]).status,
        "good_text": speaking.fetch("POST", good, body=None,
                                   headers={"Content-Type": "text/plain"}).status,
        "bad_query": speaking.fetch("POST", bad + "?token=" + CANARIES["webhook-token"],
                                   body=hint).status,
    }
    # e-conomic's route: the token in the path and in X-Moment-Sync-Token
    etoken = CANARIES["economic-webhook-token"]
    eurl = f"http://127.0.0.1:{setup.listen_port}/webhooks/economic/"
    ehint = {"event": "CUSTOMER_UPDATED", "old": "1001", "new": "1001"}
    codes |= {
        "economic_good": speaking.fetch("POST", eurl + etoken, body=ehint,
                                        headers={"X-Moment-Sync-Token": etoken}).status,
        "economic_bad_header": speaking.fetch(
            "POST", eurl + etoken, body=ehint,
            headers={"X-Moment-Sync-Token": CANARIES["bad-webhook-token"]}).status,
        "economic_bad_path": speaking.fetch("POST", eurl + CANARIES["bad-webhook-token"],
                                            body=ehint).status,
        "economic_garbage": speaking.fetch("POST", eurl + etoken,
                                           body={"event": etoken}).status,
    }
    art.facts["webhooks"] = codes
    path = f"/webhooks/moment/{CANARIES['webhook-token']}"
    art.answers["raw:bad-length"] = post_raw(
        setup.listen_port, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n"
        .encode())
    art.answers["raw:not-http"] = post_raw(
        setup.listen_port, f"{path} \x00\x01 {CANARIES['bad-webhook-token']}\r\n\r\n".encode())


def parked(daemon: harness.Daemon, kind: str, key: str) -> bool:
    items: list[dict[str, str]] = daemon.ask("GET", "/parked").json()
    return any(item["kind"] == kind and str(item["key"]) == key for item in items)


def refused_tokens(daemon: harness.Daemon, sb: harness.Sandboxes, art: Artefacts) -> None:
    """Both services rotate their tokens for a while; the daemon keeps sending the canaries.

    A customer that arrives while e-conomic refuses the tokens parks: the tokens come back only
    once it has (the parking and its explanation are error paths too)."""
    served_before = len(sb.economic_requests())
    moment_before = sb.call(lambda: len(sb.moment.requests))
    sb.call(lambda: setattr(sb.economic, "agreement_grant_token", "rotated-" + uuid.uuid4().hex))
    record = sb.call(lambda: sb.moment.add_customer(name="Arrives While Refused ApS"))
    art.facts["refused_customer"] = record.customer_number
    harness.wait_until(
        lambda: any(r.status == 401 for r in sb.economic_requests()[served_before:]),
        timeout=20, what="e-conomic to refuse the daemon's tokens")
    assert daemon.ask("POST", "/reconcile").status == 202
    harness.wait_until(
        lambda: parked(daemon, "customer", str(record.customer_number)),
        timeout=30, every=0.2, what="the customer that arrived while refused to park")
    sb.call(lambda: setattr(sb.moment, "api_key", "rotated-" + uuid.uuid4().hex))
    harness.wait_until(
        lambda: any(r.status == 401 for r in sb.call(lambda: sb.moment.requests[moment_before:])),
        timeout=20, what="Moment to refuse the poller")
    sb.call(lambda: setattr(sb.moment, "api_key", CANARIES["moment-api-key"]))
    sb.call(lambda: setattr(sb.economic, "agreement_grant_token", CANARIES["economic-grant"]))
    art.facts["economic_401"] = sum(1 for s in statuses(sb)[served_before:] if s == 401)


def unpark_all(daemon: harness.Daemon) -> bool:
    """Retry whatever is parked; True when nothing is."""
    items: list[dict[str, str]] = daemon.ask("GET", "/parked").json()
    for item in items:
        daemon.ask("POST", f"/parked/{item['kind']}/{item['key']}/retry")
    return not items


def collect_answers(daemon: harness.Daemon, setup: harness.Setup, art: Artefacts) -> None:
    for target in ("/status", "/metrics", "/parked", "/plan", "/healthz",
                   "/entities/customer/10001", "/entities/customer/10002",
                   f"/entities/customer/{art.facts['refused_customer']}",
                   "/entities/project/1", "/entities/invoice/1", "/entities/invoice/2",
                   "/entities/customer/404404"):
        art.answers[target] = daemon.ask("GET", target).body
    art.answers["POST /reconcile"] = daemon.ask("POST", "/reconcile").body
    art.answers["POST retry"] = daemon.ask("POST", "/parked/customer/10001/retry").body
    for args in (("status",), ("status", "--json"), ("parked",), ("plan",), ("plan", "--json"),
                 ("events", "--json"), ("events",), ("webhooks", "status"), ("check",)):
        done = harness.cli(*args, "-c", str(setup.config))
        art.commands["running: " + " ".join(args)] = (done.stdout + done.stderr).encode()


@pytest.fixture(scope="module")
def artefacts() -> Iterator[Artefacts]:
    art = Artefacts()
    with harness.Sandboxes(
            economic={"app_secret_token": CANARIES["economic-app"],
                      "agreement_grant_token": CANARIES["economic-grant"]},
            moment={"api_key": CANARIES["moment-api-key"]},
            customers=3, projects=2, invoices=3) as sb:
        setup = harness.write_config(
            sb, prefix="ms-canary-", webhook_token=CANARIES["webhook-token"],
            economic_app=CANARIES["economic-app"], economic_grant=CANARIES["economic-grant"],
            moment_api_key=CANARIES["moment-api-key"],
            economic_webhook_token=CANARIES["economic-webhook-token"])

        crash_run(setup, art)

        # faults for the restart: 5xx from both services
        def queue_faults() -> None:
            sb.economic.inject("500", 2)
            sb.economic.inject("503")
            sb.moment.faults.add(500, count=2)
            sb.moment.faults.add(503)
            sb.moment.faults.add(429, retry_after=1)
        sb.call(queue_faults)

        daemon = harness.Daemon(setup, env={TIMEOUT_ENV: "3"}).start()
        try:
            daemon.wait_for("READY=1")
            webhooks(setup, sb, art)
            refused_tokens(daemon, sb, art)
            refused = art.facts["refused_customer"]
            retried = harness.cli("parked", "--retry", "customer", refused,
                                  "-c", str(setup.config))
            art.commands["parked --retry"] = (retried.stdout + retried.stderr).encode()
            harness.wait_until(lambda: unpark_all(daemon), timeout=30, every=0.5,
                               what="nothing parked after the tokens came back")
            wrong = harness.write_config(sb, prefix="ms-canary-wrong-",
                                         economic_grant=CANARIES["wrong-grant"],
                                         webhook_token=CANARIES["webhook-token"])
            check = harness.cli("check", "-c", str(wrong.config))
            art.facts["wrong_check_exit"] = check.returncode
            art.commands["check (wrong token)"] = (check.stdout + check.stderr).encode()

            # the next call (an incremental sweep's, every 2 s) outlives the client's
            # timeout (3 s here)
            def queue_timeout() -> None:
                sb.economic.faults.timeout_s = 4.0
                sb.economic.inject("timeout")
            sb.call(queue_timeout)
            harness.wait_until(
                lambda: metric_total(daemon, "moment_sync_economic_calls_total",
                                     status="error") >= 1,
                timeout=45, every=0.5, what="the timed-out e-conomic call to be counted")
            art.facts["economic_errors"] = metric_total(
                daemon, "moment_sync_economic_calls_total", status="error")
            harness.in_sync(daemon)
            collect_answers(daemon, setup, art)
            snapshot_db(setup, "running", art.files)
            art.facts["exit"] = daemon.stop()
        finally:
            daemon.close()
            art.logs["daemon stdout+stderr"] = daemon.output()
        art.facts["economic_statuses"] = sorted(set(statuses(sb)))
        art.facts["economic_webhooks_installed"] = sb.call(
            lambda: len(sb.economic.agreement.webhooks))
        art.facts["moment_statuses"] = sorted({r.status for r in sb.call(
            lambda: list(sb.moment.requests))})
        for args in (("events", "--json"), ("replay", "--verify"), ("parked",), ("status",)):
            done = harness.cli(*args, "-c", str(setup.config))
            art.commands["stopped: " + " ".join(args)] = (done.stdout + done.stderr).encode()
        snapshot_db(setup, "stopped", art.files)
        # the detector itself: it finds the canaries where they are meant to be
        art.facts["detector"] = leaks({name: path.read_bytes() for name, path in (
            (p.name, p) for p in (setup.root / "secrets").iterdir())})
        yield art


def test_every_error_path_was_taken(artefacts: Artefacts) -> None:
    facts = artefacts.facts
    assert len(facts["detector"]) >= 4, facts["detector"]
    assert facts["crash_exit"] == -9, "the crash hook did not SIGKILL the daemon"
    assert facts["exit"] == 0
    assert facts["webhooks"] == {"good": 202, "bad": 404, "good_garbage": 400,
                                 "good_text": 415, "bad_query": 404, "economic_good": 202,
                                 "economic_bad_header": 404, "economic_bad_path": 404,
                                 "economic_garbage": 400}
    assert facts["economic_webhooks_installed"] >= 2
    assert facts["economic_401"] >= 1
    assert {401, 500, 503} <= set(facts["economic_statuses"]), facts["economic_statuses"]
    assert {401, 429, 500, 503} <= set(facts["moment_statuses"]), facts["moment_statuses"]
    assert facts["economic_errors"] >= 1  # the timeout
    assert facts["wrong_check_exit"] == 1
    assert b"FAIL  tokens" in artefacts.commands["check (wrong token)"]
    events = [json.loads(line) for line in
              artefacts.commands["stopped: events --json"].decode().splitlines()]
    types = {e["type"] for e in events}
    # (whether a 5xx hit a sweep or an item's write, and so left a "failed" event, is luck)
    assert {"parked", "applied", "check_reported"} <= types, types
    # the crash left an open intent that the restart closed: every invoice is in e-conomic once
    assert b"OK" in artefacts.commands["stopped: replay --verify"]


def test_no_canary_in_the_daemons_logs(artefacts: Artefacts) -> None:
    assert artefacts.logs["daemon stdout+stderr"]
    assert leaks(artefacts.logs) == []


def test_no_canary_in_status_socket_answers(artefacts: Artefacts) -> None:
    assert json.loads(artefacts.answers["/status"])["state"]
    assert leaks(artefacts.answers) == []


def test_no_canary_in_command_output(artefacts: Artefacts) -> None:
    assert artefacts.commands["stopped: events --json"]
    assert leaks(artefacts.commands) == []


def test_no_canary_in_the_sqlite_files(artefacts: Artefacts) -> None:
    names = set(artefacts.files)
    assert "running:events.db" in names and "stopped:events.db" in names
    assert any(name.endswith("-wal") for name in names)
    assert leaks(artefacts.files) == []
