"""moment-sync under a real systemd (issue 16): installed by the README's lines on a fresh
Debian 12 booted with ``systemd-nspawn --boot``, then driven with ``systemctl`` as an operator
would. ``systemd-analyze verify`` and ``security`` (tests/ops/test_systemd_units.py) read the
units; these tests run them, with their hardening, credentials, socket, watchdog and restarts.

Skipped, saying why, where the machine cannot be had (not root, or neither the tools nor apt).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from daemon import settings
from tests.systemd import machine as m
from tests.systemd.conftest import README, SECTION, Testbed

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_the_systemd_readme_says_what_the_readme_says() -> None:
    """systemd/README.md repeats the README's install lines; the machine runs the README's."""
    page = (m.REPO / "systemd" / "README.md").read_text()
    for index in (0, 1):
        block = m.shell_block(README, SECTION, index)
        assert f"```bash\n{block}```" in page, (
            f"systemd/README.md must repeat the README's install block #{index + 1} verbatim:\n"
            f"{block}")


def test_the_service_is_ready_with_its_credentials_and_syncs(testbed: Testbed) -> None:
    main, machine = testbed.main, testbed.machine
    shown = machine.show(main.unit, "ActiveState", "SubState", "Type", "StatusText",
                         "NRestarts", "MainPID")
    assert (shown["ActiveState"], shown["SubState"]) == ("active", "running"), (
        f"{main.unit} is not active (running) after `systemctl enable --now`: {shown}")
    assert shown["Type"] == "notify"
    ready = [e for e in machine.journal(after=testbed.boot_cursor, units=[main.unit])
             if m.logged(e).get("event") == "running"]
    assert ready, "the daemon never logged that it runs (it says so right before READY=1)"
    status = testbed.wait_in_sync(main)
    n = status.entities["customer"].desired
    text = testbed.wait_status_text(main, f"customers {n}/{n} in sync")
    assert text.startswith("running | "), text
    # the secrets are LoadCredential='s: the config names no file, the daemon's environment
    # points at systemd's credentials directory, and only that directory has them
    config = machine.run(["cat", main.config]).stdout
    assert '_file = ""' in config and "token = " not in config
    environ = machine.run(["cat", f"/proc/{shown['MainPID']}/environ"]).stdout.split("\0")
    creds = f"/run/credentials/{main.unit}"
    assert f"CREDENTIALS_DIRECTORY={creds}" in environ, environ
    listed = machine.run(["ls", creds]).stdout.split()
    assert sorted(listed) == sorted(settings.SECRETS), listed
    # and it synced the sandbox's sample data
    counts = testbed.moment_counts(main)
    customers = status.entities["customer"]
    assert customers.desired == customers.in_sync == counts["customers"], (status, counts)
    economic = machine.http("GET", f"{main.economic_admin}/state")
    assert economic["customers"] == counts["customers"], (economic, counts)


def test_two_template_instances_side_by_side(testbed: Testbed) -> None:
    machine = testbed.machine
    first, rest = m.shell_block(README, SECTION, 1).split("\n", 1)
    assert first.startswith("i="), "the README's instance block starts by naming the instance"
    a, b = testbed.agreements["a"], testbed.agreements["b"]
    for agreement in (a, b):
        testbed.run_block(f"i={agreement.name}\n{rest}", agreement, f"install-{agreement.name}")
    pids = {}
    listening = machine.run(["ss", "--listening", "--tcp", "--numeric", "--processes",
                             "--no-header"]).stdout
    for agreement in (a, b):
        shown = machine.show(agreement.unit, "ActiveState", "SubState", "MainPID",
                             "StateDirectory", "RuntimeDirectory")
        assert (shown["ActiveState"], shown["SubState"]) == ("active", "running"), shown
        assert shown["StateDirectory"] == f"moment-sync/{agreement.name}", shown
        pids[agreement.name] = shown["MainPID"]
        assert machine.run(["test", "-S", agreement.socket], check=False).returncode == 0, (
            f"{agreement.unit} has no status socket at {agreement.socket}")
        assert machine.run(["test", "-s", f"{agreement.state_dir}/events.db"],
                           check=False).returncode == 0, (
            f"{agreement.unit} keeps no event log in {agreement.state_dir}")
        port = f"127.0.0.1:{agreement.listen_port} "
        owner = [line for line in listening.splitlines() if port in line]
        assert owner and f"pid={shown['MainPID']}," in owner[0], (
            f"{agreement.unit} (pid {shown['MainPID']}) does not listen on {port}: {listening}")
        # each syncs its own agreement: the sandboxes hold different numbers of customers
        status = testbed.wait_in_sync(agreement)
        counts = testbed.moment_counts(agreement)
        assert status.entities["customer"].desired == counts["customers"], (status, counts)
        economic = machine.http("GET", f"{agreement.economic_admin}/state")
        assert economic["customers"] == counts["customers"], (economic, counts)
        n = counts["customers"]
        testbed.wait_status_text(agreement, f"customers {n}/{n} in sync")
    main_pid = machine.show(testbed.main.unit, "MainPID")["MainPID"]
    assert len({pids["a"], pids["b"], main_pid}) == 3
    told = machine.run(["systemctl", "status", "--no-pager", "--lines=0", a.unit, b.unit],
                       check=False).stdout
    if out := os.environ.get("MOMENT_SYNC_SYSTEMD_STATUS"):
        Path(out).write_text(told)
    for agreement in (a, b):
        assert f"● {agreement.unit}" in told, told
    assert told.count('Status: "running | ') == 2, told


def test_the_status_socket_belongs_to_the_service_group(testbed: Testbed) -> None:
    machine, main = testbed.machine, testbed.main
    if machine.run(["id", "alice"], check=False).returncode != 0:
        machine.run(["useradd", "--no-create-home", "--groups=moment-sync", "alice"])
        machine.run(["useradd", "--no-create-home", "bob"])
    directory = main.socket.rsplit("/", 1)[0]
    modes = machine.run(["stat", "--format=%a %U %G", directory, main.socket]).stdout.split("\n")
    assert modes[:2] == ["750 moment-sync moment-sync", "660 moment-sync moment-sync"], (
        f"{directory} and {main.socket} must be 0750 and 0660, owned by moment-sync: {modes}")
    alice = machine.run(["moment-sync", "status"], user="alice", check=False)
    assert alice.returncode == 0 and ": RUNNING" in alice.stdout, (
        f"alice, in the group moment-sync, must be able to run `moment-sync status`: {alice}")
    # bob has a copy of the config (it holds no secret) but is not in the group
    machine.run(["install", "-o", "bob", "-m", "0600", main.config, "/home/bob.toml"])
    bob = machine.run(["moment-sync", "status", "-c", "/home/bob.toml"], user="bob",
                      check=False)
    assert bob.returncode != 0, f"bob, not in the group, must be refused: {bob}"
    assert "permission" in bob.stderr.lower() and main.socket in bob.stderr, (
        f"bob's refusal must say that the socket refused him, and which: {bob}")
    assert "Traceback" not in bob.stderr, bob


def test_reload_applies_a_valid_config_and_keeps_the_old_one_for_an_invalid(
        testbed: Testbed) -> None:
    machine, main = testbed.machine, testbed.main
    pid = machine.show(main.unit, "MainPID")["MainPID"]

    def reload(edit: str, outcome: str) -> dict[str, object]:
        machine.run(["sed", "-i", edit, main.config])
        cursor = machine.cursor()
        machine.run(["systemctl", "reload", main.unit])
        entry = machine.journal_wait(
            lambda e: str(m.logged(e).get("event", "")).startswith(outcome),
            after=cursor, units=[main.unit], what=f"the daemon saying {outcome!r} after the reload")
        assert machine.show(main.unit, "MainPID")["MainPID"] == pid, "the reload restarted it"
        return m.logged(entry)

    try:
        # valid: e-conomic's country names in English from now on, as a new customer shows
        reload('s/^language = "da"/language = "en"/', "configuration reloaded")
        created = machine.http("POST", f"{main.moment_admin}/customers", {
            "name": "Reloaded ApS", "address": {"countryCode": "DK"}, "vatCode": "DK"})
        testbed.wait_economic_customer(
            main, str(created["customerNumber"]), lambda c: c.get("country") == "Denmark",
            "created with its country named in English, as the reloaded config says")
        # invalid: refused, the daemon runs on, /status names the failed check
        refused = reload("s/^journal_number =/jurnal_number =/", "configuration reload refused")
        assert "jurnal_number" in str(refused.get("error")), refused
        status = testbed.status(main)
        failed = [c for c in status.checks if c.name == "config"]
        assert failed and not failed[0].ok and "economic.jurnal_number" in failed[0].detail, (
            f"/status must show the failed config check: {status.checks}")
        assert status.state == "degraded", status.state
        assert machine.show(main.unit, "ActiveState")["ActiveState"] == "active"
    finally:
        reload('s/^jurnal_number =/journal_number =/; s/^language = "en"/language = "da"/',
               "configuration reloaded")
    assert not [c for c in testbed.status(main).checks if c.name == "config"]
    # the customer created under "en" is brought back to the configuration now in force
    testbed.wait_in_sync(main, timeout=30)


def test_the_watchdog_restarts_a_frozen_daemon_but_not_a_waiting_one(testbed: Testbed) -> None:
    machine, main = testbed.machine, testbed.main
    dropin = f"/run/systemd/system/{main.unit}.d"
    watchdog_s = 5
    machine.run(["mkdir", "-p", dropin])
    machine.run(["tee", f"{dropin}/watchdog.conf"], input=f"[Service]\nWatchdogSec={watchdog_s}s\n")
    try:
        machine.run(["systemctl", "daemon-reload"])
        machine.run(["systemctl", "restart", main.unit])
        shown = machine.show(main.unit, "MainPID", "NRestarts", "WatchdogUSec")
        assert shown["WatchdogUSec"] == f"{watchdog_s}s", shown
        pid = shown["MainPID"]

        # e-conomic answers the next call 429 with a Retry-After of three watchdog periods
        retry_after = 3 * watchdog_s
        customer = testbed.danish_customer(main)
        cursor = machine.cursor()
        machine.http("PATCH", f"{main.economic_admin}/config",
                     {"faults": {"retry_after_s": retry_after}})
        machine.http("POST", f"{main.economic_admin}/faults", {"kind": "429", "count": 1})
        started = time.monotonic()
        machine.run(["moment-sync", "resync", "customer", customer])
        testbed.wait_pause_over(main, timeout=retry_after + 30)
        waited = time.monotonic() - started
        assert waited >= retry_after - 1, f"the daemon did not wait out Retry-After ({waited} s)"
        dog = [m.message(e) for e in machine.journal(after=cursor, units=[main.unit])
               if "atchdog" in m.message(e)]
        assert not dog and machine.show(main.unit, "MainPID")["MainPID"] == pid, (
            f"a daemon waiting out a {retry_after} s Retry-After was taken for wedged: {dog}")

        # frozen: systemd kills it at the watchdog timeout and starts it again
        cursor = machine.cursor()
        machine.run(["systemctl", "kill", "--kill-who=main", "--signal=SIGSTOP", main.unit])
        machine.journal_wait(lambda e: "Watchdog timeout" in m.message(e), after=cursor,
                             units=[main.unit], timeout=watchdog_s * 3,
                             what="systemd's watchdog timeout for the frozen daemon")
        new_pid = testbed.wait_active(main, after=cursor)
        assert new_pid != pid
        after = machine.show(main.unit, "NRestarts")["NRestarts"]
        assert int(after) == int(shown["NRestarts"]) + 1, (shown, after)
    finally:
        machine.run(["rm", "-rf", dropin])
        machine.run(["systemctl", "daemon-reload"])
        machine.run(["systemctl", "restart", main.unit])
    testbed.wait_in_sync(main)


def test_kill_9_restarts_and_converges_with_nothing_lost(testbed: Testbed) -> None:
    machine, main = testbed.machine, testbed.main
    shown = machine.show(main.unit, "MainPID", "NRestarts")
    # work arrives by webhook, and the daemon is killed while it takes it in
    customer = machine.http("POST", f"{main.moment_admin}/customers", {
        "name": "Kill Nine ApS", "address": {"countryCode": "DK"}, "vatCode": "DK"})
    invoice = machine.http("POST", f"{main.moment_admin}/invoices", {
        "customerId": customer["id"], "totalExcludingVat": "1000.00", "finalize": True})
    cursor = machine.cursor()
    machine.run(["systemctl", "kill", "--kill-who=main", "--signal=SIGKILL", main.unit])
    new_pid = testbed.wait_active(main, after=cursor)
    assert new_pid != shown["MainPID"]
    assert int(machine.show(main.unit, "NRestarts")["NRestarts"]) == int(shown["NRestarts"]) + 1
    status = testbed.wait_in_sync(main)
    counts = testbed.moment_counts(main)
    economic = machine.http("GET", f"{main.economic_admin}/state")
    assert economic["customers"] == counts["customers"] == status.entities["customer"].in_sync, (
        f"after kill -9 e-conomic must hold each Moment customer once: {economic}, {counts}")
    number = invoice["invoiceNumber"]
    entity = json.loads(machine.run([
        "curl", "--silent", "--fail", "--unix-socket", main.socket,
        f"http://localhost/entities/invoice/{number}"]).stdout)
    assert entity["state"]["booked"], (
        f"invoice {number}, finalized as the daemon was killed, was not booked: {entity}")
    assert economic["draft_entries"] == 0, f"entries left unbooked in e-conomic: {economic}"


def test_stop_is_clean_ordered_and_refuses_no_syscall(testbed: Testbed) -> None:
    machine, main = testbed.machine, testbed.main
    # under the shipped SystemCallErrorNumber=EPERM a refused call fails quietly; reset, the
    # filter kills the daemon with SIGSYS instead, so one refused from its start to its stop
    # cannot go unseen
    dropin = f"/run/systemd/system/{main.unit}.d"
    machine.run(["mkdir", "-p", dropin])
    machine.run(["tee", f"{dropin}/sigsys.conf"], input="[Service]\nSystemCallErrorNumber=\n")
    try:
        machine.run(["systemctl", "daemon-reload"])
        machine.run(["systemctl", "restart", main.unit])
        # systemd shows the kill action as SECCOMP_ERROR_NUMBER_KILL (INT_MAX - 1)
        assert machine.show(main.unit, "SystemCallErrorNumber")["SystemCallErrorNumber"] == (
            "2147483646"), "the drop-in did not reset SystemCallErrorNumber= to kill"
        pid = machine.show(main.unit, "MainPID")["MainPID"]
        testbed.wait_in_sync(main)
        cursor = machine.cursor()
        started = time.monotonic()
        stop = machine.run(["systemctl", "stop", main.unit], check=False, timeout=120)
        took = time.monotonic() - started
        assert stop.returncode == 0, f"`systemctl stop` failed: {stop}"
        limit = machine.show(main.unit, "TimeoutStopUSec")["TimeoutStopUSec"]
        assert took < 45, f"stopping took {took:.1f} s (TimeoutStopSec={limit})"
        shown = machine.show(main.unit, "ActiveState", "Result", "ExecMainStatus",
                             "ExecMainCode")
        assert shown == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0",
                         "ExecMainCode": "1"}, (
            f"the daemon did not exit 0 (status 31 is SIGSYS: a refused system call): {shown}")
        # what the daemon said, all its life (by its pid: no window to miss a line in)
        said = [str(m.logged(e).get("event")) for e in machine.journal(matches=[f"_PID={pid}"])]
        order = [event for event in said if event in ("running", "stopping", "stopped")]
        assert order == ["running", "stopping", "stopped"], (
            f"no ordered shutdown in the journal of pid {pid}: {said[-30:]}")
        lines = [m.message(e) for e in machine.journal(after=cursor, units=[main.unit])]
        assert not [t for t in lines if "SIGKILL" in t or "timed out" in t], lines
    finally:
        machine.run(["rm", "-rf", dropin])
        machine.run(["systemctl", "daemon-reload"])
        machine.run(["systemctl", "start", main.unit])
    refused = [f"{e.get('_SYSTEMD_UNIT', e.get('UNIT', ''))}: {m.message(e)}"
               for e in machine.journal(after=testbed.boot_cursor)
               if any(word in m.message(e) for word in (
                   "EPERM", "Operation not permitted", "seccomp", "SECCOMP", "Bad system call",
                   "status=31/SYS"))
               and "moment-sync" in (e.get("_SYSTEMD_UNIT", "") + e.get("UNIT", ""))]
    assert not refused, "the hardened units refused calls:\n" + "\n".join(refused)
