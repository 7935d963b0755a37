"""A redirect from e-conomic is never followed: the tokens (and a POST body) stay home.

Two loopback servers: one stands where e-conomic should be and answers every request with a
redirect, the other is where the redirect points and records whatever reaches it. The client
must raise :class:`errors.Redirected` (terminal, naming where it pointed) and the second server
must see nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from daemon.core.secrets import Secret
from daemon.economic import errors, payloads
from daemon.economic.client import EconomicClient
from tests.clocks import FakeClock

pytestmark = pytest.mark.anyio
APP, GRANT = "app-secret-redirect-5d1", "grant-secret-redirect-8e2"


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


class Servers:
    def __init__(self, origin: str, elsewhere: str, reached: list[web.Request]) -> None:
        self.origin = origin
        self.elsewhere = elsewhere
        self.reached = reached
        self.status = 302


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    reached: list[web.Request] = []

    async def record(request: web.Request) -> web.StreamResponse:
        reached.append(request)
        return web.json_response({"collection": [], "pagination": {}})

    target = web.Application()
    target.router.add_route("*", "/{tail:.*}", record)
    target_runner, elsewhere = await _serve(target)
    state: list[Servers] = []

    async def redirect(request: web.Request) -> web.StreamResponse:
        where = f"{elsewhere}/stolen{request.path}?grant=x"
        return web.Response(status=state[0].status, headers={"Location": where})

    origin = web.Application()
    origin.router.add_route("*", "/{tail:.*}", redirect)
    origin_runner, origin_url = await _serve(origin)
    state.append(Servers(origin_url, elsewhere, reached))
    try:
        yield state[0]
    finally:
        await origin_runner.cleanup()
        await target_runner.cleanup()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_a_terminal_error_and_nothing_follows_it(
        servers: Servers, status: int) -> None:
    servers.status = status
    async with EconomicClient(rest_url=servers.origin, apis_url=servers.origin,
                              app_secret_token=Secret(APP), agreement_grant_token=Secret(GRANT),
                              clock=FakeClock()) as client:
        with pytest.raises(errors.Redirected) as got:
            await client.get_self()
        with pytest.raises(errors.Redirected) as posted:
            await client.create_project(payloads.ProjectWrite(
                number=7, name="Ombygning", projectGroupNumber=1),
                idempotency_key="k-redirect-1")
    for caught in (got.value, posted.value):
        assert isinstance(caught, errors.TerminalError) and not caught.retryable
        assert caught.status == status
        assert caught.location.startswith(f"{servers.elsewhere}/stolen/")
        assert "?" not in caught.location
        assert f"redirect to {servers.elsewhere}/stolen/" in str(caught)
        assert "grant=x" not in str(caught) and APP not in repr(caught)
    assert servers.reached == []
