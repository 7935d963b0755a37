"""One HTTP call to e-conomic: headers, rate limiting, the answer or one of our own errors.

:class:`Caller` owns the single aiohttp session of a client. It never lets an aiohttp exception
out: transport failures and timeouts become :class:`errors.TransportError`/``Timeout``, error
answers become the matching :mod:`daemon.economic.errors` class. The tokens are revealed only in
:meth:`Caller._headers`; no error, counter or log line holds a header.

Every call waits for the :class:`~daemon.economic.limiting.Limiter`. A 429 pauses all callers;
the call that got it is sent again after the pause, at most ``rate_limit_retries`` times (a 429
means the request was not applied). Nothing else is retried here: 5xx, timeouts and transport
errors are raised for the caller's per-item backoff, with ``retryable`` set.

Redirects are never followed: the tokens travel in headers, and a followed redirect would hand
them (and a POST body, on a 307/308) to wherever the ``Location`` points, an https->http
downgrade included. A 3xx is :class:`errors.Redirected`, terminal, saying where it pointed.
"""

from __future__ import annotations

import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import msgspec

from daemon.core import ratelimits
from daemon.core.secrets import Secret
from daemon.economic import errors
from daemon.economic.limiting import Limiter

Base = Literal["rest", "apis"]
MISSING_MODULES = "AccessDeniedAgreementMissingModules"
# Money is Decimal: a Decimal goes out as a JSON number written from its decimal string.
_encoder = msgspec.json.Encoder(decimal_format="number")


@dataclass(slots=True)
class Answer:
    """A 2xx answer: status and body (headers are not kept)."""

    status: int
    body: bytes
    from_cache: bool = False


@dataclass(slots=True)
class Counters:
    """What the status and metrics code reads. Keys of ``calls`` are (endpoint, status), status
    0 for calls that got no answer."""

    calls: Counter[tuple[str, int]] = field(default_factory=Counter)
    rate_limited: int = 0
    tokens_used: int = 0
    replayed: int = 0
    last_error: str | None = None


def _field_messages(node: object, path: str, out: dict[str, list[str]]) -> None:
    """Collect legacy annotated errors: ``{"prop": {"errors": [{"message": ...}]}}``, nested
    objects, and arrays whose items carry ``arrayIndex``."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            idx = item.get("arrayIndex", i) if isinstance(item, dict) else i
            _field_messages(item, f"{path}[{idx}]", out)
        return
    if not isinstance(node, dict):
        return
    errs = node.get("errors")
    if isinstance(errs, list):
        msgs = [str(e.get("message", "")) for e in errs if isinstance(e, dict)]
        msgs += [e for e in errs if isinstance(e, str)]
        if msgs:
            out.setdefault(path, []).extend(msgs)
    for key, child in node.items():
        if key in ("errors", "arrayIndex") or not isinstance(child, dict | list):
            continue
        _field_messages(child, f"{path}.{key}" if path else key, out)


def _first_code(node: object) -> str | None:
    if isinstance(node, dict):
        code = node.get("errorCode")
        if isinstance(code, str) and code:
            return code
        node = list(node.values())
    if isinstance(node, list):
        for child in node:
            found = _first_code(child)
            if found:
                return found
    return None


def parse_error_body(body: bytes) -> tuple[str, str | None, dict[str, list[str]]]:
    """(message, e-conomic error code, per-field messages) from a legacy or problem+json body."""
    try:
        doc: Any = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body.decode("utf-8", "replace")[:200] or "no body", None, {}
    if not isinstance(doc, dict):
        return str(doc)[:200], None, {}
    fields: dict[str, list[str]] = {}
    message = str(doc.get("message") or doc.get("title") or doc.get("detail") or "error")
    errs = doc.get("errors")
    if isinstance(errs, list) and all(isinstance(e, str) for e in errs):
        if errs:
            fields[""] = list(errs)
    elif isinstance(errs, list):  # problem+json: [{message, errorCode, property}]
        for e in errs:
            if isinstance(e, dict):
                fields.setdefault(str(e.get("property") or ""), []).append(
                    str(e.get("message") or e.get("errorCode") or ""))
    elif isinstance(errs, dict):
        _field_messages(errs, "", fields)
    if isinstance(doc.get("detail"), str) and doc.get("title") and not fields:
        fields[""] = [doc["detail"]]
    return message, _first_code(doc), fields


def _where(location: str | None) -> str:
    """A ``Location`` as scheme, host and path (the query may hold anything: left out)."""
    if not location:
        return "nowhere (no Location header)"
    parts = urllib.parse.urlsplit(location)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path,
                                    "", ""))[:300] or "nowhere (an empty Location header)"


def error_for(status: int, body: bytes, *, method: str, path: str,
              retry_after: float | None = None,
              location: str | None = None) -> errors.EconomicError:
    """The error class for an answer that is not 2xx."""
    text = body.decode("utf-8", "replace")
    if 300 <= status < 400:
        where = _where(location)
        return errors.Redirected(
            f"e-conomic answered with a redirect to {where}; it was not followed (the tokens "
            f"would go with it): check [economic] rest_url and apis_url",
            location=where, method=method, path=path, status=status, body=text)
    message, code, fields = parse_error_body(body)
    kw: dict[str, Any] = {"method": method, "path": path, "status": status, "code": code,
                          "body": text}
    if status == 429:
        return errors.RateLimited(message, retry_after=retry_after, **kw)
    if status >= 500:
        return errors.ServerError(message, retry_after=retry_after, **kw)
    if status == 400:
        return errors.ValidationError(message, fields=fields, **kw)
    if status == 401:
        return errors.Unauthorized(message, **kw)
    if status == 403:
        cls = errors.MissingModule if code == MISSING_MODULES else errors.Forbidden
        return cls(message, **kw)
    if status == 404:
        return errors.NotFound(message, **kw)
    if status == 409:
        return errors.Conflict(message, **kw)
    return errors.RequestRejected(message, **kw)


class Caller:
    """Sends requests for one agreement over one aiohttp session (created on first use)."""

    def __init__(self, *, rest_url: str, apis_url: str, app_secret_token: Secret,
                 agreement_grant_token: Secret, limiter: Limiter, timeout_s: float = 30.0,
                 rate_limit_retries: int = 2, session: aiohttp.ClientSession | None = None,
                 on_call: Callable[[str, str, int | None], None] | None = None) -> None:
        self._bases: dict[str, str] = {"rest": rest_url.rstrip("/"), "apis": apis_url.rstrip("/")}
        self._app = app_secret_token
        self._grant = agreement_grant_token
        self.limiter = limiter
        self.counters = Counters()
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._retries = rate_limit_retries
        self._session = session
        self._own_session = session is None
        self._on_call = on_call

    def _count(self, endpoint: str, status: int) -> None:
        self.counters.calls[(endpoint, status)] += 1
        if self._on_call is not None:
            method, _, path = endpoint.partition(" ")
            self._on_call(method, path, status or None)

    def _headers(self, idempotency_key: str | None, json_body: bool) -> dict[str, str]:
        headers = {"X-AppSecretToken": self._app.reveal(),
                   "X-AgreementGrantToken": self._grant.reveal(),
                   "Accept": "application/json"}
        if json_body:
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=max(4, self.limiter.max_in_flight)))
            self._own_session = True
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and self._own_session and not self._session.closed:
            await self._session.close()

    def url(self, base: Base, path: str) -> str:
        return f"{self._bases[base]}/{path.lstrip('/')}"

    async def call(self, method: str, base: Base, path: str, *, endpoint: str,
                   params: Mapping[str, str] | None = None, json: object = None,
                   form: Callable[[], aiohttp.FormData] | None = None,
                   idempotency_key: str | None = None, priority: bool = False) -> Answer:
        """Send one request; returns the 2xx answer or raises an :class:`errors.EconomicError`.
        A non-GET needs the caller's ``idempotency_key``, sent unchanged on every attempt."""
        if method != "GET" and not idempotency_key:
            raise ValueError(f"{method} {endpoint} needs the caller's idempotency_key")
        data = _encoder.encode(json) if json is not None else None
        for attempt in range(self._retries + 1):
            status, body, retry_after, cached, location = await self._once(
                method, base, path, endpoint=endpoint, params=params, data=data, form=form,
                idempotency_key=idempotency_key, priority=priority)
            if 200 <= status < 300:
                if cached:
                    self.counters.replayed += 1
                return Answer(status, body, cached)
            err = error_for(status, body, method=method, path=_path_of(endpoint),
                            retry_after=retry_after, location=location)
            if status == 429:
                self.counters.rate_limited += 1
                err.retry_after = self.limiter.throttled(retry_after)
                if attempt < self._retries:
                    continue
            self.counters.last_error = str(err)
            raise err
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, method: str, base: Base, path: str, *, endpoint: str,
                    params: Mapping[str, str] | None, data: bytes | None,
                    form: Callable[[], aiohttp.FormData] | None, idempotency_key: str | None,
                    priority: bool) -> tuple[int, bytes, float | None, bool, str | None]:
        ticket = await self.limiter.acquire(priority=priority)
        unsettled = ticket
        try:
            try:
                async with self.session().request(
                        method, self.url(base, path), params=params,
                        data=form() if form is not None else data, timeout=self._timeout,
                        headers=self._headers(idempotency_key, data is not None),
                        allow_redirects=False) as resp:
                    body = await resp.read()
                    status = resp.status
                    h = resp.headers
                    rate, cost = h.get("X-RateLimiting"), h.get("X-CallCost")
                    retry_after = ratelimits.parse_retry_after(h.get("Retry-After"))
                    cached = h.get("X-ResultFromCache", "").lower() == "true"
                    location = h.get("Location")
            except TimeoutError as exc:
                self._count(endpoint, 0)
                err: errors.EconomicError = errors.Timeout(
                    "no answer in time", method=method, path=_path_of(endpoint))
                self.counters.last_error = str(err)
                raise err from exc
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                self._count(endpoint, 0)
                # Exceptions holding request_info carry our request headers, tokens included:
                # name them, but neither quote nor chain them.
                leaky = hasattr(exc, "request_info")
                detail = type(exc).__name__ if leaky else f"{type(exc).__name__}: {exc}"
                err = errors.TransportError(f"no usable answer ({detail[:300]})",
                                            method=method, path=_path_of(endpoint))
                self.counters.last_error = str(err)
                raise err from (None if leaky else exc)
            self.limiter.observe(rate, cost, ticket)
            unsettled = 0
        finally:
            self.limiter.release(unsettled)
        self._count(endpoint, status)
        parsed_cost = ratelimits.parse_cost(cost)
        if parsed_cost:
            self.counters.tokens_used += parsed_cost
        return status, body, retry_after, cached, location


def _path_of(endpoint: str) -> str:
    """``/customers/{n}`` of the endpoint label ``GET /customers/{n}``."""
    return endpoint.split(" ", 1)[-1]


def new_idempotency_key() -> str:
    """A fresh key for a new intent (callers record it with the intent before sending)."""
    return uuid.uuid4().hex

