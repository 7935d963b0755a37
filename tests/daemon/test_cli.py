"""The command line's contract where no daemon is needed: ``--help``, a bad config key,
``status`` with nothing running, and ``moment-sync sandbox``'s first line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.daemon import harness, speaking

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

SANDBOX_KEYS = {"rest_url", "apis_url", "app_secret_token", "agreement_grant_token",
                "moment_api_url", "moment_company", "moment_api_key"}


def test_python_m_daemon_help_lists_the_commands() -> None:
    done = harness.cli("--help")
    assert done.returncode == 0, done.stderr
    for command in ("run", "demo", "sandbox", "status", "plan", "resync", "parked", "events",
                    "replay", "check"):
        assert command in done.stdout


def test_a_bad_config_key_exits_1_naming_the_key() -> None:
    root = harness.short_dir("ms-badkey-")
    config = root / "config.toml"
    config.write_text('[moment]\ncompany = "acme"\n\n[economic]\nreconcile_intervall = "2s"\n')
    for command in (["run"], ["check"], ["events"]):
        done = harness.cli(*command, "-c", str(config), timeout=30)
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert "economic.reconcile_intervall" in done.stderr, (command, done.stderr)
        assert "Traceback" not in done.stderr


def test_a_bad_config_value_exits_1_naming_the_key() -> None:
    root = harness.short_dir("ms-badval-")
    config = root / "config.toml"
    config.write_text('[moment]\ncompany = "acme"\n\n[economic]\nreconcile_interval = "soon"\n')
    done = harness.cli("check", "-c", str(config))
    assert done.returncode == 1
    assert "economic.reconcile_interval" in done.stderr


def test_status_with_no_daemon_exits_1_with_a_clear_message() -> None:
    root = harness.short_dir("ms-nodaemon-")
    config = root / "config.toml"
    config.write_text(f'[daemon]\nstatus_socket = "{root}/status.sock"\n'
                      f'state_dir = "{root}/state"\n[moment]\ncompany = "acme"\n')
    done = harness.cli("status", "-c", str(config))
    assert done.returncode == 1
    assert "not running" in done.stderr and str(root / "status.sock") in done.stderr
    assert "Traceback" not in done.stderr


def test_status_with_an_invalid_config_still_asks_the_daemon_saying_why() -> None:
    root = harness.short_dir("ms-badstatus-")
    config = root / "config.toml"
    config.write_text(f'[daemon]\nstatus_socket = "{root}/status.sock"\n'
                      '[economic]\njurnal_number = 1\n')
    done = harness.cli("status", "-c", str(config))
    assert done.returncode == 1  # no daemon here; the socket it asked is the file's
    assert "economic.jurnal_number: unknown key" in done.stderr
    assert "not running" in done.stderr and str(root / "status.sock") in done.stderr
    assert "Traceback" not in done.stderr


def test_sandbox_prints_one_json_object_first() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "daemon", "sandbox"], cwd=harness.REPO,
                            env=harness.clean_environ(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        doc = json.loads(first)
        assert isinstance(doc, dict) and set(doc) == SANDBOX_KEYS
        for key in ("rest_url", "apis_url", "moment_api_url"):
            assert doc[key].startswith("http://127.0.0.1:"), doc[key]
        assert all(isinstance(v, str) and v for v in doc.values())
        # and they answer, with the tokens printed
        reply = speaking.fetch("GET", doc["rest_url"] + "/self", headers={
            "X-AppSecretToken": doc["app_secret_token"],
            "X-AgreementGrantToken": doc["agreement_grant_token"]})
        assert reply.status == 200, reply.body
    finally:
        proc.kill()
        proc.communicate(timeout=10)
