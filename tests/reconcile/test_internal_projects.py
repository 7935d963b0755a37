"""Projects without a customer (DESIGN.md, "Projects"): they go into ``internal_project_group``;
with 0 they are parked with a reason naming the setting; ``check`` verifies the group takes
projects without a customer; the sandbox, like e-conomic, refuses such a project in an external
group."""

from __future__ import annotations

import datetime as dt

import anyio
import msgspec
import pytest

from daemon import settings as config
from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.economic import errors, payloads
from daemon.economic.client import EconomicClient
from daemon.ops import preflight
from daemon.sandbox.economic import EconomicSandbox
from daemon.store.eventlog import EventLog
from tests.reconcile.conftest import customer, project, reconciler, record, until

pytestmark = pytest.mark.anyio
INTERNAL = mp.Options(internal_project_group=2)


def internal(n: int, **kw: object) -> ev.ProjectUpserted:
    """A Moment project without a customer."""
    return msgspec.structs.replace(project(n, 1), customer_number="", **kw)


def internal_group(sandbox: EconomicSandbox, number: int = 2, kind: int = 1) -> None:
    sandbox.agreement.project_groups[number] = {"number": number, "name": "Interne projekter",
                                                "type": kind,
                                                "objectVersion": sandbox.agreement.version()}


async def test_the_sandbox_refuses_a_project_without_customer_in_an_external_group(
        sandbox: EconomicSandbox, client: EconomicClient) -> None:
    with pytest.raises(errors.ValidationError) as refused:
        await client.create_project(payloads.ProjectWrite(number=5, name="Intern",
                                                          projectGroupNumber=1),
                                    idempotency_key="t-ext")
    assert refused.value.code == "ProjectCannotBeCreatedUpdatedCustomerNumberRequired"
    internal_group(sandbox)
    await client.create_project(payloads.ProjectWrite(number=5, name="Intern",
                                                      projectGroupNumber=2),
                                idempotency_key="t-int")
    assert sandbox.agreement.projects[5]["projectGroupNumber"] == 2


async def test_with_0_a_project_without_customer_is_parked_naming_the_setting(
        client: EconomicClient, log: EventLog) -> None:
    await record(log, [internal(7)])
    rec = reconciler(log, client)
    rec.queue.add("project", "7")
    await rec.step()
    state = log.tables.state("project", "7")
    assert state.parked and "internal_project_group" in state.reason
    assert "project 7" in state.reason


async def test_a_project_without_customer_goes_into_the_internal_group(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    internal_group(sandbox)
    await record(log, [customer(1), internal(7), project(8, 1)])
    rec = reconciler(log, client, options=INTERNAL)
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
        await until(rec, lambda: {7, 8} <= set(sandbox.agreement.projects) and rec.idle())
        # Moment takes the customer off project 8: it moves to the internal group
        await record(log, [internal(8, version=2)])
        await until(rec, lambda: sandbox.agreement.projects[8].get("customerNumber") is None
                    and rec.idle())
        tg.cancel_scope.cancel()
    p7, p8 = sandbox.agreement.projects[7], sandbox.agreement.projects[8]
    assert (p7["projectGroupNumber"], p7.get("customerNumber")) == (2, None)
    assert p8["projectGroupNumber"] == 2
    assert not log.tables.state("project", "8").parked


def settings(internal: int) -> config.Settings:
    return config.parse(f'[moment]\ncompany = "acme"\n[economic]\n'
                        f"internal_project_group = {internal}\n", environ={})


async def project_group_check(client: EconomicClient, internal: int) -> preflight.Check:
    checks = await preflight.run_checks(client, settings(internal),
                                        today=dt.date(2026, 11, 20))
    return next(c for c in checks if c.name == "project_group")


async def test_check_verifies_the_internal_group_takes_projects_without_customer(
        sandbox: EconomicSandbox, client: EconomicClient) -> None:
    off = await project_group_check(client, 0)
    assert off.ok and "internal_project_group is 0" in off.detail
    missing = await project_group_check(client, 2)
    assert not missing.ok and "internal_project_group 2 does not exist" in missing.detail
    internal_group(sandbox, 2, kind=3)  # external, non-invoiceable: needs a customer
    external = await project_group_check(client, 2)
    assert not external.ok and "is not an internal group" in external.detail
    internal_group(sandbox, 4, kind=1)
    good = await project_group_check(client, 4)
    assert good.ok and "internal group 4" in good.detail
