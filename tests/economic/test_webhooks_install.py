"""The installer against the sandbox's webhooksapi over loopback: install, update (never a
duplicate), re-enable, someone else's webhook left alone, an event type e-conomic does not
offer, remove, and no token in any text the installer keeps."""

from __future__ import annotations

import aiohttp
import pytest

from daemon.core import webhooks as hooks
from daemon.core.secrets import Secret
from daemon.economic import installing
from daemon.economic import webhooks as api
from daemon.economic.client import EconomicClient
from daemon.sandbox.economic import EconomicSandbox

pytestmark = pytest.mark.anyio

TOKEN = "hook-token-5d1f0e"
BASE = "http://127.0.0.1:9"  # never called: the sandbox only stores it


def plan(*, url: str = BASE, token: str = TOKEN,
         events: dict[str, str] | None = None) -> installing.Plan:
    return installing.Plan(url=url, token=Secret(token),
                           events=events or dict(hooks.DEFAULT_EVENTS), kinds=hooks.KINDS)


def writes(sandbox: EconomicSandbox) -> list[str]:
    return [f"{s.method} {s.path}" for s in sandbox.served if s.method != "GET"]


async def admin(sandbox: EconomicSandbox, method: str, path: str, body: object = None) -> int:
    async with aiohttp.ClientSession() as http, http.request(
            method, f"{sandbox.admin_url}{path}", json=body) as answer:
        await answer.read()
        return answer.status


async def test_install_creates_one_per_kind_then_has_nothing_to_do(
        sandbox: EconomicSandbox, client: EconomicClient) -> None:
    assert [e.state for e in (await installing.survey(client, plan())).entries] == [
        "missing"] * 3
    report = await installing.install(client, plan())
    assert report.ok and report.installed == list(hooks.DEFAULT_EVENTS.values())
    installed = sandbox.agreement.webhooks["CUSTOMER_UPDATED"]
    assert installed["url"] == f"{BASE}/webhooks/economic/{TOKEN}"
    assert installed["contentType"] == "application/json"
    assert installed["postData"] == hooks.post_data("customer", "CUSTOMER_UPDATED")
    assert installed["customHeaders"] == [{"key": "X-Moment-Sync-Token", "value": TOKEN}]
    assert sorted(writes(sandbox)) == ["POST /apis/webhooksapi/v1.0.0/webhooks"] * 3
    sandbox.served.clear()
    again = await installing.install(client, plan())
    assert again.ok and again.done == () and writes(sandbox) == []


async def test_one_of_the_daemons_with_other_settings_is_updated_not_duplicated(
        sandbox: EconomicSandbox, client: EconomicClient) -> None:
    await installing.install(client, plan(token="an-old-token"))
    survey = await installing.survey(client, plan())
    assert {e.state for e in survey.entries} == {"differs"}
    sandbox.served.clear()
    report = await installing.install(client, plan())
    assert report.ok
    assert writes(sandbox) == ["PUT /apis/webhooksapi/v1.0.0/webhooks"] * 3
    assert len(sandbox.agreement.webhooks) == 3
    assert sandbox.agreement.webhooks["PROJECT_UPDATED"]["url"].endswith(TOKEN)
    assert all("updated" in line for line in report.done)


async def test_one_e_conomic_disabled_is_enabled_again_and_reported(
        sandbox: EconomicSandbox, client: EconomicClient) -> None:
    await installing.install(client, plan())
    assert await admin(sandbox, "POST", "/webhooks/CUSTOMER_UPDATED/disable") == 200
    survey = await installing.survey(client, plan())
    assert [e.state for e in survey.entries] == ["disabled", "installed", "installed"]
    assert not survey.ok and "CUSTOMER_UPDATED disabled" in survey.summary()
    report = await installing.install(client, plan())
    assert report.ok
    assert report.done == ("CUSTOMER_UPDATED was disabled by e-conomic and is enabled again",)
    assert not sandbox.agreement.webhooks["CUSTOMER_UPDATED"].get("isDisabled")


async def test_someone_elses_webhook_of_the_type_is_left_alone(
        sandbox: EconomicSandbox, client: EconomicClient) -> None:
    theirs = {"eventType": "PROJECT_UPDATED", "name": "their app", "contentType": "text/plain",
              "url": "https://other.example.com/hook"}
    assert await admin(sandbox, "POST", "/webhooks", theirs) == 201
    report = await installing.install(client, plan())
    assert [e.state for e in report.entries] == ["installed", "foreign", "installed"]
    assert not report.ok and "PROJECT_UPDATED foreign" in report.summary()
    assert sandbox.agreement.webhooks["PROJECT_UPDATED"]["url"] == theirs["url"]
    removed = await installing.remove(client, plan())
    assert removed.done == ("CUSTOMER_UPDATED removed", "DAYBOOK_BOOKED removed")
    assert list(sandbox.agreement.webhooks) == ["PROJECT_UPDATED"]  # theirs stays


async def test_an_event_type_e_conomic_does_not_offer_is_named(
        sandbox: EconomicSandbox, client: EconomicClient) -> None:
    events = {**hooks.DEFAULT_EVENTS, "project": "PROJECT_CHANGED"}
    report = await installing.install(client, plan(events=events))
    state = {e.event_type: (e.state, e.detail) for e in report.entries}
    assert state["PROJECT_CHANGED"] == (
        "unknown", "e-conomic offers no event type PROJECT_CHANGED; fix "
                   "[economic] webhook_events.project")
    assert "PROJECT_CHANGED" not in sandbox.agreement.webhooks
    assert not report.ok and len(report.installed) == 2


async def test_one_created_meanwhile_is_read_and_updated(
        sandbox: EconomicSandbox, client: EconomicClient, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    """Between the listing and the create, another run of the daemon installs the type with
    its old token: e-conomic answers WebhookAlreadyExistsForEventType, and the installer
    updates that one instead of failing (or making a second)."""
    create = api.WebhooksApi.create
    raced: list[str] = []

    async def racing(self: api.WebhooksApi, hook: api.WebhookWrite) -> None:
        if not raced:
            raced.append(hook.eventType)
            await create(self, plan(token="the-other-runs-token").want("customer"))
        await create(self, hook)

    monkeypatch.setattr(api.WebhooksApi, "create", racing)
    report = await installing.install(client, plan())
    assert report.ok and raced == ["CUSTOMER_UPDATED"]
    assert report.done[0] == "CUSTOMER_UPDATED updated to the daemon's settings"
    assert sandbox.agreement.webhooks["CUSTOMER_UPDATED"]["url"].endswith(TOKEN)


async def test_no_text_the_installer_keeps_holds_the_token(
        sandbox: EconomicSandbox, client: EconomicClient) -> None:
    """e-conomic quotes a URL it refuses; the installer scrubs the token from it."""
    report = await installing.install(client, plan(url="https://exa mple.com"))
    texts = [report.error, report.summary(), *report.lines(), *report.done,
             *(e.detail for e in report.entries)]
    assert any("refused" in t for t in texts)
    assert all(TOKEN not in t for t in texts)
    assert repr(api.Webhook(eventType="X", url=f"https://h/{TOKEN}")) == "<Webhook X>"
