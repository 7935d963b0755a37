"""The one typed settings tree, loaded once at start (or on SIGHUP) and passed explicitly.

Contract (DESIGN.md, Configuration): one TOML file; ``MOMENT_SYNC_<SECTION>_<KEY>`` environment
variables override file values; an unknown key or a bad value raises :class:`ConfigError` whose
message names the key; secrets never live in the file, only in files it names or in
``$CREDENTIALS_DIRECTORY/<name>``, and are returned as :class:`~daemon.core.secrets.Secret`.
Loading settings never reads a secret: :func:`load_secret` does, so commands that only read the
log never touch them.

This module loads and validates; the sections it loads into (the ``Settings`` tree, its
``Duration`` and ``Listen`` values) are declared in :mod:`daemon.settings.sections`, and
imported from here as before.
"""

from __future__ import annotations

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
from daemon.settings.sections import SECTIONS, EconomicSettings, parse_metrics_listen
from daemon.settings.sections import AlertSettings as AlertSettings
from daemon.settings.sections import DaemonSettings as DaemonSettings
from daemon.settings.sections import Duration as Duration
from daemon.settings.sections import Listen as Listen
from daemon.settings.sections import ListenError as ListenError
from daemon.settings.sections import MomentSettings as MomentSettings
from daemon.settings.sections import Settings as Settings

DEFAULT_CONFIG_PATH: Final = Path("/etc/moment-sync/config.toml")
ENV_PREFIX: Final = "MOMENT_SYNC_"
#: Test hooks (``MOMENT_SYNC_TEST_WEDGE``, ``MOMENT_SYNC_TEST_CRASH_AT``: see
#: :mod:`daemon.reconcile.hooks`) share the prefix but are not overrides.
TEST_HOOK_PREFIX: Final = "MOMENT_SYNC_TEST_"
_EVENT_TYPE = re.compile(r"^[A-Z0-9_]{1,100}$")
_LOOPBACK: Final = ("127.0.0.1", "localhost", "::1")
class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and what is wrong."""


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
