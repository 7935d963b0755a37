"""Settings: the DESIGN.md config contract; every bad key or value is named in the message."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon import settings as config
from daemon.core.secrets import Secret

MINIMAL = '[moment]\ncompany = "acme"\n'


def test_defaults_are_designs() -> None:
    s = config.parse(MINIMAL, environ={})
    assert s.daemon.state_dir == "/var/lib/moment-sync"
    assert str(s.daemon.listen) == "127.0.0.1:8080"
    assert (s.moment.poll_interval, s.moment.full_scan_interval) == (300.0, 86400.0)
    assert s.economic.vat_zones == {"DK": 1, "EU": 2, "ABROAD": 3}
    assert (s.economic.reconcile_interval, s.economic.full_reconcile_interval) == (600.0, 21600.0)
    assert s.economic.daily_call_budget == 50000 and s.economic.include_pdf is True
    assert s.alerts.email_to == "" and s.alerts.smtp_port == 25
    assert s.daemon.metrics_listen == "" and s.daemon.metrics_address is None
    assert (s.economic.vat_zone, s.economic.internal_project_group,
            s.economic.invoice_without_project, s.economic.language) == ("", 0, "book", "da")
    opts = config.mapping_options(s)
    assert (opts.vat_zone, opts.internal_project_group, opts.invoice_without_project,
            opts.language) == ("", 0, "book", "da")
    assert (s.payments.enabled, s.payments.poll_interval, opts.payments) == (False, 3600.0, False)


def test_payments_section() -> None:
    s = config.parse(MINIMAL + '[payments]\nenabled = true\npoll_interval = "15m"', environ={})
    assert (s.payments.enabled, s.payments.poll_interval) == (True, 900.0)
    assert config.mapping_options(s).payments is True
    env = config.parse(MINIMAL, environ={"MOMENT_SYNC_PAYMENTS_ENABLED": "true"})
    assert config.mapping_options(env).payments is True


@pytest.mark.parametrize(("text", "message"), [
    ("", "moment: required key is missing"),
    ('[moment]\napi_url = "https://x"', "moment.company: required key is missing"),
    (MINIMAL + "colour = 1", "moment.colour: unknown key"),
    (MINIMAL + "[economic]\njurnal_number = 1", "economic.jurnal_number: unknown key"),
    (MINIMAL + "[bogus]\nx = 1", "bogus: unknown key"),
    (MINIMAL + '[economic]\njournal_number = "one"', "economic.journal_number: Expected `int`"),
    (MINIMAL + "[economic]\njournal_number = 0", "economic.journal_number: must be a positive"),
    (MINIMAL + 'poll_interval = "5 minutes"', "moment.poll_interval: '5 minutes' is not a dur"),
    (MINIMAL + "poll_interval = 300", "moment.poll_interval: expected a duration"),
    (MINIMAL + 'poll_interval = "0s"', "moment.poll_interval: '0s' must be longer than zero"),
    (MINIMAL + '[daemon]\nlisten = "8080"', "daemon.listen: expected HOST:PORT"),
    (MINIMAL + '[daemon]\nlisten = "h:99999"', "daemon.listen: expected HOST:PORT with a port"),
    (MINIMAL + '[daemon]\nlog_format = "xml"', "daemon.log_format: 'xml' must be"),
    (MINIMAL + '[daemon]\nmetrics_listen = "9108"',
     "daemon.metrics_listen: expected HOST:PORT such as"),
    (MINIMAL + '[daemon]\nmetrics_listen = "localhost:http"',
     "daemon.metrics_listen: expected HOST:PORT with a port"),
    (MINIMAL + '[daemon]\nmetrics_listen = "127.0.0.1:0"',
     "daemon.metrics_listen: '127.0.0.1:0': the port must be from 1 to 65535"),
    (MINIMAL + '[daemon]\nmetrics_listen = "local host:9108"',
     "daemon.metrics_listen: 'local host' is neither an IP address nor a host name"),
    (MINIMAL + "[daemon]\nmetrics_listen = 9108", "daemon.metrics_listen: Expected `str`"),
    (MINIMAL + '[daemon]\nlisten = "127.0.0.1:9108"\nmetrics_listen = "127.0.0.1:9108"',
     "daemon.metrics_listen: 127.0.0.1:9108 is daemon.listen's address too"),
    (MINIMAL + '[economic]\nvat_zones = {DK = "one"}', "economic.vat_zones"),
    (MINIMAL + '[economic]\nvat_zone = "XX"', "economic.vat_zone: 'XX' is not one of"),
    (MINIMAL + "[economic]\nvat_zones = {}", "economic.vat_zones: must map at least one"),
    (MINIMAL + "[economic]\nvat_zones = {DK = 1, EU = 2}",
     "economic.vat_zones: has no ABROAD: with vat_zone empty, a customer without a VAT code"),
    (MINIMAL + "[economic]\nvat_zones = {DK = 1}", "economic.vat_zones: has no EU, ABROAD"),
    (MINIMAL + '[economic]\ncurrency = "kroner"', "economic.currency: 'kroner' is not"),
    (MINIMAL + '[economic]\nrest_url = "ftp://x"', "economic.rest_url: 'ftp://x' is not"),
    (MINIMAL + '[economic]\ninclude_pdf = "yes"', "economic.include_pdf: Expected `bool`"),
    (MINIMAL + '[economic]\nlanguage = "de"', "economic.language: 'de' must be \"da\" or"),
    (MINIMAL + "[alerts]\nsmtp_port = 0", "alerts.smtp_port: must be a port"),
    (MINIMAL + "[economic]\ninternal_project_group = -1",
     "economic.internal_project_group: must be a project group number"),
    (MINIMAL + '[economic]\ninternal_project_group = "x"',
     "economic.internal_project_group: Expected `int`"),
    (MINIMAL + '[economic]\ninvoice_without_project = "skip"',
     "economic.invoice_without_project: 'skip' must be"),
    (MINIMAL + '[economic]\nlanguage = "de"', "economic.language: 'de' must be"),
    ('[moment]\ncompany = "  "', "moment.company: must not be empty"),
    (MINIMAL + "[moment", "not valid TOML"),
    ('source = "x"\n' + MINIMAL, "source: unknown key"),
    (MINIMAL + '[payments]\nenabled = "yes"', "payments.enabled: Expected `bool`"),
    (MINIMAL + '[payments]\npoll_interval = "0s"', "payments.poll_interval: '0s' must be"),
    (MINIMAL + "[payments]\naccounts = []", "payments.accounts: unknown key"),
])
def test_bad_configurations(text: str, message: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.parse(text, environ={})
    assert message in str(caught.value)


def test_environment_overrides() -> None:
    env = {"MOMENT_SYNC_ECONOMIC_VAT_ZONES": "{DK = 7}", "MOMENT_SYNC_ECONOMIC_VAT_ZONE": "DK",
           "MOMENT_SYNC_ECONOMIC_JOURNAL_NUMBER": "7", "MOMENT_SYNC_MOMENT_COMPANY": "beta",
           "MOMENT_SYNC_ECONOMIC_AUTO_BOOK": "false", "MOMENT_SYNC_CONFIG": "/ignored",
           "MOMENT_SYNC_DAEMON_LISTEN": "127.0.0.1:9000"}
    s = config.parse(MINIMAL, environ=env)
    assert s.economic.vat_zones == {"DK": 7} and s.economic.journal_number == 7
    assert s.moment.company == "beta" and s.economic.auto_book is False
    assert s.daemon.listen.port == 9000


@pytest.mark.parametrize(("text", "host", "port"), [
    ("127.0.0.1:9108", "127.0.0.1", 9108),
    ("[::1]:9108", "::1", 9108),
    ("metrics.internal:9100", "metrics.internal", 9100),
    ("0.0.0.0:9108", "0.0.0.0", 9108),
])
def test_metrics_listen(text: str, host: str, port: int) -> None:
    s = config.parse(MINIMAL + f'[daemon]\nmetrics_listen = "{text}"', environ={})
    assert s.daemon.metrics_address == config.Listen(host=host, port=port)
    by_env = config.parse(MINIMAL, environ={"MOMENT_SYNC_DAEMON_METRICS_LISTEN": text})
    assert by_env.daemon.metrics_address == config.Listen(host=host, port=port)


@pytest.mark.parametrize(("env", "message"), [
    ({"MOMENT_SYNC_NOPE_X": "1"}, "MOMENT_SYNC_NOPE_X: unknown section"),
    ({"MOMENT_SYNC_ECONOMIC_JOURNALNUMBER": "1"}, "economic.journalnumber: unknown key"),
    ({"MOMENT_SYNC_ECONOMIC_JOURNAL_NUMBER": "x"}, "economic.journal_number: Expected `int`"),
])
def test_bad_environment_overrides(env: dict[str, str], message: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.parse(MINIMAL, environ=env)
    assert message in str(caught.value)


def test_config_path_order() -> None:
    assert config.config_path("a.toml", {"MOMENT_SYNC_CONFIG": "b.toml"}) == Path("a.toml")
    assert config.config_path(None, {"MOMENT_SYNC_CONFIG": "b.toml"}) == Path("b.toml")
    assert config.config_path(None, {}) == Path("/etc/moment-sync/config.toml")


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="no such configuration file"):
        config.load(tmp_path / "nope.toml")


def test_secrets_from_file_or_credentials(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("s3cret-value \n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "economic-app-secret-token").write_text("from-credential\n")
    s = config.parse(MINIMAL + f'api_key_file = "{tmp_path / "key"}"\n', environ={})
    key = config.load_secret(s, "moment-api-key", environ={})
    assert key.reveal() == "s3cret-value"
    assert repr(key) == str(key) == f"{key}" == "<redacted>"
    token = config.load_secret(s, "economic-app-secret-token",
                               environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert token.reveal() == "from-credential"
    with pytest.raises(config.ConfigError, match=r"economic\.agreement_grant_token_file: not set"):
        config.load_secret(s, "economic-agreement-grant-token", environ={})
    (tmp_path / "empty").write_text("\n")
    s2 = config.parse(MINIMAL + f'api_key_file = "{tmp_path / "empty"}"\n', environ={})
    with pytest.raises(config.ConfigError, match="is empty") as caught:
        config.load_secret(s2, "moment-api-key", environ={})
    assert "s3cret" not in str(caught.value)


def test_secret_hides_itself() -> None:
    secret = Secret("abc")
    assert "abc" not in repr([secret]) and "abc" not in f"{secret!s}{secret!r}"
    assert secret.equals("abc") and not secret.equals("abd")


def test_expenses_section() -> None:
    s = config.parse(MINIMAL, environ={})
    assert (s.expenses.enabled, s.expenses.accounts, s.expenses.cost_type) == (False, [], "Udlæg")
    assert (s.expenses.lookback, s.expenses.poll_interval,
            s.expenses.full_scan_interval) == (30 * 86400.0, 300.0, 86400.0)
    on = config.parse(MINIMAL + '[expenses]\nenabled = true\naccounts = [2750, 2800]\n'
                      'cost_types = { 2750 = "Rejser" }\nlookback = "7d"\n', environ={})
    opts = config.mapping_options(on)
    assert (opts.expenses, opts.expense_accounts, opts.cost_types, opts.cost_type) == (
        True, (2750, 2800), {2750: "Rejser"}, "Udlæg")
    assert on.expenses.lookback == 7 * 86400.0
    env = config.parse(MINIMAL, environ={"MOMENT_SYNC_EXPENSES_ENABLED": "true"})
    assert env.expenses.enabled is True


@pytest.mark.parametrize(("text", "message"), [
    ("[expenses]\naccounts = [0]", "expenses.accounts: 0 is not an e-conomic account number"),
    ('[expenses]\ncost_types = { konto = "Rejser" }', "expenses.cost_types"),
    ('[expenses]\ncost_types = { 2750 = " " }', "expenses.cost_types.2750: must not be empty"),
    ('[expenses]\ncost_type = ""', "expenses.cost_type: must not be empty"),
    ('[expenses]\nlookback = "30 days"', "expenses.lookback: '30 days' is not a duration"),
    ("[expenses]\nenabld = true", "expenses.enabld: unknown key"),
])
def test_bad_expenses_settings_are_named(text: str, message: str) -> None:
    with pytest.raises(config.ConfigError) as info:
        config.parse(MINIMAL + text, environ={})
    assert message in str(info.value)


def test_an_invalid_file_still_names_its_status_socket(tmp_path: Path) -> None:
    """After a bad edit the daemon runs on its last good configuration: ``moment-sync status``
    still finds its socket, and is told why the file does not validate."""
    path = tmp_path / "config.toml"
    path.write_text('[daemon]\nstatus_socket = "/run/x/status.sock"\n'
                    '[economic]\njurnal_number = 1\n')
    assert config.status_socket(path, environ={}) == (
        "/run/x/status.sock", "economic.jurnal_number: unknown key")
    assert config.status_socket(
        path, environ={"MOMENT_SYNC_DAEMON_STATUS_SOCKET": "/run/y.sock"})[0] == "/run/y.sock"
    path.write_text("[economic]\njurnal_number = 1\n")
    assert config.status_socket(path, environ={})[0] == "/run/moment-sync/status.sock"
    path.write_text(MINIMAL)
    assert config.status_socket(path, environ={}) == ("/run/moment-sync/status.sock", "")
    path.write_text("[daemon\n")
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.status_socket(path, environ={})
    with pytest.raises(config.ConfigError, match="no such configuration file"):
        config.status_socket(tmp_path / "absent.toml", environ={})
