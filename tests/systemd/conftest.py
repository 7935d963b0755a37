"""The machine the systemd tests share: a fresh Debian 12 under ``systemd-nspawn --boot``, with
three pairs of sandboxes (one unit each) and moment-sync installed by the README's own lines.

Booted once per test run (about half a minute on a warm cache); every test leaves the services as
it found them (running, default configuration), so they pass in any order.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest

from daemon.core import reports
from tests.systemd import machine as m

README: Final = m.REPO / "README.md"
SECTION: Final = "## Installing under systemd"
STAGE: Final = "/srv/moment-sync"  # the checkout's wheel, systemd/ and the configs, read-only
WHEELS: Final = "/srv/wheels"
#: What the README's ``$EDITOR`` step does here: put the config this run wrote in place (cp
#: keeps the installed file's mode and group).
EDITOR: Final = '#!/bin/sh\nexec cp "/srv/moment-sync/configs/${1##*/}" "$1"\n'


@dataclass
class Agreement:
    """One sandbox pair (a unit of its own on the machine) and the daemon that syncs it."""

    name: str  # "main" for moment-sync.service, else the template's instance
    economic_port: int
    moment_port: int
    listen_port: int
    sample: dict[str, int]
    described: dict[str, str] = field(default_factory=dict)
    webhook_token: str = field(default_factory=lambda: "hook-" + secrets.token_hex(8))

    @property
    def unit(self) -> str:
        return "moment-sync.service" if self.name == "main" else f"moment-sync@{self.name}.service"

    @property
    def sandbox_unit(self) -> str:
        return f"moment-sandbox-{self.name}.service"

    @property
    def config(self) -> str:
        return "/etc/moment-sync/" + ("config.toml" if self.name == "main" else f"{self.name}.toml")

    @property
    def socket(self) -> str:
        inside = "" if self.name == "main" else f"{self.name}/"
        return f"/run/moment-sync/{inside}status.sock"

    @property
    def state_dir(self) -> str:
        return "/var/lib/moment-sync" + ("" if self.name == "main" else f"/{self.name}")

    @property
    def economic_admin(self) -> str:
        return f"http://127.0.0.1:{self.economic_port}/admin"

    @property
    def moment_admin(self) -> str:
        return f"http://127.0.0.1:{self.moment_port}/admin"

    def secrets_input(self) -> str:
        """The five secrets, one a line, in the order the README's loop reads them (the
        e-conomic webhook token random: e-conomic's webhooks are not used here)."""
        d = self.described
        return "\n".join((d["moment_api_key"], self.webhook_token, d["app_secret_token"],
                          d["agreement_grant_token"], secrets.token_hex(16))) + "\n"

    def settings(self) -> dict[tuple[str, str], str]:
        """The keys this agreement's config changes in config.example.toml (TOML values)."""
        d = self.described
        values = {("moment", "api_url"): d["moment_api_url"],
                  ("moment", "company"): d["moment_company"],
                  ("economic", "rest_url"): d["rest_url"], ("economic", "apis_url"): d["apis_url"],
                  ("alerts", "email_to"): "",  # no mail server on the machine: alerts are logged
                  ("daemon", "listen"): f"127.0.0.1:{self.listen_port}"}
        if self.name != "main":
            values[("daemon", "state_dir")] = self.state_dir
            values[("daemon", "status_socket")] = self.socket
        return {k: json.dumps(v) for k, v in values.items()}


AGREEMENTS: Final = (
    Agreement("main", 8610, 8611, 8080, {"customers": 12, "projects": 6, "invoices": 8}),
    Agreement("a", 8620, 8621, 8081, {"customers": 5, "projects": 3, "invoices": 4}),
    Agreement("b", 8630, 8631, 8082, {"customers": 7, "projects": 2, "invoices": 3}),
)


def configured(example: str, values: dict[tuple[str, str], str]) -> str:
    """``example`` with each ``key = value`` line of ``values`` replaced in its section; each key
    must be there exactly once, so a renamed key in the example fails here."""
    out, section, done = [], "", set()
    for line in example.splitlines():
        header = re.fullmatch(r"\[(\w+)\]", line.strip())
        if header:
            section = header.group(1)
        key = line.split("=", 1)[0].strip() if "=" in line and not line.startswith("#") else ""
        if (section, key) in values:
            assert (section, key) not in done, f"config.example.toml: [{section}] {key} twice"
            line = f"{key} = {values[section, key]}"
            done.add((section, key))
        out.append(line)
    missing = set(values) - done
    assert not missing, f"config.example.toml lacks {sorted(missing)}"
    return "\n".join(out) + "\n"


class Testbed:
    """The booted machine with its agreements; helpers the tests share."""

    __test__ = False  # not a test class, though its name starts with Test

    def __init__(self, machine: m.Machine, stage: Path) -> None:
        self.machine = machine
        self.stage = stage
        self.agreements = {a.name: a for a in AGREEMENTS}
        self.boot_cursor = ""

    @property
    def main(self) -> Agreement:
        return self.agreements["main"]

    def install_env(self) -> dict[str, str]:
        # offline: pip finds the dependencies in the cached wheels, as it would on PyPI
        return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": WHEELS,
                "PIP_DISABLE_PIP_VERSION_CHECK": "1", "EDITOR": f"{STAGE}/edit-config"}

    def run_block(self, script: str, agreement: Agreement, label: str) -> m.Completed:
        """A README block, run by bash as a script (``-eu -o pipefail``: the first failing line
        stops it) in the checkout, the agreement's secrets on its standard input."""
        (self.stage / f"{label}.sh").write_text(script)
        done = self.machine.run(["bash", "-eu", "-o", "pipefail", f"{STAGE}/{label}.sh"],
                                input=agreement.secrets_input(), env=self.install_env(),
                                cwd=STAGE, timeout=240, check=False)
        assert done.returncode == 0, f"the README's {label} steps failed on the machine: {done}"
        return done

    def write_config(self, agreement: Agreement) -> None:
        example = (m.REPO / "systemd" / "config.example.toml").read_text()
        name = agreement.config.rsplit("/", 1)[1]
        (self.stage / "configs" / name).write_text(configured(example, agreement.settings()))

    def start_sandboxes(self) -> None:
        cursor = self.machine.cursor()
        for a in self.agreements.values():
            self.machine.run(["systemd-run", f"--unit={a.sandbox_unit}",
                              f"--description=moment-sync sandboxes for {a.name}",
                              f"--setenv=PYTHONPATH={STAGE}/sandbox-lib",
                              "/usr/bin/python3", "-m", "daemon", "sandbox",
                              f"--economic-port={a.economic_port}",
                              f"--moment-port={a.moment_port}"])
        for a in self.agreements.values():
            entry = self.machine.journal_wait(
                lambda e: m.message(e).startswith('{"rest_url"'), after=cursor,
                units=[a.sandbox_unit], what=f"{a.sandbox_unit} printing its URLs and tokens")
            a.described = json.loads(m.message(entry))
            self.machine.http("POST", f"{a.moment_admin}/sample", {**a.sample, "seed": 7})
            self.machine.http("PUT", f"{a.moment_admin}/webhook", {
                "url": f"http://127.0.0.1:{a.listen_port}/webhooks/moment/{a.webhook_token}"})
            self.write_config(a)

    def status(self, agreement: Agreement, *, user: str | None = None) -> reports.StatusReport:
        done = self.machine.run(["moment-sync", "status", "--json", "-c", agreement.config],
                                user=user)
        return reports.decode_status(done.stdout.encode())

    def moment_counts(self, agreement: Agreement) -> dict[str, Any]:
        return dict(self.machine.http("GET", agreement.moment_admin))

    def wait_in_sync(self, agreement: Agreement, timeout: float = 60.0) -> reports.StatusReport:
        """The daemon's status once ``moment-sync plan`` finds nothing to change and nothing is
        pending or parked; fails with the last status and plan."""
        deadline = time.monotonic() + timeout
        while True:
            plan = self.machine.run(["moment-sync", "plan", "-c", agreement.config],
                                    check=False)
            status = self.status(agreement)
            settled = all(c.pending == 0 and c.parked == 0 for c in status.entities.values())
            if plan.returncode == 0 and settled and status.entities:
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"{agreement.unit} did not converge in {timeout:.0f} s: "
                                     f"entities {status.entities}; plan: {plan}")
            time.sleep(0.5)  # the daemon converges on its own; this only looks again

    def wait_status_text(self, agreement: Agreement, part: str, timeout: float = 30.0) -> str:
        """The unit's StatusText once it contains ``part`` (the daemon updates it every few
        seconds)."""
        deadline = time.monotonic() + timeout
        while part not in (text := self.machine.show(agreement.unit, "StatusText")["StatusText"]):
            if time.monotonic() > deadline:
                raise AssertionError(f"StatusText of {agreement.unit} should say what the daemon "
                                     f"does ({part!r}), not {text!r}")
            time.sleep(0.5)
        return text

    def economic_get(self, agreement: Agreement, path: str) -> Any:
        """A GET of e-conomic's REST API, as the agreement's tokens; a collection's items."""
        d = agreement.described
        answer = self.machine.http("GET", d["rest_url"] + path, headers={
            "X-AppSecretToken": d["app_secret_token"],
            "X-AgreementGrantToken": d["agreement_grant_token"]})
        return answer["collection"] if isinstance(answer, dict) and "collection" in answer \
            else answer

    def danish_customer(self, agreement: Agreement) -> str:
        """The number of a customer in e-conomic whose country is Denmark (named in Danish)."""
        for customer in self.economic_get(agreement, "/customers?pagesize=1000"):
            if customer.get("country") == "Danmark":
                return str(customer["customerNumber"])
        raise AssertionError(f"no Danish customer in {agreement.name}'s e-conomic sandbox")

    def wait_economic_customer(self, agreement: Agreement, number: str,
                               holds: Callable[[dict[str, Any]], bool], what: str,
                               timeout: float = 30.0) -> dict[str, Any]:
        def fetch() -> dict[str, Any]:
            try:
                return dict(self.economic_get(agreement, f"/customers/{number}"))
            except m.MachineError:  # 404: not created yet
                return {}

        deadline = time.monotonic() + timeout
        while not holds(customer := fetch()):
            if time.monotonic() > deadline:
                raise AssertionError(f"e-conomic customer {number}: not {what} within "
                                     f"{timeout:.0f} s: {customer}")
            time.sleep(0.5)
        return customer

    def wait_pause_over(self, agreement: Agreement, *, timeout: float) -> None:
        """Until the daemon has been paused by e-conomic's 429 and then resumed calling."""
        deadline = time.monotonic() + timeout
        paused = False
        while True:
            status = self.status(agreement)
            if status.economic.paused_until is not None:
                paused = True
            elif paused:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{agreement.unit}: " + (
                    "still paused" if paused else "never paused by the 429") +
                    f" after {timeout:.0f} s: {status.economic}")
            time.sleep(0.5)

    def wait_active(self, agreement: Agreement, *, after: str, timeout: float = 60.0) -> str:
        """The MainPID of the unit once systemd has started it again (its READY) after
        ``after``."""
        self.machine.journal_wait(
            lambda e: e.get("UNIT") == agreement.unit and e.get("JOB_RESULT") == "done"
            and e.get("JOB_TYPE") == "start",
            after=after, what=f"systemd starting {agreement.unit} again", timeout=timeout)
        shown = self.machine.show(agreement.unit, "ActiveState", "SubState", "MainPID")
        assert (shown["ActiveState"], shown["SubState"]) == ("active", "running"), shown
        return shown["MainPID"]


@pytest.fixture(scope="session")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    reason = m.why_not_here()
    if reason:
        pytest.skip(reason)
    m.install_host_tools()
    root, wheels = m.debian_root(), m.wheelhouse()
    stage = tmp_path_factory.mktemp("systemd-stage")
    wheel = m.build_wheel(stage / "dist")
    # the sandboxes run from the same wheel, unpacked beside its dependencies
    m.unpack([wheel, *wheels.glob("*.whl")], stage / "sandbox-lib")
    shutil.copytree(m.REPO / "systemd", stage / "systemd")
    (stage / "configs").mkdir()
    editor = stage / "edit-config"
    editor.write_text(EDITOR)
    editor.chmod(0o755)
    machine = m.Machine(root, name=f"moment-sync-test-{secrets.token_hex(3)}",
                        binds={stage: STAGE, wheels: WHEELS}, log=stage / "nspawn.log")
    try:
        machine.boot()
        bed = Testbed(machine, stage)
        bed.boot_cursor = machine.cursor()
        bed.start_sandboxes()
        bed.run_block(m.shell_block(README, SECTION, 0), bed.main, "install")
        yield bed
    finally:
        machine.stop()
