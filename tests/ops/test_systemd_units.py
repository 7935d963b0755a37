"""The shipped systemd units: ``systemd-analyze verify`` is clean and the exposure is <= 1.2.

The units are checked on copies whose ``ExecStart=`` points at the entry point this checkout
built (verify insists that the binary exists and is executable); the template is checked under
an instance name. What makes verify quiet and deterministic in a container: ``--man=no`` (no
man-db lookups for ``Documentation=``), ``--recursive-errors=no`` (judge our unit, not the
host's ``network-online.target``), no generators, and a log level of ``warning`` without colour
or timestamps, so any line printed is a real warning or error about our unit.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon import settings

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"
SHIPPED_EXEC = "ExecStart=/usr/bin/moment-sync "
MAX_EXPOSURE = 1.2
_SCORE = re.compile(r"Overall exposure level for \S+: (\d+\.\d+)")

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian: apt-get install systemd)",
)


def entry_point() -> Path:
    for candidate in (Path(sys.executable).parent / "moment-sync",
                      REPO / ".venv" / "bin" / "moment-sync"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.resolve()
    pytest.fail("the moment-sync entry point is not built: run `make` (pip install -e .) first")


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "SYSTEMD_LOG_LEVEL": "warning",
        "SYSTEMD_LOG_COLOR": "0",
        "SYSTEMD_LOG_TIME": "0",
        "SYSTEMD_LOG_LOCATION": "0",
        "SYSTEMD_PAGER": "",
        "SYSTEMD_COLORS": "0",
    }
    return subprocess.run(
        ["systemd-analyze", *args], capture_output=True, text=True, encoding="utf-8",
        errors="replace", env=environ, timeout=60, check=False,
    )


#: where the shipped scripts (systemd/moment-sync-*) are installed
SHIPPED_SCRIPTS = "/usr/lib/moment-sync/"


def installed_copy(unit: str, directory: Path) -> Path:
    """``unit`` copied into ``directory`` with ``ExecStart=`` pointing at the built entry point
    (or, for the replica, at the script in this checkout)."""
    text = (UNITS / unit).read_text(encoding="utf-8")
    if "replica" not in unit:
        assert text.count(SHIPPED_EXEC) == 1, f"{unit} must start /usr/bin/moment-sync once"
    copy = directory / unit
    copy.write_text(text.replace(SHIPPED_EXEC, f"ExecStart={entry_point()} ")
                    .replace(SHIPPED_SCRIPTS, f"{UNITS}/"), encoding="utf-8")
    return copy


def with_replica(directory: Path) -> None:
    """The template, its replica drop-in and the replica unit, as installed."""
    installed_copy("moment-sync@.service", directory)
    installed_copy("moment-sync-replica@.service", directory)
    dropins = directory / "moment-sync@.service.d"
    dropins.mkdir()
    installed = dropins / "replica.conf"
    installed.write_text((UNITS / "moment-sync@.service.d" / "replica.conf").read_text(
        encoding="utf-8").replace(SHIPPED_SCRIPTS, f"{UNITS}/"), encoding="utf-8")


def verify(path: Path) -> str:
    result = analyze("verify", "--man=no", "--generators=no", "--recursive-errors=no", str(path))
    output = (result.stdout + result.stderr).strip()
    return output if output or result.returncode == 0 else f"exit status {result.returncode}"


def exposure(path: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    result = analyze("security", "--offline=yes", "--threshold=12", "--no-pager", str(path))
    match = _SCORE.search(result.stdout)
    assert match, result.stdout[-500:] + result.stderr
    return float(match.group(1)), result


# (file shipped, the unit name systemd-analyze is asked about)
CASES = [
    ("moment-sync.service", "moment-sync.service"),
    ("moment-sync@.service", "moment-sync@acme.service"),
]


@pytest.mark.parametrize(("shipped", "name"), CASES)
def test_verify_is_clean(tmp_path: Path, shipped: str, name: str) -> None:
    installed_copy(shipped, tmp_path)
    assert verify(tmp_path / name) == ""


@pytest.mark.parametrize("name", ["moment-sync@acme.service", "moment-sync-replica@acme.service"])
def test_the_replicated_arrangement_verifies_clean_and_as_hardened(tmp_path: Path,
                                                                    name: str) -> None:
    with_replica(tmp_path)
    assert verify(tmp_path / name) == ""
    score, result = exposure(tmp_path / name)
    assert result.returncode == 0, result.stdout[-800:] + result.stderr
    assert score <= MAX_EXPOSURE


def test_the_replica_travels_with_its_daemon() -> None:
    replica = (UNITS / "moment-sync-replica@.service").read_text(encoding="utf-8")
    for line in ("BindsTo=moment-sync@%i.service", "After=moment-sync@%i.service",
                 "StateDirectory=moment-sync/%i"):
        assert f"\n{line}\n" in replica, line
    dropin = (UNITS / "moment-sync@.service.d" / "replica.conf").read_text(encoding="utf-8")
    assert "\nWants=moment-sync-replica@%i.service\n" in dropin
    assert re.search(r"^ExecStartPre=/usr/lib/moment-sync/moment-sync-restore-from-replica "
                     r"/etc/moment-sync/%i.toml /etc/moment-sync/litestream.yml "
                     r"/var/lib/moment-sync/%i/events.db$", dropin, re.M)
    for text in (replica, dropin):
        assert not re.search(r"^[A-Za-z]+=.*[ \t]#", text, re.M)


@pytest.mark.parametrize(("shipped", "name"), CASES)
def test_exposure_is_at_most_1_2(tmp_path: Path, shipped: str, name: str) -> None:
    installed_copy(shipped, tmp_path)
    score, result = exposure(tmp_path / name)
    assert result.returncode == 0, result.stdout[-800:] + result.stderr
    assert score <= MAX_EXPOSURE


def test_the_checks_catch_a_broken_or_weakened_unit(tmp_path: Path) -> None:
    copy = installed_copy("moment-sync.service", tmp_path)
    text = copy.read_text(encoding="utf-8")
    copy.write_text(text.replace("ProtectSystem=strict", "ProtectSytem=strict")
                    .replace("NoNewPrivileges=yes", "NoNewPrivileges=yes  # trailing comment"),
                    encoding="utf-8")
    complaints = verify(copy)
    assert "Unknown key" in complaints and "ProtectSytem" in complaints
    assert "Failed to parse boolean value" in complaints
    weak = tmp_path / "weak"
    weak.mkdir()
    plain = weak / "moment-sync.service"
    plain.write_text("[Service]\nType=notify\nExecStart=/bin/true\n", encoding="utf-8")
    score, result = exposure(plain)
    assert score > MAX_EXPOSURE and result.returncode != 0


def test_units_carry_the_contract() -> None:
    for shipped in ("moment-sync.service", "moment-sync@.service"):
        text = (UNITS / shipped).read_text(encoding="utf-8")
        # the shell's kill: a minimal Debian has no /bin/kill (procps)
        for line in ("Type=notify", "NotifyAccess=main",
                     'ExecReload=/bin/sh -c "kill -HUP ${MAINPID}"',
                     "RuntimeDirectoryMode=0750"):
            assert f"\n{line}\n" in text, (shipped, line)
        assert re.search(r"^WatchdogSec=\d+s$", text, re.M)
        assert re.search(r"^TimeoutStartSec=\d+s$", text, re.M)
        for name in settings.SECRETS:
            assert re.search(rf"^LoadCredential={name}:/etc/credstore/\S+$", text, re.M), name
        # systemd refuses trailing comments: every comment is on a line of its own
        assert not re.search(r"^[A-Za-z]+=.*[ \t]#", text, re.M)
    template = (UNITS / "moment-sync@.service").read_text(encoding="utf-8")
    assert "-c /etc/moment-sync/%i.toml" in template
    assert "\nStateDirectory=moment-sync/%i\n" in template
    assert "\nRuntimeDirectory=moment-sync/%i\n" in template


def test_example_config_validates_and_names_no_secret(tmp_path: Path) -> None:
    loaded = settings.load(UNITS / "config.example.toml", environ={})
    assert loaded.daemon.status_socket == "/run/moment-sync/status.sock"
    assert loaded.state_dir == Path("/var/lib/moment-sync")
    assert (loaded.payments.enabled, loaded.payments.poll_interval) == (False, 3600.0)
    for section, key in settings.SECRETS.values():
        assert getattr(getattr(loaded, section), key) == ""  # credentials, not files
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "moment-api-key").write_text("from-systemd\n")
    secret = settings.load_secret(loaded, "moment-api-key",
                                  environ={"CREDENTIALS_DIRECTORY": str(credentials)})
    assert secret.reveal() == "from-systemd"
