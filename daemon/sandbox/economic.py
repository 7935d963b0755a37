"""A fake e-conomic that behaves like the real one for what moment-sync uses.

Both API families on one port: legacy REST under ``/rest`` and the OpenAPI services under
``/apis`` (``/apis/projectsapi/v1.1.0/...``), sharing one agreement and one rate-limit bucket.
Around every API request, in this order: the request is recorded; both tokens are required
(401 otherwise); an injected fault may strike; the token bucket charges the call's cost or
answers 429 with ``Retry-After``; a known ``Idempotency-Key`` (non-GET, within an hour) replays
the first answer with ``X-ResultFromCache: true``; and every answer carries ``X-CallCost``,
``X-RateLimiting`` (while limiting is on) and ``X-RequestId``. ``/admin`` (no tokens) lets tests
and the demo change data as a person would and read back every request served. webhooksapi is
served too, and every change fires the installed webhooks (:attr:`EconomicSandbox.firing`,
:mod:`daemon.sandbox.economic_firing`).

Start it in-process::

    async with EconomicSandbox.running(port=0) as sb:
        sb.rest_url, sb.apis_url, sb.app_secret_token, sb.agreement_grant_token, sb.agreement

This module must never import the client it stands in for (import-linter checks it).
"""

from __future__ import annotations

import asyncio
import math
import random
import secrets
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from daemon.sandbox import (
    economic_admin,
    economic_documents,
    economic_firing,
    economic_journals,
    economic_ledger,
    economic_legacy,
    economic_projects,
    economic_webhooks,
)
from daemon.sandbox import economic_replies as replies
from daemon.sandbox.economic_state import Agreement, seeded

# "drop": the work is done, the answer lost. "garble": the work is done, a 2xx answer arrives
# whose body cannot be read (the cache keeps the real one). "late": the connection dies at once
# and the work is held, applied only just before the next write request is served (e-conomic
# still applying a call the client gave up on; a lookup in between does not see it).
FAULT_KINDS = ("500", "503", "429", "reset", "timeout", "drop", "garble", "late")
_RANDOM_KINDS = ("500", "503", "429", "reset", "timeout", "drop")
IDEMPOTENCY_TTL_S = 3600.0
APP = "sandbox-app"  # the app the tokens stand for: it owns the webhooks the API creates


@dataclass
class RateLimit:
    """The agreement's token bucket: it holds ``tokens`` and drains continuously at
    ``tokens / window_s`` a second; a call fits when its cost fits on top of ``level``.
    Off: no 429 and no ``X-RateLimiting``."""

    enabled: bool = True
    tokens: int = 10_000
    window_s: int = 60
    cost_get: int = 1
    cost_write: int = 3
    # Per-endpoint costs: "METHOD /path-prefix" -> tokens; the longest matching prefix wins.
    costs: dict[str, int] = field(default_factory=dict)
    retry_after: bool = True
    level: float = 0.0
    updated_at: float | None = None

    def drain(self, now: float) -> None:
        """Bring ``level`` up to ``now``."""
        if self.updated_at is not None and now > self.updated_at:
            self.level = max(0.0, self.level - (now - self.updated_at) * self.tokens
                             / self.window_s)
        self.updated_at = now if self.updated_at is None else max(now, self.updated_at)

    def fill(self, used: float, now: float) -> None:
        """Set the tokens in the bucket at ``now``, as another app of the agreement would."""
        self.level, self.updated_at = used, now

    @property
    def used(self) -> int:
        """The ``used`` of ``X-RateLimiting``: tokens in the bucket, rounded up."""
        return math.ceil(self.level - 1e-9)


@dataclass
class Faults:
    """Random faults (``probability`` per API request, a kind drawn from ``kinds``) and a
    queue of faults for the next requests (``scheduled``, consumed first)."""

    probability: float = 0.0
    kinds: list[str] = field(default_factory=lambda: list(_RANDOM_KINDS))
    scheduled: deque[str] = field(default_factory=deque)
    # (method, path fragment, kind): strikes the first matching request, before ``scheduled``
    targeted: list[tuple[str, str, str]] = field(default_factory=list)
    retry_after_s: int = 1
    timeout_s: float = 35.0  # longer than the client's default 30 s timeout
    seed: int | None = None


@dataclass
class Served:
    method: str
    path: str
    query: str
    status: int
    body: str
    idempotency_key: str | None = None
    from_cache: bool = False
    at: float = 0.0
    response: bytes | None = None
    content_type: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "query": self.query,
                "status": self.status, "body": self.body,
                "idempotency_key": self.idempotency_key, "from_cache": self.from_cache,
                "at": self.at}


@dataclass
class _Cached:
    at: float
    status: int
    body: bytes
    content_type: str
    location: str | None


class EconomicSandbox:
    """The fake; see the module docstring. ``clock`` drives the bucket and idempotency expiry
    (tests pass a fake clock's ``now``); ``cursor_page_size`` is e-conomic's 1000 by default."""

    def __init__(self, *, agreement: Agreement | None = None,
                 app_secret_token: str | None = None, agreement_grant_token: str | None = None,
                 rate_limit: RateLimit | None = None, faults: Faults | None = None,
                 clock: Callable[[], float] = time.monotonic, cursor_page_size: int = 1000,
                 record_limit: int = 100_000, keep_responses: bool = False,
                 accept_demo_tokens: bool = False,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 firing: economic_firing.FiringSettings | None = None) -> None:
        self.agreement = agreement or seeded()
        # Deliveries of the webhooks; ``sleep`` spaces their retries (tests: a fake clock's).
        self.firing = economic_firing.Firing(lambda: self.agreement, clock=clock, sleep=sleep,
                                             settings=firing)
        self.agreement.listeners.append(self.firing.tell)
        # Fresh tokens per sandbox unless given, so a client configured for another one fails.
        self.app_secret_token = app_secret_token or "sbx-app-" + secrets.token_hex(12)
        self.agreement_grant_token = agreement_grant_token or "sbx-grant-" + secrets.token_hex(12)
        self.rate_limit = rate_limit or RateLimit()
        self.faults = faults or Faults()
        self.clock = clock
        self.cursor_page_size = cursor_page_size
        self.served: deque[Served] = deque(maxlen=record_limit)
        self.keep_responses = keep_responses  # tests validate answers against the specs
        # Whether a 4xx answer is replayed for its key like a success (e-conomic does not say;
        # assuming it does keeps the daemon honest: a refused intent needs a new key).
        self.idempotency_cache_errors = True
        # Tokens "demo"/"demo": read-only access, as on e-conomic's public demo agreement.
        self.accept_demo_tokens = accept_demo_tokens
        self.idempotency: dict[tuple[str, str, str], _Cached] = {}
        self._rng = random.Random(self.faults.seed)
        self._held: list[tuple[asyncio.Event, asyncio.Event]] = []  # "late" writes: go, done
        self.host = "127.0.0.1"
        self.port = 0
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ urls ---------------
    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}/rest"

    @property
    def apis_url(self) -> str:
        return f"http://{self.host}:{self.port}/apis"

    @property
    def admin_url(self) -> str:
        return f"http://{self.host}:{self.port}/admin"

    def describe(self) -> dict[str, str]:
        """The keys ``moment-sync sandbox`` prints for this sandbox."""
        return {"rest_url": self.rest_url, "apis_url": self.apis_url,
                "app_secret_token": self.app_secret_token,
                "agreement_grant_token": self.agreement_grant_token}

    # ------------------------------------------------------------------ lifecycle ----------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)

        def ctx(_request: web.Request) -> Agreement:
            return self.agreement

        app.add_routes(economic_ledger.routes(ctx))
        app.add_routes(economic_legacy.routes(ctx))
        app.add_routes(economic_projects.routes(ctx, lambda: self.cursor_page_size))
        app.add_routes(economic_journals.routes(ctx, lambda: self.cursor_page_size))
        app.add_routes(economic_documents.routes(ctx))
        app.add_routes(economic_webhooks.routes(ctx, lambda: self.cursor_page_size, APP))
        app.add_routes(economic_admin.routes(self))
        app.add_routes(economic_firing.admin_routes(self))
        return app

    async def start(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        self.host = host
        bound = [a for a in self._runner.addresses if isinstance(a, tuple)]
        self.port = int(bound[0][1]) if bound else port
        await self.firing.start()

    async def stop(self) -> None:
        await self.firing.stop()
        await self.apply_held()  # a held write's handler must end before the server can
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @classmethod
    @asynccontextmanager
    async def running(cls, *, host: str = "127.0.0.1", port: int = 0, **kwargs: Any
                      ) -> AsyncIterator[EconomicSandbox]:
        """Serve on ``host:port`` (0: any free port) until the block ends."""
        sb = cls(**kwargs)
        await sb.start(host=host, port=port)
        try:
            yield sb
        finally:
            await sb.stop()

    # ------------------------------------------------------------------ test helpers -------
    def inject(self, kind: str, count: int = 1, *, on: str = "") -> None:
        """Make the next ``count`` API requests fail with ``kind`` (one of FAULT_KINDS); with
        ``on`` (``"POST /draft-entries/bulk"``: a method and a path fragment), the next
        ``count`` requests that match, whatever comes between."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULT_KINDS}")
        if on:
            method, _, fragment = on.partition(" ")
            self.faults.targeted += [(method.upper(), fragment, kind)] * count
        else:
            self.faults.scheduled.extend([kind] * count)

    async def apply_held(self) -> None:
        """Apply the writes a ``late`` fault held, now, and wait until they are done."""
        held, self._held = self._held, []
        for go, _done in held:
            go.set()
        for _go, done in held:
            await done.wait()

    def requests(self, *, method: str | None = None, path_contains: str = "") -> list[Served]:
        return [s for s in self.served if (method is None or s.method == method)
                and path_contains in s.path]

    # ------------------------------------------------------------------ pipeline -----------
    def _cost(self, method: str, path: str) -> int:
        rl = self.rate_limit
        best, cost = -1, rl.cost_get if method == "GET" else rl.cost_write
        for key, value in rl.costs.items():
            m, _, prefix = key.partition(" ")
            if m == method and path.startswith(prefix) and len(prefix) > best:
                best, cost = len(prefix), value
        return cost

    def _rate_header(self) -> str:
        rl = self.rate_limit
        rl.drain(self.clock())
        return f"token-limit-{rl.tokens}-per-{rl.window_s}-seconds: {rl.used}/{rl.tokens}"

    def _charge(self, cost: int) -> float | None:
        """Charge the bucket; the seconds until it has room when it cannot take ``cost``."""
        rl = self.rate_limit
        rl.drain(self.clock())
        excess = rl.level + min(cost, rl.tokens) - rl.tokens
        if excess > 1e-6:  # float slack: a client that waited exactly is not refused
            return excess * rl.window_s / rl.tokens
        rl.level += cost
        return None

    def _next_fault(self, method: str, path: str) -> str | None:
        for n, (m, fragment, kind) in enumerate(self.faults.targeted):
            if m == method and fragment in path:
                del self.faults.targeted[n]
                return kind
        if self.faults.scheduled:
            return self.faults.scheduled.popleft()
        if self.faults.probability > 0 and self._rng.random() < self.faults.probability:
            kinds = [k for k in self.faults.kinds if k in FAULT_KINDS]
            return self._rng.choice(kinds) if kinds else None
        return None

    @web.middleware
    async def _middleware(self, request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                          ) -> web.StreamResponse:
        path = request.path
        if path.startswith("/admin"):
            return await handler(request)
        family = "apis" if path.startswith("/apis") else "rest"
        method = request.method
        key = request.headers.get("Idempotency-Key") if method != "GET" else None
        multipart = request.content_type.startswith("multipart/")
        if multipart:
            body_text = f"<multipart {request.content_length or 0} bytes>"
        else:
            raw = await request.read()
            body_text = raw.decode("utf-8", "replace")[:10_000]
        record = Served(method, path, request.rel_url.query_string, 0, body_text, key,
                        at=self.clock())
        self.served.append(record)
        request[replies.SERVED] = record
        resp = await self._serve(request, handler, family, method, key, record)
        record.status = resp.status
        if self.keep_responses and isinstance(resp, web.Response):
            record.response = resp.body if isinstance(resp.body, bytes) else b""
            record.content_type = resp.content_type
        return resp

    async def _serve(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                     family: str, method: str, key: str | None, record: Served
                     ) -> web.StreamResponse:
        h = request.headers
        app, grant = h.get("X-AppSecretToken"), h.get("X-AgreementGrantToken")
        if self.accept_demo_tokens and app == "demo" and grant == "demo":
            if method != "GET":  # e-conomic: "you can only use the GET http method"
                return self._decorate(replies.error_for_family(
                    family, 401, "The demo agreement only allows GET requests."), 0)
        elif app != self.app_secret_token or grant != self.agreement_grant_token:
            resp: web.StreamResponse = replies.error_for_family(
                family, 401, "The request is not authorized: both tokens are required.",
                "E02250" if family == "rest" and h.get("X-AppSecretToken") else None)
            return self._decorate(resp, 0)
        if method != "GET" and self._held:
            await self.apply_held()  # what e-conomic was still applying is done by now
        fault = self._next_fault(method, request.path)
        if fault == "late":
            go, done = asyncio.Event(), asyncio.Event()
            self._held.append((go, done))
            self._kill(request)  # the client gives up on the call ...
            try:
                await go.wait()  # ... which e-conomic applies later
                return await self._apply(request, handler, family, method, key, record, None)
            finally:
                done.set()
        if fault in ("500", "503"):
            return self._decorate(replies.error_for_family(
                family, int(fault), "An internal error occurred (injected)."), 0)
        if fault == "429":
            resp = replies.error_for_family(family, 429, "Too many requests (injected).")
            resp.headers["Retry-After"] = str(self.faults.retry_after_s)
            return self._decorate(resp, 0)
        if fault == "reset":
            self._kill(request)
            return web.Response(status=500)
        if fault == "timeout":
            await asyncio.sleep(self.faults.timeout_s)
        return await self._apply(request, handler, family, method, key, record, fault)

    async def _apply(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                     family: str, method: str, key: str | None, record: Served,
                     fault: str | None) -> web.StreamResponse:
        """The rate limit, the idempotency cache and the handler; then a fault that strikes
        after the work (``drop``, ``garble``)."""
        cost = self._cost(method, request.path)
        resp: web.StreamResponse
        if self.rate_limit.enabled:
            wait = self._charge(cost)
            if wait is not None:
                resp = replies.error_for_family(
                    family, 429, "Too many requests. You are over your quota; wait a bit.")
                if self.rate_limit.retry_after:
                    resp.headers["Retry-After"] = str(max(1, math.ceil(wait)))
                return self._decorate(resp, 0)
        if method in ("POST", "PUT", "PATCH") and request.body_exists and \
                not request.path.endswith("/AttachedDocuments") and \
                request.content_type not in ("application/json", "text/json"):
            return self._decorate(replies.error_for_family(
                family, 415, "Unsupported Media Type: send application/json."), cost)
        ident = (key, method, request.path) if key else None
        if ident is not None:
            hit = self.idempotency.get(ident)
            if hit is not None and self.clock() - hit.at < IDEMPOTENCY_TTL_S:
                record.from_cache = True
                resp = web.Response(body=hit.body, status=hit.status,
                                    content_type=hit.content_type or None)
                if hit.location:
                    resp.headers["Location"] = hit.location
                resp.headers["X-ResultFromCache"] = "true"
                return self._decorate(resp, cost)
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            resp = replies.error_for_family(family, exc.status, exc.reason)
        cacheable = resp.status < 300 or (self.idempotency_cache_errors and resp.status < 500
                                          and resp.status != 429)
        if ident is not None and cacheable and isinstance(resp, web.Response):
            body = resp.body if isinstance(resp.body, bytes) else b""
            self.idempotency[ident] = _Cached(self.clock(), resp.status, body,
                                              resp.content_type if body else "",
                                              resp.headers.get("Location"))
        if fault == "drop":  # the work is committed; the answer never arrives
            self._kill(request)
        if fault == "garble" and resp.status < 300:  # committed; the answer cannot be read
            resp = web.Response(status=resp.status, body=b'{"entryNumbers": [1, 2',
                                content_type="application/json")
        return self._decorate(resp, cost)

    @staticmethod
    def _kill(request: web.Request) -> None:
        transport = request.transport
        if transport is not None:
            transport.abort()

    def _decorate(self, resp: web.StreamResponse, cost: int) -> web.StreamResponse:
        resp.headers["X-CallCost"] = str(cost)
        if self.rate_limit.enabled:
            resp.headers["X-RateLimiting"] = self._rate_header()
        resp.headers["X-RequestId"] = uuid.uuid4().hex
        return resp
