"""The restore drill, with the real parts: the daemon replicates its log with Litestream to an
S3 server (moto); the host dies (kill -9, state directory deleted); the log comes back from the
replica through the shipped ``ExecStartPre=`` script (``litestream restore`` and ``moment-sync
restore``); the daemon carries on while more invoices arrive. Then the harsh case: a replica
known to be behind (taken before the last invoices were booked) is restored. Every invoice is in
e-conomic exactly once, booked. And a replication that cannot write (no bucket) is reported
while the daemon keeps syncing."""

from __future__ import annotations

import shutil
import signal
import sqlite3
from collections import Counter
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message as MessageHandler

from tests.daemon import harness, replicas

pytestmark = [
    pytest.mark.slow, pytest.mark.timeout(240),
    pytest.mark.skipif(not replicas.LITESTREAM.is_file(),
                       reason=f"Litestream is not at {replicas.LITESTREAM}: `make test` (its "
                              "`tools` step) downloads it"),
]


@pytest.fixture(scope="module")
def s3() -> Iterator[replicas.S3]:
    server = replicas.S3(harness.short_dir("ms-s3-"))
    try:
        yield server
    finally:
        server.close()


def replication(litestream: replicas.Litestream, max_lag: str = "3s") -> str:
    return (f'\n[replication]\nmetrics_url = "{litestream.metrics_url}"\n'
            f'max_lag = "{max_lag}"\n')


def finalized(sb: harness.Sandboxes) -> set[int]:
    return sb.call(lambda: {i.invoice_number for i in sb.moment.invoices.values()
                            if i.status != "DRAFT" and i.invoice_number is not None})


def in_economic(sb: harness.Sandboxes) -> tuple[Counter[int], Counter[int]]:
    """Invoice number -> booked customer rows, and -> draft entries."""
    def read() -> tuple[Counter[int], Counter[int]]:
        a = sb.economic.agreement
        booked = Counter(int(b["customerInvoiceNumber"]) for b in a.booked_entries.values()
                         if b.get("customerInvoiceNumber"))
        drafts = Counter(int(d["customerInvoiceNumber"]) for d in a.draft_entries.values()
                         if d.get("customerInvoiceNumber"))
        return booked, drafts
    return sb.call(read)


def add_invoices(sb: harness.Sandboxes, count: int) -> None:
    def add() -> None:
        customers = sorted(sb.moment.customers.values(), key=lambda c: c.id)
        for n in range(count):
            sb.moment.add_invoice(customer_id=customers[n % len(customers)].id,
                                  total_excluding_vat=f"{100 + n}.00", finalize=True)
    sb.call(add)


def each_booked_once(sb: harness.Sandboxes) -> bool:
    booked, drafts = in_economic(sb)
    return booked == Counter(finalized(sb)) and not drafts


def converged(sb: harness.Sandboxes, daemon: harness.Daemon) -> None:
    harness.wait_until(lambda: each_booked_once(sb) or bool(
        max(in_economic(sb)[0].values(), default=1) > 1), timeout=45,
        what="every invoice booked in e-conomic")
    booked, drafts = in_economic(sb)
    assert booked == Counter(finalized(sb)), (booked, daemon.tail())
    assert not drafts
    harness.in_sync(daemon)


def test_the_host_dies_the_log_comes_back_from_the_replica_and_nothing_is_booked_twice(
        s3: replicas.S3) -> None:
    s3.create_bucket("drill")
    with harness.Sandboxes(customers=4, projects=2, invoices=3) as sb:
        setup = harness.write_config(sb, prefix="ms-drill-")
        state = setup.root / "state"
        litestream = replicas.Litestream(s3, state, bucket="drill", root=setup.root)
        setup.config.write_text(harness.config_text(setup, sb, extra=replication(litestream)))
        behind = setup.root / "behind.db"

        # 1. running with replication on; a replica taken once the first invoices are booked
        with harness.running(setup) as daemon:
            litestream.start()
            try:
                converged(sb, daemon)
                replicas.wait_replicated(litestream)
                harness.wait_until(
                    lambda: daemon.ask("GET", "/status").json()["replication"]["lag_s"] == 0,
                    timeout=15, what="the daemon to see the replica caught up")
                status = daemon.ask("GET", "/status").json()
                assert status["replication"]["watched"] and status["replication"]["ok"]
                scraped = daemon.ask("GET", "/metrics").body.decode()
                assert 'moment_sync_replication_ok{replicator="litestream"} 1.0' in scraped
                copied = litestream.restore(behind)
                assert copied.returncode == 0, copied.stderr
                first = finalized(sb)

                # more invoices, booked; then the host dies: daemon and Litestream killed
                add_invoices(sb, 3)
                converged(sb, daemon)
                daemon.signal(signal.SIGKILL)
                daemon.wait(10)
                litestream.kill()
            finally:
                litestream.stop()
        shutil.rmtree(state)

        # 2. a new host: the ExecStartPre= script restores the log and marks it
        done = litestream.restore_from_replica(setup.config)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "entities marked in doubt" in done.stdout
        assert litestream.db.is_file()
        with harness.running(setup) as daemon:
            litestream.start()
            try:
                add_invoices(sb, 2)
                converged(sb, daemon)
                # Litestream follows the restored log's WAL: the replica gets what came since
                replicas.wait_replicated(litestream)
                latest = setup.root / "latest.db"
                assert litestream.restore(latest).returncode == 0
                with sqlite3.connect(latest) as copy:
                    numbers = {int(k) for (k,) in copy.execute(
                        "SELECT entity_key FROM events WHERE type = 'invoice_booked'")}
                copy.close()
                assert numbers == finalized(sb)
            finally:
                litestream.stop()
            assert daemon.stop() == 0
        assert len(finalized(sb)) == 8

        # 3. the harsh case: the replica known to be behind (taken before the last five)
        shutil.rmtree(state)
        state.mkdir(mode=0o700)
        shutil.copyfile(behind, litestream.db)
        marked = harness.cli("restore", "-c", str(setup.config))
        assert marked.returncode == 0, marked.stderr
        assert marked.stdout.splitlines()[0].endswith("entities marked in doubt")
        again = harness.cli("restore", "-c", str(setup.config))
        assert again.stdout.splitlines() == ["0 entities marked in doubt"]
        with harness.running(setup) as daemon:
            add_invoices(sb, 1)
            converged(sb, daemon)
            assert daemon.stop() == 0
        booked, _ = in_economic(sb)
        assert len(booked) == 9 and set(booked.values()) == {1}
        assert first < finalized(sb)


def test_a_replica_that_cannot_be_written_is_reported_while_syncing_goes_on(
        s3: replicas.S3) -> None:
    mails: list[Any] = []

    class Collect(MessageHandler):
        def handle_message(self, message: Any) -> None:
            mails.append(message)

    smtp = Controller(Collect(), hostname="127.0.0.1", port=harness.free_port())
    smtp.start()
    try:
        with harness.Sandboxes(customers=2, projects=1, invoices=1) as sb:
            setup = harness.write_config(sb, prefix="ms-nobucket-")
            litestream = replicas.Litestream(s3, setup.root / "state", bucket="no-such-bucket",
                                             root=setup.root)
            alerts = (f'\n[alerts]\nemail_to = "finance@example.com"\nsmtp_host = "127.0.0.1"\n'
                      f"smtp_port = {smtp.port}\n")
            setup.config.write_text(harness.config_text(
                setup, sb, extra=replication(litestream, "2s") + alerts))
            with harness.running(setup) as daemon:
                litestream.start()
                try:
                    def failing() -> bool:
                        # the watch's verdict comes first, the failed check (and with it the
                        # state) when the check is recorded: wait for both
                        status = daemon.ask("GET", "/status").json()
                        rep = status["replication"]
                        return rep["watched"] and not rep["ok"] and any(
                            c["name"] == "replication" and not c["ok"] for c in status["checks"])
                    harness.wait_until(failing, timeout=30,
                                       what="replication reported failing, and its check")
                    status = daemon.ask("GET", "/status").json()
                    assert status["state"] == "degraded"
                    assert "bucket may not exist" in status["replication"]["last_error"]
                    check = {c["name"]: c for c in status["checks"]}["replication"]
                    assert not check["ok"] and "replication is failing" in check["detail"]
                    assert daemon.ask("GET", "/healthz").status == 200
                    scraped = daemon.ask("GET", "/metrics").body.decode()
                    assert 'moment_sync_replication_ok{replicator="litestream"} 0.0' in scraped
                    # syncing goes on
                    add_invoices(sb, 1)
                    converged(sb, daemon)
                    done = harness.cli("check", "-c", str(setup.config))
                    assert done.returncode == 1
                    assert "FAIL  replication" in done.stdout
                    shown = harness.cli("status", "-c", str(setup.config))
                    assert "Replica    FAILING" in shown.stdout
                finally:
                    litestream.stop()
                assert daemon.stop() == 0  # the alerts are flushed on the way out
        bodies = [message_from_bytes(m.as_bytes()).get_payload(decode=True) for m in mails]
        assert any(b"replication is failing" in (b or b"") for b in bodies), mails
    finally:
        smtp.stop()


def test_restore_refuses_a_damaged_log_and_leaves_it_as_it_was() -> None:
    root = harness.short_dir("ms-damaged-")
    config = root / "config.toml"
    (root / "state").mkdir()
    db = root / "state" / "events.db"
    db.write_bytes(b"SQLite format 3\x00" + b"\xa5" * 8192)
    config.write_text(f'[daemon]\nstate_dir = "{root / "state"}"\n\n[moment]\ncompany = "acme"\n')
    before = db.read_bytes()
    done = harness.cli("restore", "-c", str(config))
    assert done.returncode == 1 and done.stdout == ""
    assert "the daemon must not start on it" in done.stderr
    assert db.read_bytes() == before
