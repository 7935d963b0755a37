"""Failures a real server cannot easily produce, with aioresponses: malformed answers, refused
connections, odd error bodies. No aiohttp exception may escape the client and no error may
carry a header or a token."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses as _aioresponses
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from daemon.core.secrets import Secret
from daemon.economic import errors
from daemon.economic.calling import parse_error_body
from daemon.economic.client import EconomicClient
from tests.clocks import T0, FakeClock

pytestmark = pytest.mark.anyio
REST = "https://rest.test"
APIS = "https://apis.test"
APP, GRANT = "app-secret-xyz", "grant-secret-xyz"


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[EconomicClient]:
    async with EconomicClient(rest_url=REST, apis_url=APIS, app_secret_token=Secret(APP),
                              agreement_grant_token=Secret(GRANT), clock=clock) as c:
        yield c


class _Response(aiohttp.ClientResponse):
    """aioresponses 0.7.9 predates aiohttp 3.14's ``stream_writer`` argument; supply it."""

    def __init__(self, method: str, url: URL, **kw: Any) -> None:
        kw.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kw)


class aioresponses(_aioresponses):
    def add(self, url: Any, method: str = "GET", *args: Any, **kw: Any) -> None:
        kw.setdefault("response_class", _Response)
        super().add(url, method, *args, **kw)


def leak_free(e: errors.EconomicError) -> None:
    text = repr(e) + str(e) + e.body + repr(vars(e))
    assert APP not in text and GRANT not in text and "X-App" not in text
    assert not isinstance(e, aiohttp.ClientError)


async def test_malformed_success_is_a_protocol_error(client: EconomicClient) -> None:
    with aioresponses() as m:
        m.get(f"{REST}/self", status=200, body="<html>maintenance</html>")
        with pytest.raises(errors.ProtocolError) as ei:
            await client.get_self()
    assert not ei.value.retryable
    leak_free(ei.value)


async def test_connection_refused_and_timeouts_are_transport_errors(
        client: EconomicClient) -> None:
    with aioresponses() as m:
        m.get(f"{REST}/self", exception=aiohttp.ClientConnectionError("refused"))
        with pytest.raises(errors.TransportError) as ei:
            await client.get_self()
        assert ei.value.retryable and ei.value.status == 0
        leak_free(ei.value)
        m.get(f"{REST}/self", exception=TimeoutError())
        with pytest.raises(errors.Timeout):
            await client.get_self()
        m.get(f"{REST}/self", exception=aiohttp.ClientPayloadError("truncated"))
        with pytest.raises(errors.TransportError) as ce:
            await client.get_self()
        assert isinstance(ce.value.__cause__, aiohttp.ClientPayloadError)  # chained
        info = aiohttp.RequestInfo(URL(f"{REST}/self"), "GET",
                                   CIMultiDictProxy(CIMultiDict({"X-AppSecretToken": APP})),
                                   URL(f"{REST}/self"))
        m.get(f"{REST}/self", exception=aiohttp.ClientResponseError(info, (), status=0))
        with pytest.raises(errors.TransportError) as re_:
            await client.get_self()
        assert re_.value.__cause__ is None and re_.value.__suppress_context__
        leak_free(re_.value)


async def test_gateway_errors_are_retryable_with_trimmed_bodies(client: EconomicClient) -> None:
    with aioresponses() as m:
        m.get(f"{REST}/customers/1", status=502, body="x" * 5000)
        with pytest.raises(errors.ServerError) as ei:
            await client.get_customer(1)
    assert ei.value.retryable and len(ei.value.body) < 2100
    assert ei.value.body.endswith("[trimmed]")


async def test_retry_after_is_honoured_and_the_key_is_kept(client: EconomicClient,
                                                           clock: FakeClock) -> None:
    url = f"{APIS}/projectsapi/v1.1.0/Projects"
    with aioresponses() as m:
        m.post(url, status=429, headers={"Retry-After": "2.5"},
               payload={"title": "Too many requests", "status": 429})
        m.post(url, status=201, payload={"number": 4})
        from daemon.economic.payloads import ProjectWrite
        n = await client.create_project(ProjectWrite(name="P", projectGroupNumber=1),
                                        idempotency_key="intent-1")
        sent = m.requests[("POST", URL(url))]
    assert n == 4 and clock.now() == T0 + 2.5
    assert [c.kwargs["headers"]["Idempotency-Key"] for c in sent] == ["intent-1", "intent-1"]
    assert all(c.kwargs["headers"]["X-AppSecretToken"] == APP for c in sent)


async def test_next_page_never_leaves_the_configured_host(client: EconomicClient) -> None:
    page0 = {"collection": [{"customerNumber": 1, "name": "a", "currency": "DKK",
                             "customerGroup": {"customerGroupNumber": 1},
                             "paymentTerms": {"paymentTermsNumber": 1},
                             "vatZone": {"vatZoneNumber": 1}}],
             "pagination": {"nextPage": "https://evil.test/customers?skippages=1&pagesize=1"}}
    with aioresponses() as m:
        m.get(re.compile(r"https://rest\.test/customers\?.*skippages=0.*"), payload=page0)
        m.get(re.compile(r"https://rest\.test/customers\?.*skippages=1.*"),
              payload={"collection": [], "pagination": {}})
        got = [c.customerNumber async for c in client.iter_customers()]
        hosts = {key[1].host for key in m.requests}
    assert got == [1] and hosts == {"rest.test"}


def test_error_bodies_of_both_families_are_parsed() -> None:
    legacy = (b'{"message":"Validation error.","errors":{"lines":[{"arrayIndex":2,'
              b'"unitNetPrice":{"errors":[{"errorCode":"E04740","message":"scale"}]}}],'
              b'"customerGroup":{"customerGroupNumber":{"errors":[{"errorCode":"E06000",'
              b'"message":"missing"}]}}}}')
    msg, code, fields = parse_error_body(legacy)
    assert msg == "Validation error." and code == "E04740"
    assert fields == {"lines[2].unitNetPrice": ["scale"],
                      "customerGroup.customerGroupNumber": ["missing"]}
    problem = (b'{"title":"Missing modules: Project","status":403,'
               b'"errorCode":"AccessDeniedAgreementMissingModules"}')
    assert parse_error_body(problem) == ("Missing modules: Project",
                                         "AccessDeniedAgreementMissingModules", {})
    assert parse_error_body(b"") == ("no body", None, {})


async def test_writes_need_a_key(client: EconomicClient) -> None:
    from daemon.economic.payloads import ProjectWrite
    with pytest.raises(ValueError, match="idempotency_key"):
        await client.put_project(ProjectWrite(name="x", projectGroupNumber=1),
                                 idempotency_key="")
    with pytest.raises(ValueError, match="500"):
        await client.create_draft_entries([], idempotency_key="k")


async def test_a_cursor_that_does_not_advance_stops_the_paging(client: EconomicClient) -> None:
    url = re.compile(r"https://apis\.test/projectsapi/v1\.1\.0/Projects.*")
    page = {"items": [{"number": 1, "name": "P", "projectGroupNumber": 1}], "cursor": "1"}
    with aioresponses() as m:
        m.get(url, payload=page, repeat=True)
        with pytest.raises(errors.ProtocolError, match="cursor"):
            [p async for p in client.iter_projects()]
        assert sum(len(v) for v in m.requests.values()) == 2
