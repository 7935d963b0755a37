"""``moment-sync check`` (a subprocess) against the e-conomic sandbox: one line per check, PASS
or FAIL with advice, exit 1 on any failure."""

from __future__ import annotations

import pytest

from daemon.ops import preflight
from tests.daemon import harness, speaking

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def set_project_module(sb: harness.Sandboxes, on: bool) -> None:
    reply = speaking.fetch("PATCH", f"{sb.economic.admin_url}/config", body={"project_module": on})
    assert reply.status == 200 and reply.json()["project_module"] is on


def check_lines(stdout: str) -> dict[str, str]:
    """Check name -> its line; the advice lines (indented) and the summary are left out."""
    lines = {}
    for line in stdout.splitlines():
        if line.startswith(("PASS", "FAIL")):
            name = line.split()[1]
            assert name not in lines, f"{name} reported twice"
            lines[name] = line
    return lines


def test_check_passes_with_the_project_module_on(sandboxes: harness.Sandboxes) -> None:
    set_project_module(sandboxes, True)
    setup = harness.write_config(sandboxes, prefix="ms-check-")
    done = harness.cli("check", "-c", str(setup.config))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = check_lines(done.stdout)
    assert set(lines) == set(preflight.ORDER)
    assert all(line.startswith("PASS") for line in lines.values()), done.stdout
    assert done.stdout.splitlines()[-1] == f"all {len(preflight.ORDER)} checks passed"


def test_check_fails_project_module_when_it_is_off(sandboxes: harness.Sandboxes) -> None:
    setup = harness.write_config(sandboxes, prefix="ms-check-")
    set_project_module(sandboxes, False)
    try:
        done = harness.cli("check", "-c", str(setup.config))
    finally:
        set_project_module(sandboxes, True)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = check_lines(done.stdout)
    assert set(lines) == set(preflight.ORDER)
    assert lines["project_module"].startswith("FAIL")
    out = done.stdout.splitlines()
    advice = out[out.index(lines["project_module"]) + 1]
    assert advice.startswith(" ") and "Projects module" in advice
    # what does not need the module still passes
    for name in ("tokens", "customer_group", "journal", "accounting_year"):
        assert lines[name].startswith("PASS"), lines[name]


def test_check_fails_tokens_on_a_wrong_token(sandboxes: harness.Sandboxes) -> None:
    wrong = "wrong-grant-" + "7" * 16
    setup = harness.write_config(sandboxes, prefix="ms-check-", economic_grant=wrong)
    done = harness.cli("check", "-c", str(setup.config))
    assert done.returncode == 1
    lines = check_lines(done.stdout)
    assert lines["tokens"].startswith("FAIL")
    assert "refused" in lines["tokens"]
    assert all(line.startswith("FAIL") for line in lines.values())
    assert wrong not in done.stdout + done.stderr
    assert sandboxes.economic.app_secret_token not in done.stdout + done.stderr
