"""Alert mails through a real SMTP server (aiosmtpd) on 127.0.0.1: throttling and content."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from daemon.ops import alerting, alerts
from daemon.settings import AlertSettings
from tests.clocks import FakeClock

pytestmark = pytest.mark.anyio


class Mailbox:
    """aiosmtpd handler: keeps every message; ``refuse`` answers DATA with a temporary failure."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.arrived = anyio.Event()
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "451 4.3.0 try again later"
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.arrived.set()
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


class SMTPServer:
    def __init__(self, mailbox: Mailbox, port: int) -> None:
        self.mailbox = mailbox
        self.port = port


@pytest.fixture
async def smtp() -> AsyncIterator[SMTPServer]:
    from aiosmtpd.smtp import SMTP

    mailbox = Mailbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(mailbox, hostname="mail.test", loop=loop), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    try:
        yield SMTPServer(mailbox, port)
    finally:
        server.close()
        await server.wait_closed()


def fake_clock() -> FakeClock:
    return FakeClock(1_795_600_000.0)  # 2026-11-25 09:46:40 UTC


def make_alerter(smtp: SMTPServer, clock: FakeClock, *, to: str = "finance@example.com",
                 **kwargs: Any) -> alerting.Alerter:
    settings = AlertSettings(email_to=to, smtp_host="127.0.0.1", smtp_port=smtp.port,
                             smtp_from="moment-sync@acme.test")
    return alerting.Alerter(settings, label="acme", clock=clock, smtp_timeout=5.0, **kwargs)


def body(message: EmailMessage) -> str:
    part = message.get_body()
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


async def test_a_parked_project_mail_names_it_and_says_what_to_do(smtp: SMTPServer) -> None:
    clock = fake_clock()
    alerter = make_alerter(smtp, clock)
    alerter.alert(alerts.item_parked(
        kind="project", key="7", at=clock.now(),
        reason="the Projects module is not active on the e-conomic agreement.",
        advice="Activate the Projects module in e-conomic (Settings → Subscription), then "
               "run `moment-sync parked --retry project 7`.",
    ))
    assert await alerter.flush() == 1
    [message] = smtp.mailbox.messages
    assert message["Subject"] == "[moment-sync acme] project 7: stopped syncing"
    assert message["From"] == "moment-sync@acme.test"
    assert smtp.mailbox.envelopes == [("moment-sync@acme.test", ["finance@example.com"])]
    text = body(message)
    assert "What:        project 7" in text
    assert "the Projects module is not active" in text
    assert "Activate the Projects module in e-conomic (Settings → Subscription)" in text
    assert "2026-11-25 09:46 UTC" in text
    assert alerter.held() == 0


async def test_one_mail_per_kind_per_window_and_the_rest_in_a_digest(smtp: SMTPServer) -> None:
    clock = fake_clock()
    alerter = make_alerter(smtp, clock)
    for key in ("10001", "10002", "10003"):
        alerter.alert(alerts.item_parked(kind="customer", key=key, at=clock.now(),
                                         reason=f"VAT code XX of customer {key} is not mapped."))
        await alerter.flush()
    alerter.alert(alerts.check_failed(name="journal", detail="Journal 1 does not exist.",
                                      at=clock.now()))
    assert await alerter.flush() == 1  # another kind has its own window
    assert [m["Subject"] for m in smtp.mailbox.messages] == [
        "[moment-sync acme] customer 10001: stopped syncing",
        "[moment-sync acme] preflight check journal: a preflight check failed",
    ]
    assert "Create the journal in e-conomic" in body(smtp.mailbox.messages[1])
    clock.advance(alerting.WINDOW - 1)
    assert await alerter.flush() == 0
    assert alerter.next_due() == clock.now() + 1
    clock.advance(1)
    assert await alerter.flush() == 1
    digest = smtp.mailbox.messages[2]
    assert digest["Subject"] == "[moment-sync acme] 2 items stopped syncing"
    text = body(digest)
    assert "customer 10002" in text and "customer 10003" in text and "10001" not in text
    assert alerter.held() == 0
    assert await alerter.flush() == 0


async def test_drift_repairs_are_held_for_a_digest(smtp: SMTPServer) -> None:
    clock = fake_clock()
    alerter = make_alerter(smtp, clock)
    alerter.alert(alerts.drift_repaired(kind="customer", key="10001", fields=["name", "email"],
                                        at=clock.now()))
    assert await alerter.flush() == 0
    clock.advance(600)
    alerter.alert(alerts.drift_repaired(kind="project", key="3", fields=[], at=clock.now()))
    clock.advance(300)
    assert await alerter.flush() == 1
    [message] = smtp.mailbox.messages
    assert message["Subject"] == "[moment-sync acme] 2 records changed in e-conomic were set back"
    text = body(message)
    assert "name, email had been changed in e-conomic and was set back" in text
    assert "project 3" in text


async def test_a_failed_send_is_logged_kept_and_retried(smtp: SMTPServer) -> None:
    clock = fake_clock()
    alerter = make_alerter(smtp, clock, retry_delay=60.0)
    smtp.mailbox.refuse = True
    alerter.alert(alerts.tokens_rejected(detail="HTTP 401 from e-conomic", at=clock.now()))
    with capture_logs() as logs:
        assert await alerter.flush() == 0
    failures = [e for e in logs if e["event"] == "alert mail not sent; will retry"]
    assert len(failures) == 1 and failures[0]["error_type"] == "SMTPDataError"
    assert alerter.held() == 1
    smtp.mailbox.refuse = False
    clock.advance(59)
    assert await alerter.flush() == 0
    clock.advance(1)
    assert await alerter.flush() == 1
    [message] = smtp.mailbox.messages
    assert message["Subject"] == "[moment-sync acme] the e-conomic agreement: " \
                                 "e-conomic refused the access tokens"
    assert "Reconnect the moment-sync app in e-conomic" in body(message)


async def test_an_unreachable_server_is_logged_not_raised() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nobody listens here once it is closed
    clock = fake_clock()
    settings = AlertSettings(email_to="a@example.com", smtp_host="127.0.0.1", smtp_port=port)
    alerter = alerting.Alerter(settings, label="acme", clock=clock, smtp_timeout=2.0)
    alerter.alert(alerts.pdf_not_attached(invoice="1042", reason="the agreement has no "
                                          "attachments (Plus package).", at=clock.now()))
    with capture_logs() as logs:
        assert await alerter.flush() == 0
    assert any(e["event"] == "alert mail not sent; will retry" for e in logs)
    assert alerter.held() == 1


async def test_no_mail_without_email_to(smtp: SMTPServer) -> None:
    clock = fake_clock()
    alerter = make_alerter(smtp, clock, to="")
    with capture_logs() as logs:
        alerter.alert(alerts.check_failed(name="currency", detail="EUR is unknown", at=clock.now()))
    assert logs[0]["event"] == "alert" and logs[0]["entity"] == "preflight check currency"
    assert await alerter.flush(force=True) == 0
    assert alerter.held() == 0 and smtp.mailbox.messages == []


async def test_a_booked_invoice_that_differs_in_economic_is_mailed(smtp: SMTPServer) -> None:
    clock = fake_clock()
    alerter = make_alerter(smtp, clock)
    note = ("Invoice 17's booked entry in e-conomic (voucher 5 (2026)) differs from the invoice "
            "in Moment: amount 30.00 DKK in e-conomic, 26.25 DKK in Moment. The daemon never "
            "edits booked entries: if e-conomic's entry is wrong, correct it there with a new "
            "entry (or a credit note).")
    alerter.alert(alerts.booked_mismatch(invoice="17", fields=["amount"], note=note,
                                         at=clock.now()))
    assert await alerter.flush() == 1
    [message] = smtp.mailbox.messages
    assert "a booked invoice differs in e-conomic" in message["Subject"]
    text = body(message)
    assert "amount 30.00 DKK in e-conomic, 26.25 DKK in Moment" in text
    assert "invoice 17" in text and "never edits booked entries" in text


async def test_an_invoice_booked_without_its_project_is_mailed(smtp: SMTPServer) -> None:
    """Every kind of alert has its subject (a warning's was missing: its mail failed)."""
    assert set(alerting._TITLE) == set(alerts.AlertKind) == set(alerting._DIGEST_TITLE)
    clock = fake_clock()
    alerter = make_alerter(smtp, clock)
    alerter.alert(alerts.entity_warning(
        kind="invoice", key="17", warning="booked without project 2, which is parked",
        at=clock.now()))
    assert await alerter.flush() == 1
    [message] = smtp.mailbox.messages
    assert "synced with a warning" in message["Subject"]
    assert "booked without project 2" in body(message)


async def test_several_recipients_and_the_warning_wording(smtp: SMTPServer) -> None:
    clock = fake_clock()
    alerter = make_alerter(smtp, clock, to="a@example.com, b@example.com")
    alerter.alert(alerts.pdf_not_attached(invoice="1042", reason="the file is over 9 MiB.",
                                          at=clock.now()))
    assert await alerter.flush() == 1
    assert smtp.mailbox.envelopes[0][1] == ["a@example.com", "b@example.com"]
    text = body(smtp.mailbox.messages[0])
    assert "The invoice is entered in e-conomic, but its PDF could not be attached" in text
    assert "Attach the PDF to the voucher by hand" in text


async def test_too_many_held_alerts_are_counted_not_lost_silently(smtp: SMTPServer) -> None:
    clock = fake_clock()
    alerter = make_alerter(smtp, clock, max_held=2)
    alerter.alert(alerts.item_parked(kind="invoice", key="1", reason="x.", at=clock.now()))
    await alerter.flush()
    for key in range(2, 7):
        alerter.alert(alerts.item_parked(kind="invoice", key=str(key), reason="x.", at=clock.now()))
    assert alerter.held() == 5
    assert await alerter.flush(force=True) == 1  # shutdown: held digests go out now
    digest = smtp.mailbox.messages[1]
    assert digest["Subject"] == "[moment-sync acme] 5 items stopped syncing"
    assert "and 3 more not listed here" in body(digest)


async def test_run_sends_when_an_alert_arrives(smtp: SMTPServer) -> None:
    clock = fake_clock()
    alerter = make_alerter(smtp, clock, flush_interval=30.0)
    with capture_logs():
        async with anyio.create_task_group() as group:
            group.start_soon(alerter.run)
            await clock.settled()  # idle: waiting for an alert or the flush interval
            alerter.alert(alerts.check_failed(name="project_module", at=0.0,
                                              detail="The Projects module is off."))
            with anyio.fail_after(5):
                await smtp.mailbox.arrived.wait()
            group.cancel_scope.cancel()
    assert "Activate the Projects module" in body(smtp.mailbox.messages[0])
    assert clock.elapsed == 0.0  # sent on arrival, not at the next flush interval


async def test_a_digest_counts_repeats_instead_of_listing_them(smtp: SMTPServer) -> None:
    clock = fake_clock()
    alerter = make_alerter(smtp, clock)
    for _ in range(4):
        alerter.alert(alerts.tokens_rejected(detail="HTTP 401", at=clock.now()))
        await alerter.flush()
    clock.advance(alerting.WINDOW)
    assert await alerter.flush() == 1
    digest = smtp.mailbox.messages[1]
    assert digest["Subject"] == \
        "[moment-sync acme] 3 times e-conomic refused the access tokens"
    text = body(digest)
    assert text.count("What:        the e-conomic agreement") == 1
    assert "Seen:        3 times in this period" in text


def test_a_parked_payment_says_it_is_not_copied_to_moment() -> None:
    reason = ("payment of invoice 12 (Moment id 7): Moment has no invoice with that id any "
              "more; if the invoice was deleted in Moment there is nothing to mark paid, "
              "otherwise resync the invoice and retry")
    alert = alerts.item_parked(kind="payment", key="12", reason=reason, at=0.0)
    assert alert.entity == "payment 12"
    assert alert.problem.startswith("It is not being copied to Moment: payment of invoice 12")
    assert "moment-sync parked --retry payment 12" in alert.action
    invoice = alerts.item_parked(kind="invoice", key="12", reason="x.", at=0.0)
    assert invoice.problem.startswith("It is not being copied to e-conomic")
