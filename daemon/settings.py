"""The one typed settings tree, loaded once at start (or on SIGHUP) and passed explicitly.

Contract (DESIGN.md, Configuration): one TOML file; ``MOMENT_SYNC_<SECTION>_<KEY>`` environment
variables override file values; an unknown key or a bad value raises :class:`ConfigError` whose
message names the key; secrets never live in the file, only in files it names or in
``$CREDENTIALS_DIRECTORY/<name>``, and are returned as :class:`~daemon.core.secrets.Secret`.
Loading settings never reads a secret: :func:`load_secret` does, so commands that only read the
log never touch them.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import msgspec

from daemon.core import countries, webhooks
from daemon.core import mapping as mp
from daemon.core.secrets import Secret

DEFAULT_CONFIG_PATH: Final = Path("/etc/moment-sync/config.toml")
ENV_PREFIX: Final = "MOMENT_SYNC_"
#: Test hooks (``MOMENT_SYNC_TEST_WEDGE``, ``MOMENT_SYNC_TEST_CRASH_AT``: see
#: :mod:`daemon.reconcile.hooks`) share the prefix but are not overrides.
TEST_HOOK_PREFIX: Final = "MOMENT_SYNC_TEST_"
_EVENT_TYPE = re.compile(r"^[A-Z0-9_]{1,100}$")
_LOOPBACK: Final = ("127.0.0.1", "localhost", "::1")
_DURATION = re.compile(r"^([0-9]+)([smhd])$")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and what is wrong."""


class ListenError(Exception):
    """A ``HOST:PORT`` from the settings cannot be listened on (in use, not this host's).

    The message names the key (``daemon.listen``, ``daemon.metrics_listen``), the address and
    the system's reason, so the daemon stops its start with that sentence, not a traceback.
    """

    def __init__(self, key: str, address: Listen, error: OSError) -> None:
        self.key = key
        super().__init__(f"{key}: cannot listen on {address}: {error.strerror or error}")


class Duration(float):
    """Seconds, written in the file as a whole number with a unit: ``"2s"``, ``"5m"``, ``"24h"``."""

    @classmethod
    def parse(cls, text: object) -> Duration:
        if not isinstance(text, str):
            raise ValueError(f"expected a duration such as \"5m\", got {text!r}")
        match = _DURATION.match(text.strip())
        if match is None:
            raise ValueError(
                f"{text!r} is not a duration: use a whole number and s, m, h or d, such as \"5m\""
            )
        seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
        if seconds <= 0:
            raise ValueError(f"{text!r} must be longer than zero")
        return cls(seconds)


class Listen:
    """A TCP address written as ``HOST:PORT``."""

    __slots__ = ("host", "port")

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Listen) and (self.host, self.port) == (other.host, other.port)

    def __hash__(self) -> int:
        return hash((self.host, self.port))

    def __repr__(self) -> str:
        return f"Listen({self.host!r}, {self.port})"

    @classmethod
    def parse(cls, text: object) -> Listen:
        if not isinstance(text, str) or ":" not in text:
            raise ValueError(f"expected HOST:PORT such as \"127.0.0.1:8080\", got {text!r}")
        host, _, port_text = text.rpartition(":")
        host = host.strip("[]")
        if not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"expected HOST:PORT with a port from 0 to 65535, got {text!r}")
        return cls(host=host, port=int(port_text))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def parse_metrics_listen(text: str) -> Listen | None:
    """``[daemon] metrics_listen``: ``""`` is off, else ``HOST:PORT`` with an IP address or a
    host name and a port from 1 to 65535 (a Prometheus server must know the port, so 0, "any
    free port", is refused). Raises :class:`ValueError` saying what is wrong."""
    if not text.strip():
        return None
    address = Listen.parse(text.strip())
    try:
        ipaddress.ip_address(address.host)
    except ValueError:
        if not _HOSTNAME.match(address.host):
            raise ValueError(f"{address.host!r} is neither an IP address nor a host name, in "
                             f"{text!r}") from None
    if address.port == 0:
        raise ValueError(f"{text!r}: the port must be from 1 to 65535 (a Prometheus server "
                         "scrapes a fixed port)")
    return address


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class DaemonSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    state_dir: str = "/var/lib/moment-sync"
    status_socket: str = "/run/moment-sync/status.sock"
    listen: Listen = Listen(host="127.0.0.1", port=8080)
    log_format: str = "json"
    metrics_listen: str = ""  # HOST:PORT serving /metrics over TCP; empty: off

    @property
    def metrics_address(self) -> Listen | None:
        """Where ``/metrics`` is served over TCP, or ``None`` when it is off (validated at
        load, so this never raises on loaded settings)."""
        return parse_metrics_listen(self.metrics_listen)


class MomentSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    api_url: str = "https://app.moment.team/api/1.0"
    company: str
    api_key_file: str = ""
    webhook_token_file: str = ""
    poll_interval: Duration = Duration(300)
    full_scan_interval: Duration = Duration(86400)


class EconomicSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    rest_url: str = "https://restapi.e-conomic.com"
    apis_url: str = "https://apis.e-conomic.com"
    app_secret_token_file: str = ""
    agreement_grant_token_file: str = ""
    journal_number: int = 1
    customer_group: int = 1
    project_group: int = 1
    payment_terms: int = 1
    currency: str = "DKK"
    vat_zone: str = ""
    vat_zones: dict[str, int] = msgspec.field(
        default_factory=lambda: {"DK": 1, "EU": 2, "ABROAD": 3}
    )
    invoice_vat_code: str = ""
    default_account: int = 1010
    internal_project_group: int = 0
    invoice_without_project: str = "book"
    language: str = "da"
    include_pdf: bool = True
    auto_book: bool = True
    #: public base URL that reaches [daemon] listen (behind the TLS proxy); empty: no webhooks
    webhook_url: str = ""
    webhook_token_file: str = ""
    webhook_events: dict[str, str] = msgspec.field(
        default_factory=lambda: dict(webhooks.DEFAULT_EVENTS))
    reconcile_interval: Duration = Duration(600)
    full_reconcile_interval: Duration = Duration(21600)
    daily_call_budget: int = 50000


class PaymentSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[payments]``: the paid status of the invoices the daemon booked, into Moment."""

    enabled: bool = False
    poll_interval: Duration = Duration(3600)


class ExpenseSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[expenses]``: costs booked in e-conomic on a project become Moment project expenses."""

    enabled: bool = False
    accounts: list[int] = []
    cost_type: str = "Udlæg"
    cost_types: dict[int, str] = {}
    lookback: Duration = Duration(30 * 86400)
    poll_interval: Duration = Duration(300)
    full_scan_interval: Duration = Duration(86400)


class AlertSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    email_to: str = ""
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_from: str = "moment-sync@localhost"


class ReplicationSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Litestream beside the daemon (DESIGN.md, "Losing the host loses nothing")."""

    metrics_url: str = ""  # Litestream's /metrics (its `addr:`); empty: replication not watched
    max_lag: Duration = Duration(60)  # longer behind than this (or unreadable) is failing


class Settings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    moment: MomentSettings
    daemon: DaemonSettings = DaemonSettings()
    economic: EconomicSettings = msgspec.field(default_factory=EconomicSettings)
    replication: ReplicationSettings = ReplicationSettings()
    alerts: AlertSettings = AlertSettings()
    payments: PaymentSettings = PaymentSettings()
    expenses: ExpenseSettings = msgspec.field(default_factory=ExpenseSettings)
    source: str = ""  # the file these settings came from; not a TOML key

    @property
    def state_dir(self) -> Path:
        return Path(self.daemon.state_dir)

    @property
    def db_path(self) -> Path:
        return self.state_dir / "events.db"


SECTIONS: Final = ("daemon", "moment", "economic", "replication", "alerts", "expenses",
                   "payments")

#: secret name (systemd credential) -> (section, key of the file path)
SECRETS: Final = {
    "moment-api-key": ("moment", "api_key_file"),
    "moment-webhook-token": ("moment", "webhook_token_file"),
    "economic-app-secret-token": ("economic", "app_secret_token_file"),
    "economic-agreement-grant-token": ("economic", "agreement_grant_token_file"),
    "economic-webhook-token": ("economic", "webhook_token_file"),
}
#: secrets read only when the setting named is set (the e-conomic webhook token: webhook_url)
OPTIONAL_SECRETS: Final = {"economic-webhook-token": ("economic", "webhook_url")}


def needed_secrets(settings: Settings) -> list[str]:
    """The secrets this configuration uses: all of :data:`SECRETS`, less the optional ones
    whose setting is empty."""
    return [name for name in SECRETS
            if name not in OPTIONAL_SECRETS
            or getattr(getattr(settings, OPTIONAL_SECRETS[name][0]), OPTIONAL_SECRETS[name][1])]


def mapping_options(settings: Settings) -> mp.Options:
    """What the mapping needs of ``[economic]``: groups, terms, VAT, journal, PDF and booking."""
    e = settings.economic
    return mp.Options(customer_group=e.customer_group, project_group=e.project_group,
                      payment_terms=e.payment_terms, currency=e.currency, vat_zone=e.vat_zone,
                      vat_zones=dict(e.vat_zones), journal_number=e.journal_number,
                      invoice_vat_code=e.invoice_vat_code, default_account=e.default_account,
                      internal_project_group=e.internal_project_group,
                      invoice_without_project=e.invoice_without_project, language=e.language,
                      include_pdf=e.include_pdf, auto_book=e.auto_book,
                      payments=settings.payments.enabled,
                      expenses=settings.expenses.enabled,
                      expense_accounts=tuple(settings.expenses.accounts),
                      cost_type=settings.expenses.cost_type,
                      cost_types=dict(settings.expenses.cost_types))


def config_path(explicit: str | None, environ: Mapping[str, str] | None = None) -> Path:
    """``-c`` wins, then ``$MOMENT_SYNC_CONFIG``, then ``/etc/moment-sync/config.toml``."""
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if env.get("MOMENT_SYNC_CONFIG"):
        return Path(env["MOMENT_SYNC_CONFIG"])
    return DEFAULT_CONFIG_PATH


def _dec_hook(type_: type, obj: Any) -> Any:
    if type_ is Duration:
        return Duration.parse(obj)
    if type_ is Listen:
        return Listen.parse(obj)
    raise NotImplementedError(f"no decoder for {type_!r}")


def _env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == "MOMENT_SYNC_CONFIG" \
                or name.startswith(TEST_HOOK_PREFIX):
            continue
        rest = name[len(ENV_PREFIX):].lower()
        section = next((s for s in SECTIONS if rest.startswith(s + "_")), None)
        if section is None:
            raise ConfigError(
                f"{name}: unknown section; overrides are MOMENT_SYNC_<SECTION>_<KEY> "
                f"with SECTION one of {', '.join(s.upper() for s in SECTIONS)}"
            )
        key = rest[len(section) + 1:]
        target = raw.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"{section}: must be a table")
        target[key] = _env_value(value)


_PATH_RE = re.compile(r"at `\$((?:\.[A-Za-z_0-9]+|\[[^\]]*\])*)`")


def _describe(error: msgspec.ValidationError) -> str:
    text = str(error)
    match = _PATH_RE.search(text)
    where = match.group(1).lstrip(".") if match else ""
    message = _PATH_RE.sub("", text).rstrip(" -")
    if message.startswith("Object contains unknown field"):
        field = message.split("`")[1]
        where = f"{where}.{field}" if where else field
        return f"{where}: unknown key"
    if message.startswith("Object missing required field"):
        field = message.split("`")[1]
        where = f"{where}.{field}" if where else field
        return f"{where}: required key is missing"
    return f"{where or 'config'}: {message}"


def _validate(settings: Settings) -> None:
    e = settings.economic
    for key in ("journal_number", "customer_group", "project_group", "payment_terms",
                "default_account", "daily_call_budget"):
        if getattr(e, key) <= 0:
            raise ConfigError(f"economic.{key}: must be a positive whole number")
    if not e.vat_zones:
        raise ConfigError("economic.vat_zones: must map at least one Moment VAT code")
    if e.vat_zone and e.vat_zone not in e.vat_zones:
        raise ConfigError(
            f"economic.vat_zone: {e.vat_zone!r} is not one of the codes in economic.vat_zones "
            f"({', '.join(sorted(e.vat_zones))}); leave it empty to take the zone from the "
            "country"
        )
    if e.internal_project_group < 0:
        raise ConfigError("economic.internal_project_group: must be a project group number, or "
                          "0 to park projects without a customer")
    if e.invoice_without_project not in ("book", "wait"):
        raise ConfigError(f"economic.invoice_without_project: {e.invoice_without_project!r} "
                          "must be \"book\" or \"wait\"")
    if e.language not in ("da", "en"):
        raise ConfigError(f"economic.language: {e.language!r} must be \"da\" or \"en\"")
    for code, zone in e.vat_zones.items():
        if zone <= 0:
            raise ConfigError(f"economic.vat_zones.{code}: must be a positive vatZoneNumber")
    missing = [key for key in countries.ZONE_KEYS if key not in e.vat_zones]
    if not e.vat_zone and missing:
        raise ConfigError(
            f"economic.vat_zones: has no {', '.join(missing)}: with vat_zone empty, a customer "
            "without a VAT code in Moment gets the zone of its country (DK for Denmark, EU for "
            "another member state, ABROAD elsewhere), so map each of them to an e-conomic "
            "vatZoneNumber (or set vat_zone to the code every such customer gets)")
    if len(e.currency) != 3 or not e.currency.isalpha() or not e.currency.isupper():
        raise ConfigError(f"economic.currency: {e.currency!r} is not an ISO 4217 code like \"DKK\"")
    if settings.daemon.log_format not in ("json", "console"):
        raise ConfigError(
            f"daemon.log_format: {settings.daemon.log_format!r} must be \"json\" or \"console\""
        )
    try:
        metrics_at = parse_metrics_listen(settings.daemon.metrics_listen)
    except ValueError as exc:
        raise ConfigError(f"daemon.metrics_listen: {exc}; write HOST:PORT such as "
                          "\"127.0.0.1:9108\", or \"\" to leave it off") from None
    if metrics_at is not None and metrics_at == settings.daemon.listen:
        raise ConfigError(f"daemon.metrics_listen: {metrics_at} is daemon.listen's address too "
                          "(the webhook receiver's); give /metrics a port of its own")
    for section, key in (("moment", "api_url"), ("economic", "rest_url"), ("economic", "apis_url")):
        url = getattr(getattr(settings, section), key)
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{section}.{key}: {url!r} is not an http(s) URL")
    metrics_url = settings.replication.metrics_url
    if metrics_url and not metrics_url.startswith(("http://", "https://")):
        raise ConfigError(f"replication.metrics_url: {metrics_url!r} is not an http(s) URL "
                          "(Litestream's addr, e.g. \"http://127.0.0.1:9090/metrics\"), or empty")
    if settings.replication.max_lag <= 0:
        raise ConfigError("replication.max_lag: must be longer than 0s")
    _validate_webhooks(e)
    if not settings.moment.company.strip():
        raise ConfigError("moment.company: must not be empty")
    x = settings.expenses
    for account in x.accounts:
        if not 0 < account <= mp.MAX_NUMBER:
            raise ConfigError(f"expenses.accounts: {account} is not an e-conomic account number")
    for account, cost_type in x.cost_types.items():
        if not cost_type.strip():
            raise ConfigError(f"expenses.cost_types.{account}: must not be empty")
    if not x.cost_type.strip():
        raise ConfigError("expenses.cost_type: must not be empty")
    for key in ("lookback", "poll_interval", "full_scan_interval"):
        if getattr(x, key) <= 0:
            raise ConfigError(f"expenses.{key}: must be longer than 0s")
    if not 0 < settings.alerts.smtp_port < 65536:
        raise ConfigError("alerts.smtp_port: must be a port from 1 to 65535")


def _validate_webhooks(e: EconomicSettings) -> None:
    """``webhook_url``: empty, or an https URL without query or fragment (http only on
    loopback, where the sandbox takes it); ``webhook_events``: event type names by kind."""
    for kind, name in e.webhook_events.items():
        if kind not in webhooks.KINDS:
            raise ConfigError(f"economic.webhook_events.{kind}: unknown kind; use "
                              f"{', '.join(webhooks.KINDS)}")
        if not _EVENT_TYPE.match(name):
            raise ConfigError(f"economic.webhook_events.{kind}: {name!r} is not an e-conomic "
                              "event type name (capital letters, digits and _, such as "
                              "\"CUSTOMER_UPDATED\")")
    if len(set(e.webhook_events.values())) != len(e.webhook_events):
        raise ConfigError("economic.webhook_events: two kinds name the same event type; "
                          "e-conomic allows one webhook per event type")
    url = e.webhook_url
    if not url:
        return
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"economic.webhook_url: {url!r} is not an https URL such as "
                          "\"https://sync.example.com\"")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ConfigError(f"economic.webhook_url: {url!r} is http; e-conomic calls only https "
                          "URLs: put the TLS proxy's https address here")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"economic.webhook_url: {url!r} must be a base URL without query, "
                          "fragment or credentials; the daemon adds /webhooks/economic/ and the "
                          "token")
    if len(webhooks.url_prefix(url)) + 100 > 1000:
        raise ConfigError("economic.webhook_url: too long; e-conomic takes webhook URLs of "
                          "at most 1000 characters, the path and token included")


def parse(text: str, *, source: str = "<config>",
          environ: Mapping[str, str] | None = None) -> Settings:
    """Parse TOML text plus environment overrides into validated settings."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    if "source" in raw:
        raise ConfigError("source: unknown key")
    _apply_env(raw, os.environ if environ is None else environ)
    raw["source"] = source
    try:
        settings = msgspec.convert(raw, Settings, dec_hook=_dec_hook, str_keys=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    _validate(settings)
    return settings


def load(path: Path, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the file at ``path``; raises :class:`ConfigError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: is not UTF-8 text") from None
    return parse(text, source=str(path), environ=environ)


def status_socket(path: Path, *, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The status socket the file at ``path`` names, and why the file does not validate ("" when
    it does). A file that is TOML but invalid still names its socket (``[daemon]
    status_socket``, its environment override, else the default): after a bad edit the running
    daemon keeps its last good configuration, and ``moment-sync status`` must still reach it.
    Raises :class:`ConfigError` only for a file that cannot be read or is not TOML."""
    env = os.environ if environ is None else environ
    try:
        return load(path, environ=env).daemon.status_socket, ""
    except ConfigError as exc:
        problem = str(exc)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        raise ConfigError(problem) from None
    named = env.get("MOMENT_SYNC_DAEMON_STATUS_SOCKET") or raw.get("daemon", {}).get(
        "status_socket")
    return (named if isinstance(named, str) and named else DaemonSettings().status_socket,
            problem)


def load_secret(settings: Settings, name: str, *,
                environ: Mapping[str, str] | None = None) -> Secret:
    """Read the secret ``name`` (a key of :data:`SECRETS`) from its file or credential.

    The file named in the config wins; else ``$CREDENTIALS_DIRECTORY/<name>``. Trailing
    newline and spaces are stripped. Raises :class:`ConfigError` naming the key, never the value.
    """
    env = os.environ if environ is None else environ
    section, key = SECRETS[name]
    configured = getattr(getattr(settings, section), key)
    candidates: list[tuple[str, Path]] = []
    if configured:
        candidates.append((f"{section}.{key}", Path(configured)))
    elif env.get("CREDENTIALS_DIRECTORY"):
        candidates.append((f"credential {name}", Path(env["CREDENTIALS_DIRECTORY"]) / name))
    if not candidates:
        raise ConfigError(
            f"{section}.{key}: not set, and no credential {name!r} in $CREDENTIALS_DIRECTORY"
        )
    label, path = candidates[0]
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n\t ")
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read {path}: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"{label}: {path} is empty")
    return Secret(value)
