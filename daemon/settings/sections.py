"""The sections of the settings tree, as the TOML file declares them: one frozen Struct per
``[section]`` (its keys, their types and defaults) and :class:`Settings`, the tree, with the
value types the file writes as text (:class:`Duration` such as ``"5m"``, :class:`Listen` such as
``"127.0.0.1:8080"``). Declarations only: :mod:`daemon.settings` loads a file into them,
applies the environment's overrides and checks what one field alone cannot say.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Final

import msgspec

from daemon.core import webhooks

_DURATION = re.compile(r"^([0-9]+)([smhd])$")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}




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
