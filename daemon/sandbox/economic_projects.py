"""projectsapi v1.1.0 routes of the fake e-conomic: /Projects and /ProjectGroups.

Every route answers 403 ``AccessDeniedAgreementMissingModules`` ("Missing modules: Project")
while the agreement's project module is off. POST validates as REFERENCE.md section 10 item 17
says and answers 201 ``{"number": N}``; PUT (collection path, number in the body) needs the
current ``objectVersion`` (else 409 ``UpdateConflict``) and answers 204; every write gives the
record a fresh ``objectVersion``; ``isClosed`` and the other read-only fields are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from daemon.sandbox import economic_replies as replies
from daemon.sandbox.economic_filters import OPS, Field
from daemon.sandbox.economic_state import Agreement, Record, stamp

PREFIX = "/apis/projectsapi/v1.1.0"
_CMP = frozenset(("eq", "ne", "lt", "lte", "gt", "gte"))
_ALL = frozenset(OPS) - {"like"}
PROJECT_FILTER = {
    "number": Field("int", _ALL), "name": Field("str", frozenset(OPS)),
    "projectGroupNumber": Field("int", _ALL), "customerNumber": Field("int", _ALL),
    "isClosed": Field("bool", _CMP), "isBarred": Field("bool", _CMP),
    "isMainProject": Field("bool", _CMP), "lastUpdated": Field("datetime", _CMP),
    "mainProjectNumber": Field("int", _ALL), "status": Field("int", _ALL),
    "otherReference": Field("str", _CMP)}
GROUP_FILTER = {"number": Field("int", _ALL), "name": Field("str", frozenset(OPS)),
                "type": Field("int", frozenset(("eq", "ne")))}
WRITABLE: dict[str, tuple[type | tuple[type, ...], int | None]] = {
    "number": (int, None), "name": (str, 100), "projectGroupNumber": (int, None),
    "customerNumber": (int, None), "isBarred": (bool, None), "isMainProject": (bool, None),
    "mainProjectNumber": (int, None), "status": (int, None), "description": (str, 2500),
    "otherReference": (str, 250), "responsibleEmployeeNumber": (int, None),
    "otherResponsibleEmployeeNumber": (int, None), "departmentNumber": (int, None),
    "contactPersonId": (int, None), "deliveryLocationNumber": (int, None),
    "deliveryDate": (str, None), "closedDate": (str, None), "fixedPrice": ((int, float), None),
    "mileage": ((int, float), None), "isMileageInvoiced": (bool, None)}
NULLABLE = {"customerNumber", "mainProjectNumber", "status", "description", "otherReference",
            "responsibleEmployeeNumber", "otherResponsibleEmployeeNumber", "departmentNumber",
            "contactPersonId", "deliveryLocationNumber", "deliveryDate", "closedDate",
            "fixedPrice"}
Ctx = Callable[[web.Request], Agreement]


def render_project(p: Record) -> Record:
    return {k: v for k, v in p.items() if v is not False and v is not None}


def validate_project(a: Agreement, body: Any, *, creating: bool
                     ) -> tuple[Record | None, list[tuple[str, str, str]]]:
    errs: list[tuple[str, str, str]] = []
    if not isinstance(body, dict):
        return None, [("", "InvalidRequestBody", "The request body must be a JSON object.")]
    rec: Record = {}
    for prop, (kind, limit) in WRITABLE.items():
        if prop not in body:
            continue
        v = body[prop]
        if v is None:
            if prop not in NULLABLE:
                errs.append((prop, "InvalidValue", f"The {prop} field cannot be null."))
            continue
        if (isinstance(v, bool) and kind is not bool) or not isinstance(v, kind):
            errs.append((prop, "InvalidValue", f"The value of {prop} is not valid."))
            continue
        if limit is not None and isinstance(v, str) and len(v) > limit:
            errs.append((prop, "InvalidValue",
                         f"The field {prop} must be a string with a maximum length of {limit}."))
            continue
        rec[prop] = v
    if creating and body.get("isClosed") is True:
        errs.append(("isClosed", "ProjectCannotBeCreatedAsClosed",
                     "A project cannot be created as closed."))
    if not rec.get("name"):
        errs.append(("name", "InvalidValue", "The Name field is required."))
    group_no = rec.get("projectGroupNumber")
    if group_no is None:
        errs.append(("projectGroupNumber", "ProjectCannotBeCreatedUpdatedGroupNumberIsInvalid",
                     "The ProjectGroupNumber field is required."))
    elif group_no not in a.project_groups:
        errs.append(("projectGroupNumber", "ProjectCannotBeCreatedUpdatedGroupDoesNotExist",
                     f"Project group {group_no} does not exist."))
    else:
        external = a.project_groups[group_no].get("type") in (2, 3)
        cust = rec.get("customerNumber")
        if cust is None and external:
            errs.append(("customerNumber",
                         "ProjectCannotBeCreatedUpdatedCustomerNumberRequired",
                         "A customer is required for a project in an external project group."))
        elif cust is not None and not 1 <= cust <= 999_999_999:
            errs.append(("customerNumber", "ProjectCannotBeCreatedUpdatedInvalidCustomerNumber",
                         f"Customer number {cust} is not valid."))
        elif cust is not None and cust not in a.customers:
            errs.append(("customerNumber", "ProjectCannotBeCreatedUpdatedCustomerNotFound",
                         f"Customer {cust} does not exist."))
    num = rec.get("number")
    if num is not None and not 1 <= num <= 999_999_999:
        errs.append(("number", "ProjectCannotBeCreatedUpdatedNumberIsInvalid",
                     f"Project number {num} is not valid."))
    main = rec.get("mainProjectNumber")
    if main is not None and (main not in a.projects or not a.projects[main].get("isMainProject")):
        errs.append(("mainProjectNumber",
                     "ProjectCannotBeCreatedUpdatedMainProjectNumberDoesNotExistOrInvalid",
                     f"Main project {main} does not exist or is not a main project."))
    return (None, errs) if errs else (rec, errs)


def routes(ctx: Ctx, page_size: Callable[[], int]) -> list[web.RouteDef]:
    def module_on(request: web.Request) -> bool:
        return ctx(request).project_module

    def missing() -> web.Response:
        return replies.problem(403, "Missing modules: Project",
                               code="AccessDeniedAgreementMissingModules")

    async def list_projects(request: web.Request) -> web.Response:
        if not module_on(request):
            return missing()
        a = ctx(request)
        return replies.cursor_page(request, list(a.projects.values()), key="number",
                                   fields=PROJECT_FILTER, page_size=page_size(),
                                   render=render_project)

    async def count_projects(request: web.Request) -> web.Response:
        if not module_on(request):
            return missing()
        return replies.json(len(ctx(request).projects))

    async def get_project(request: web.Request) -> web.Response:
        if not module_on(request):
            return missing()
        raw = request.match_info["n"]
        p = ctx(request).projects.get(int(raw)) if raw.isdigit() else None
        return replies.json(render_project(p)) if p else replies.not_found_problem()

    async def post_project(request: web.Request) -> web.Response:
        if not module_on(request):
            return missing()
        a = ctx(request)
        body = await replies.body_of(request)
        if body is msgspec.UNSET:
            return replies.not_json()
        rec, errs = validate_project(a, body, creating=True)
        if rec is None:
            return replies.invalid(errs)
        num = rec.get("number") or (max(a.projects, default=0) + 1)
        if num in a.projects:
            return replies.invalid([("number", "ProjectCannotBeCreatedUpdatedNumberAlreadyExists",
                                     f"Project number {num} already exists.")])
        rec["number"] = num
        rec["lastUpdated"] = stamp()
        rec["objectVersion"] = a.version()
        a.projects[num] = rec
        a.project_changed(None, num)
        return replies.json({"number": num}, 201,
                            {"Location": f"{request.scheme}://{request.host}{PREFIX}/Projects/{num}"})

    async def put_project(request: web.Request) -> web.Response:
        if not module_on(request):
            return missing()
        a = ctx(request)
        body = await replies.body_of(request)
        if body is msgspec.UNSET:
            return replies.not_json()
        num = body.get("number") if isinstance(body, dict) else None
        if not isinstance(num, int) or num not in a.projects:
            return replies.not_found_problem()
        current = a.projects[num]
        if body.get("objectVersion") != current.get("objectVersion"):
            return replies.update_conflict()
        rec, errs = validate_project(a, body, creating=False)
        if rec is None:
            return replies.invalid(errs)
        for keep in ("isClosed", "costPrice", "salesPrice", "invoicedTotal"):
            if keep in current:
                rec[keep] = current[keep]
        rec["number"] = num
        rec["lastUpdated"] = stamp()
        rec["objectVersion"] = a.version()
        a.projects[num] = rec
        a.project_changed(num, num)
        return web.Response(status=204)

    async def delete_project(request: web.Request) -> web.Response:
        if not module_on(request):
            return missing()
        a = ctx(request)
        raw = request.match_info["n"]
        num = int(raw) if raw.isdigit() else -1
        if num not in a.projects:
            return replies.not_found_problem()
        if any(e.get("projectNumber") == num for e in a.booked_entries.values()):
            return replies.invalid([("number", "ProjectCannotBeDeletedHasBookedEntries",
                                     "The project has booked entries.")])
        if any(e.get("projectNumber") == num for e in a.draft_entries.values()):
            return replies.invalid([("number", "ProjectCannotBeDeletedHasDraftEntries",
                                     "The project has draft entries.")])
        a.delete_project(num)
        return web.Response(status=204)

    async def list_groups(request: web.Request) -> web.Response:
        if not module_on(request):
            return missing()
        return replies.cursor_page(request, list(ctx(request).project_groups.values()),
                                   key="number", fields=GROUP_FILTER, page_size=page_size())

    async def get_group(request: web.Request) -> web.Response:
        if not module_on(request):
            return missing()
        raw = request.match_info["n"]
        g = ctx(request).project_groups.get(int(raw)) if raw.isdigit() else None
        return replies.json(g) if g else replies.not_found_problem()

    return [
        web.get(f"{PREFIX}/Projects", list_projects),
        web.post(f"{PREFIX}/Projects", post_project),
        web.put(f"{PREFIX}/Projects", put_project),
        web.get(f"{PREFIX}/Projects/count", count_projects),
        web.get(f"{PREFIX}/Projects/{{n}}", get_project),
        web.delete(f"{PREFIX}/Projects/{{n}}", delete_project),
        web.get(f"{PREFIX}/ProjectGroups", list_groups),
        web.get(f"{PREFIX}/ProjectGroups/{{n}}", get_group),
    ]
