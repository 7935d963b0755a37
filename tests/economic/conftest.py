"""Fixtures for the e-conomic client and sandbox tests: the fake clock (autojumping: one caller
waits at a time) shared by the client and the sandbox's bucket, a sandbox on loopback, a client
wired to it, and validators for the official schemas in ``../shared/economic/specs`` (skipped
with a reason when absent)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from functools import cache
from typing import Any

import aiohttp
import pytest

from daemon.core.secrets import Secret
from daemon.economic.client import EconomicClient
from daemon.sandbox.economic import EconomicSandbox, RateLimit
from tests.clocks import FakeClock
from tests.conftest import shared_or_skip


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(autojump=True)


@pytest.fixture
async def sandbox(clock: FakeClock, request: pytest.FixtureRequest
                  ) -> AsyncIterator[EconomicSandbox]:
    """A sandbox on loopback; when the test is done, every request body the client sent and
    every answer are validated against the official schemas (a module that sends malformed
    bodies on purpose sets ``RAW_REQUESTS = True`` to check only the answers)."""
    async with EconomicSandbox.running(clock=clock.now, keep_responses=True) as sb:
        yield sb
    validate_traffic(sb, requests=not getattr(request.module, "RAW_REQUESTS", False))


@pytest.fixture
async def http(sandbox: EconomicSandbox) -> AsyncIterator[aiohttp.ClientSession]:
    """A raw HTTP session to the sandbox, carrying its tokens."""
    headers = {"X-AppSecretToken": sandbox.app_secret_token,
               "X-AgreementGrantToken": sandbox.agreement_grant_token}
    async with aiohttp.ClientSession(f"http://{sandbox.host}:{sandbox.port}",
                                     headers=headers) as s:
        yield s


async def call(http: aiohttp.ClientSession, method: str, path: str, body: Any = None,
               **kw: Any) -> tuple[int, Any, dict[str, str]]:
    """``(status, decoded JSON body or None, headers)`` of one raw request."""
    async with http.request(method, path, json=body, **kw) as r:
        raw = await r.read()
        return r.status, json.loads(raw) if raw else None, dict(r.headers)


def make_client(sb: EconomicSandbox, clock: FakeClock, **kw: Any) -> EconomicClient:
    return EconomicClient(rest_url=sb.rest_url, apis_url=sb.apis_url,
                          app_secret_token=Secret(sb.app_secret_token),
                          agreement_grant_token=Secret(sb.agreement_grant_token), clock=clock,
                          **kw)


@pytest.fixture
async def client(sandbox: EconomicSandbox, clock: FakeClock) -> AsyncIterator[EconomicClient]:
    async with make_client(sandbox, clock) as c:
        yield c


def limited(tokens: int, window_s: int, *, cost_get: int = 1, cost_write: int = 1,
            retry_after: bool = True) -> RateLimit:
    return RateLimit(enabled=True, tokens=tokens, window_s=window_s, cost_get=cost_get,
                     cost_write=cost_write, retry_after=retry_after)


# ---------------------------------------------------------------- official schemas ----------
@cache
def _legacy(name: str) -> dict[str, Any]:
    path = shared_or_skip("economic", "specs", "legacy-rest-json-schema", f"{name}.schema.json")
    # Two of e-conomic's files carry trailing commas; parse them leniently as the README says.
    doc: dict[str, Any] = json.loads(re.sub(r",(\s*[}\]])", r"\1", path.read_text()))
    return doc


@cache
def _openapi(service: str) -> dict[str, Any]:
    path = shared_or_skip("economic", "specs", "openapi", f"openapi-{service}.json")
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def validate_legacy(name: str, instance: Any) -> None:
    """Validate against e-conomic's legacy draft-03 schema ``name`` (raises on mismatch)."""
    import jsonschema

    jsonschema.Draft3Validator(_legacy(name),
                               format_checker=jsonschema.Draft3Validator.FORMAT_CHECKER,
                               ).validate(instance)


def validate_openapi(service: str, component: str, instance: Any, *, write: bool) -> None:
    """Validate against an OpenAPI 3.0 component with its ``$ref``s resolved; ``write`` uses
    request semantics (read-only properties refused), else response semantics."""
    from openapi_schema_validator import (
        OAS30ReadValidator,
        OAS30WriteValidator,
        oas30_format_checker,
    )

    spec = _openapi(service)
    schema = {"$ref": f"#/components/schemas/{component}", "components": spec["components"]}
    cls = OAS30WriteValidator if write else OAS30ReadValidator
    cls(schema, format_checker=oas30_format_checker).validate(instance)


def validate_answer_of(service: str, path: str, method: str, instance: Any) -> None:
    """Validate against the 200 answer schema the spec gives for ``method path`` inline."""
    from openapi_schema_validator import OAS30ReadValidator, oas30_format_checker

    spec = _openapi(service)
    schema = spec["paths"][path][method]["responses"]["200"]["content"]["application/json"][
        "schema"]
    OAS30ReadValidator({**schema, "components": spec["components"]},
                       format_checker=oas30_format_checker).validate(instance)


# (method, path regex) -> how to validate the request body and the 2xx answer.
Check = Callable[[Any], None]


def _leg(name: str) -> Check:
    return lambda doc: validate_legacy(name, doc)


def _oa(service: str, comp: str, write: bool) -> Check:
    return lambda doc: validate_openapi(service, comp, doc, write=write)


P, J, B, D = ("/apis/projectsapi/v1.1.0", "/apis/journalsapi/v15.0.0",
              "/apis/bookedEntriesapi/v4.0.0", "/apis/documentsapi/v4.0.1")
W = "/apis/webhooksapi/v1.0.0"
REQUESTS: list[tuple[str, str, Check]] = [
    ("PUT", r"/rest/customers/\d+", _leg("customers.customerNo.put")),
    ("POST", r"/rest/customers", _leg("customers.post")),
    ("POST", f"{P}/Projects", _oa("Projects", "Project", True)),
    ("PUT", f"{P}/Projects", _oa("Projects", "Project", True)),
    ("POST", f"{J}/draft-entries", _oa("Journals", "DraftEntry", True)),
    ("POST", f"{J}/draft-entries/bulk", _oa("Journals", "DraftEntries", True)),
    ("POST", rf"{J}/journals/\d+/bookdraftentries", _oa("Journals", "BookEntriesParameters", True)),
    ("POST", f"{D}/AttachedDocuments", _oa("Documents", "AttachedDocumentCreate", True)),
    ("DELETE", f"{D}/AttachedDocuments/deletebulk", _oa("Documents", "AttachedDocuments", True)),
    ("POST", f"{W}/webhooks", _oa("webhooks-api", "Webhook", True)),
    ("PUT", f"{W}/webhooks", _oa("webhooks-api", "Webhook", True)),
]
ANSWERS: list[tuple[str, str, Check]] = [
    ("GET", r"/rest/self", _leg("self.get")),
    ("GET", r"/rest/customers", _leg("customers.get")),
    ("GET", r"/rest/customers/\d+", _leg("customers.customerNumber.get")),
    ("PUT", r"/rest/customers/\d+", _leg("customers.customerNumber.get")),
    ("POST", r"/rest/customers", _leg("customers.customerNumber.get")),
    ("GET", r"/rest/customer-groups", _leg("customer-groups.get")),
    ("GET", r"/rest/payment-terms", _leg("payment-terms.get")),
    ("GET", r"/rest/currencies", _leg("currencies.get")),
    ("GET", r"/rest/currencies/[A-Z]{3}", _leg("currencies.code.get")),
    ("GET", r"/rest/vat-zones", _leg("vat-zones.get")),
    ("GET", r"/rest/vat-accounts", _leg("vat-accounts.get")),
    ("GET", r"/rest/vat-accounts/[^/]+", _leg("vat-accounts.id.get")),
    ("GET", r"/rest/accounts", _leg("accounts.get")),
    ("GET", r"/rest/accounts/\d+", _leg("accounts.accountNumber.get")),
    ("GET", r"/rest/accounting-years", _leg("accounting-years.get")),
    ("GET", r"/rest/journals", _leg("journals.get")),
    ("GET", r"/rest/accounting-years/[^/]+/entries",
     _leg("accounting-years.accountingYear.entries.get")),
    ("GET", f"{P}/Projects", _oa("Projects", "ProjectCursorResults", False)),
    ("GET", rf"{P}/Projects/\d+", _oa("Projects", "Project", False)),
    ("GET", f"{P}/Projects/count", lambda doc: validate_answer_of(
        "Projects", "/Projects/count", "get", doc)),
    ("POST", f"{P}/Projects", _oa("Projects", "CreatedResult", False)),
    ("GET", f"{P}/ProjectGroups", _oa("Projects", "ProjectGroupCursorResults", False)),
    ("GET", f"{J}/draft-entries", _oa("Journals", "DraftEntryCursorResults", False)),
    ("POST", f"{J}/draft-entries", _oa("Journals", "DraftEntryCreatedResult", False)),
    ("POST", f"{J}/draft-entries/bulk", _oa("Journals", "DraftEntryCreatedResultArray", False)),
    ("GET", f"{B}/booked-entries", _oa("BookedEntries", "BookedEntryCursorResults", False)),
    ("POST", f"{D}/AttachedDocuments", _oa("Documents", "CreatedResult", False)),
    ("GET", f"{D}/AttachedDocuments", _oa("Documents", "AttachedDocumentCursorResults", False)),
    ("GET", f"{D}/AttachedDocuments/paged", lambda doc: validate_answer_of(
        "Documents", "/AttachedDocuments/paged", "get", doc)),
    ("GET", f"{D}/AttachedDocuments/count", lambda doc: validate_answer_of(
        "Documents", "/AttachedDocuments/count", "get", doc)),
    ("GET", rf"{D}/AttachedDocuments/\d+", _oa("Documents", "AttachedDocument", False)),
    ("GET", f"{W}/EventTypes", lambda doc: validate_answer_of(
        "webhooks-api", "/EventTypes", "get", doc)),
    ("GET", f"{W}/webhooks", _oa("webhooks-api", "WebhookCursorResults", False)),
    ("GET", f"{W}/webhooks/paged", lambda doc: validate_answer_of(
        "webhooks-api", "/webhooks/paged", "get", doc)),
    ("GET", f"{W}/webhooks/count", lambda doc: validate_answer_of(
        "webhooks-api", "/webhooks/count", "get", doc)),
    ("GET", rf"{W}/webhooks/[A-Z0-9_]+", _oa("webhooks-api", "Webhook", False)),
    ("POST", f"{W}/webhooks", _oa("webhooks-api", "WebhookCreatedResult", False)),
]
PROBLEM_SERVICE = {"projectsapi": "Projects", "journalsapi": "Journals",
                   "bookedEntriesapi": "BookedEntries", "documentsapi": "Documents",
                   "webhooksapi": "webhooks-api"}


def _match(table: list[tuple[str, str, Check]], method: str, path: str) -> Check | None:
    for m, rx, check in table:
        if m == method and re.fullmatch(rx, path):
            return check
    return None


def validate_traffic(sb: EconomicSandbox, *, requests: bool = True) -> int:
    """Validate every request body the client sent (unless ``requests`` is False: a test that
    sends malformed bodies on purpose) and every answer the sandbox gave that has an official
    schema; returns how many documents were checked. Unmapped 2xx JSON answers fail the test,
    so a new endpoint cannot slip by unchecked."""
    checked = 0
    for s in sb.served:
        req = _match(REQUESTS, s.method, s.path) if requests else None
        if req is not None and s.body and not s.body.startswith("<multipart"):
            doc = json.loads(s.body)
            if s.path.endswith("/AttachedDocuments"):  # form fields: files as strings, ints
                doc = {k[:1].lower() + k[1:]: (int(v) if k.lower() in ("vouchernumber",
                                                                      "onconflict") else v)
                       for k, v in doc.items()}
            req(doc)
            checked += 1
        if s.response is None or not s.response or s.from_cache:
            continue
        if s.content_type == "application/pdf":  # a document's file (its bytes are compared)
            continue
        body = json.loads(s.response)
        if 200 <= s.status < 300:
            ans = _match(ANSWERS, s.method, s.path)
            assert ans is not None, f"no schema mapped for {s.method} {s.path}"
            ans(body)
            checked += 1
        elif s.path.startswith("/apis/"):
            service = PROBLEM_SERVICE[s.path.split("/")[2]]
            validate_openapi(service, "ProblemDetails", body, write=False)
            assert s.content_type == "application/problem+json"
            checked += 1
    return checked
