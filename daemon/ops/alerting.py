"""Mailing alerts to ``[alerts] email_to``, throttled per kind, over SMTP (aiosmtplib).

Guarantees:

- at most one mail per :class:`~daemon.ops.alerts.AlertKind` per ``window`` (15 minutes): the
  first alert of a quiet kind goes out at the next flush, later ones are folded into one digest
  sent when the window has passed; drift repairs are digest-only (held for a window, then sent
  together);
- :meth:`Alerter.alert` never blocks and never raises: callers on the reconcile path hand over
  an alert and go on; every alert is also logged (structlog), mailed or not;
- a mail that cannot be sent is logged, kept, and tried again at the first flush
  ``retry_delay`` seconds later: an alert is dropped only past ``max_held`` per kind, and then
  the digest says how many were left out;
- with ``email_to`` empty nothing is mailed (and nothing is held);
- time comes from the injected ``clock`` (its wall time, Unix seconds, and its waits), so
  throttling is tested on virtual time, without sleeping.

The SMTP conversation carries no credentials (the config has none) and no secret enters a mail:
alerts are built only by :mod:`daemon.ops.alerts`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Final

import aiosmtplib
import anyio
import structlog

from daemon import settings as settings_module
from daemon import waiting
from daemon.core import clocks
from daemon.ops.alerts import Alert, AlertKind

WINDOW: Final = 15 * 60.0
_DIGEST_ONLY: Final = frozenset({AlertKind.DRIFT_REPAIRED})
_LOOPBACK: Final = frozenset({"localhost", "127.0.0.1", "::1"})

_TITLE: Final[dict[AlertKind, str]] = {
    AlertKind.PARKED: "stopped syncing",
    AlertKind.TOKENS_REJECTED: "e-conomic refused the access tokens",
    AlertKind.CHECK_FAILED: "a preflight check failed",
    AlertKind.PDF_NOT_ATTACHED: "invoice PDF not attached",
    AlertKind.DRIFT_REPAIRED: "changes in e-conomic were set back",
    AlertKind.WARNING: "synced with a warning",
    AlertKind.BOOKED_MISMATCH: "a booked invoice differs in e-conomic",
}
_DIGEST_TITLE: Final[dict[AlertKind, str]] = {
    AlertKind.PARKED: "items stopped syncing",
    AlertKind.TOKENS_REJECTED: "times e-conomic refused the access tokens",
    AlertKind.CHECK_FAILED: "preflight checks failed",
    AlertKind.PDF_NOT_ATTACHED: "invoice PDFs not attached",
    AlertKind.DRIFT_REPAIRED: "records changed in e-conomic were set back",
    AlertKind.WARNING: "records synced with a warning",
    AlertKind.BOOKED_MISMATCH: "booked invoices differ in e-conomic",
}

_log = structlog.get_logger(__name__)


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _paragraph(alert: Alert) -> str:
    return (
        f"What:        {alert.entity}\n"
        f"Problem:     {alert.problem}\n"
        f"What to do:  {alert.action}\n"
        f"Noticed at:  {_when(alert.at)}\n"
    )


def _digest_paragraphs(held: list[Alert]) -> list[str]:
    """One paragraph per distinct alert, in order of first sight; repeats are counted, so a
    token failure seen 200 times is one paragraph, not 200."""
    seen: dict[tuple[str, str, str], tuple[Alert, int]] = {}
    for alert in held:
        key = (alert.entity, alert.problem, alert.action)
        first, count = seen.get(key, (alert, 0))
        seen[key] = (first, count + 1)
    paragraphs = []
    for alert, count in seen.values():
        text = _paragraph(alert)
        if count > 1:
            text += f"Seen:        {count} times in this period\n"
        paragraphs.append(text)
    return paragraphs


class _Queue:
    __slots__ = ("held", "held_since", "last_sent", "left_out", "retry_at")

    def __init__(self) -> None:
        self.held: list[Alert] = []
        self.left_out = 0
        self.held_since: float | None = None
        self.last_sent: float | None = None
        self.retry_at = 0.0

    def due_at(self, kind: AlertKind, window: float) -> float | None:
        if not self.held:
            return None
        due = self.retry_at
        if self.last_sent is not None:
            due = max(due, self.last_sent + window)
        if kind in _DIGEST_ONLY and self.held_since is not None:
            due = max(due, self.held_since + window)
        return due


class Alerter:
    """Throttles and mails alerts; :meth:`run` in the daemon's task group does the sending."""

    def __init__(
        self,
        alert_settings: settings_module.AlertSettings,
        *,
        label: str,
        clock: clocks.Clock,
        window: float = WINDOW,
        retry_delay: float = 60.0,
        flush_interval: float = 30.0,
        smtp_timeout: float = 30.0,
        max_held: int = 200,
    ) -> None:
        self._settings = alert_settings
        self._label = label
        self._clock = clock
        self._window = window
        self._retry_delay = retry_delay
        self._flush_interval = flush_interval
        self._smtp_timeout = smtp_timeout
        self._max_held = max_held
        self._queues = {kind: _Queue() for kind in AlertKind}
        self._wake = anyio.Event()

    @property
    def recipients(self) -> list[str]:
        return [a.strip() for a in self._settings.email_to.split(",") if a.strip()]

    def reconfigure(self, alert_settings: settings_module.AlertSettings) -> None:
        """Use new settings (SIGHUP); held alerts are kept and go to the new recipients."""
        self._settings = alert_settings
        self._wake.set()

    def held(self) -> int:
        """How many alerts wait to be mailed."""
        return sum(len(q.held) + q.left_out for q in self._queues.values())

    def alert(self, alert: Alert) -> None:
        """Log ``alert`` and hold it for mailing; never blocks, never raises."""
        _log.warning("alert", kind=str(alert.kind), entity=alert.entity, problem=alert.problem)
        if not self.recipients:
            return
        queue = self._queues[alert.kind]
        if len(queue.held) >= self._max_held:
            queue.left_out += 1
            return
        if not queue.held:
            queue.held_since = self._clock.now()
        queue.held.append(alert)
        self._wake.set()

    def next_due(self) -> float | None:
        """Clock time when the next mail is due, or ``None`` when nothing is held."""
        dues = [d for k, q in self._queues.items() if (d := q.due_at(k, self._window)) is not None]
        return min(dues) if dues else None

    async def flush(self, *, force: bool = False) -> int:
        """Mail every kind that is due (``force``: every kind with something held, as on
        shutdown); returns how many mails went out. Failures are logged and kept for a retry."""
        sent = 0
        for kind, queue in self._queues.items():
            due = queue.due_at(kind, self._window)
            if due is None or (not force and self._clock.now() < due):
                continue
            held, left_out = list(queue.held), queue.left_out
            message = self.compose(kind, held, left_out)
            try:
                await self._send(message)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                queue.retry_at = self._clock.now() + self._retry_delay
                _log.error("alert mail not sent; will retry", kind=str(kind), alerts=len(held),
                           smtp_host=self._settings.smtp_host, error=str(exc)[:200],
                           error_type=type(exc).__name__)
                continue
            sent += 1
            now = self._clock.now()
            queue.last_sent = now
            queue.retry_at = 0.0
            del queue.held[: len(held)]
            queue.left_out -= left_out
            queue.held_since = now if queue.held else None
            _log.info("alert mail sent", kind=str(kind), alerts=len(held) + left_out)
        return sent

    async def run(self) -> None:
        """Flush whenever an alert arrives or something falls due; runs until cancelled."""
        while True:
            self._wake = anyio.Event()
            await self.flush()
            due = self.next_due()
            wait = self._flush_interval
            if due is not None:
                wait = min(wait, max(0.0, due - self._clock.now()))
            await waiting.wait_for(self._wake, seconds=wait, clock=self._clock)

    def compose(self, kind: AlertKind, held: list[Alert], left_out: int = 0) -> EmailMessage:
        """The mail for ``held`` alerts of ``kind``: a single alert's own mail, or a digest."""
        message = EmailMessage()
        message["From"] = self._settings.smtp_from
        message["To"] = ", ".join(self.recipients)
        message["Date"] = formatdate(self._clock.now(), usegmt=True)
        message["Message-ID"] = make_msgid(domain="moment-sync.local")
        prefix = f"[moment-sync {self._label}]"
        if len(held) == 1 and not left_out and kind not in _DIGEST_ONLY:
            alert = held[0]
            message["Subject"] = f"{prefix} {alert.entity}: {_TITLE[kind]}"
            body = _paragraph(alert)
        else:
            count = len(held) + left_out
            message["Subject"] = f"{prefix} {count} {_DIGEST_TITLE[kind]}"
            body = "\n".join(_digest_paragraphs(held))
            if left_out:
                body += (f"\n… and {left_out} more not listed here; "
                         "run `moment-sync status` and see the log.\n")
        message.set_content(
            f"moment-sync ({self._label}) needs your attention.\n\n{body}\n"
            "Run `moment-sync status` on the server for the current picture.\n"
        )
        return message

    async def _send(self, message: EmailMessage) -> None:
        host = self._settings.smtp_host
        await aiosmtplib.send(
            message,
            hostname=host,
            port=self._settings.smtp_port,
            timeout=self._smtp_timeout,
            # STARTTLS on loopback protects nothing and fails on a local relay's
            # self-signed certificate; elsewhere it is used whenever the server offers it
            start_tls=False if host in _LOOPBACK else None,
        )
