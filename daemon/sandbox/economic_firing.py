"""The fake e-conomic fires its installed webhooks, and its admin surface for them.

Every change the agreement tells (:meth:`Agreement.changed`: API writes and a person's admin
edits alike) queues one :class:`Delivery` for the webhook of its event type, if one is installed
and enabled at that moment (a disabled webhook's changes are lost, as in e-conomic). Each
webhook has its own queue and one worker task owned by the sandbox, so deliveries go out in the
order of the changes, one at a time, never delaying the answer that caused them: ``POST`` to the
webhook's ``url`` (read when sent), ``Content-Type`` its ``contentType``, its custom headers,
and as body its ``postData`` with every merge field (``[OLDNUMBER]``, ...) replaced by the
change's value, an empty one by nothing. A 2xx answer delivers it; another answer, a refused
connection or a timeout is a failed try, retried after ``retry_delays_s`` (the last delay
repeats) up to ``attempts`` tries; the delivery is then ``failed``. After ``disable_after``
failed deliveries in a row (0: never) the webhook is disabled as e-conomic disables a failing
one (``isDisabled``, ``lastDisabledDate``) and what is still queued for it is ``dropped``; a
delivery whose webhook was deleted or disabled meanwhile is dropped too. e-conomic documents
that it retries but not how often, nor when it disables: these are the sandbox's assumptions,
settable through ``PATCH /admin/config`` ``{"webhooks": {...}}``. A receiver that is down
never stops the sandbox. No custom header value (the receiver's token) is kept in a delivery.

Admin routes (no tokens):

- ``GET /admin/webhooks``: every webhook as the API renders it plus ``readOnly``, ``app``
  (``"sandbox-app"`` for the API's) and ``failures`` (failed deliveries in a row), and the
  deliveries counted by status.
- ``POST /admin/webhooks``: a webhook set up by a person or another app (the API's ``Webhook``
  body plus ``"readOnly": true|false``), 201 rendered; refused as the API refuses, as
  ``{"error": "..."}``.
- ``POST /admin/webhooks/{eventType}/disable``: e-conomic disables it (200, rendered).
- ``DELETE /admin/webhooks/{eventType}``: a person deletes it, read-only or not (204).
- ``GET /admin/webhooks/deliveries[?eventType=X]``: every delivery, oldest first, as
  ``{seq, eventType, fields, status, body, httpStatus, attempts, error, queuedAt, doneAt}``
  (``status`` ``queued``, ``sending``, ``delivered``, ``failed`` or ``dropped``);
  ``DELETE`` forgets the finished ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec
from aiohttp import web

from daemon.sandbox import economic_replies as replies
from daemon.sandbox import economic_webhooks as webhooks
from daemon.sandbox.economic_state import Agreement, Record

if TYPE_CHECKING:
    from daemon.sandbox.economic import EconomicSandbox

USER_AGENT = "e-conomic-webhooks (moment-sync sandbox)"
_SETTING_TYPES: dict[str, type | tuple[type, ...]] = {
    "attempts": int, "retry_delays_s": list, "timeout_s": (int, float), "disable_after": int}


@dataclass
class FiringSettings:
    """How the sandbox retries and when it disables (REFERENCE.md: UNCONFIRMED upstream)."""

    attempts: int = 3
    retry_delays_s: list[float] = field(default_factory=lambda: [5.0, 30.0])
    timeout_s: float = 10.0
    disable_after: int = 5

    def as_dict(self) -> dict[str, Any]:
        return {"attempts": self.attempts, "retry_delays_s": list(self.retry_delays_s),
                "timeout_s": self.timeout_s, "disable_after": self.disable_after}

    def update(self, changes: dict[str, Any]) -> str | None:
        """Apply ``changes`` whole, or change nothing and say what is wrong."""
        for k, v in changes.items():
            kind = _SETTING_TYPES.get(k)
            if kind is None:
                return f"webhooks.{k}: unknown; one of {', '.join(_SETTING_TYPES)}"
            right = isinstance(v, kind) and not isinstance(v, bool)  # (no narrowing of v)
            if not right:
                return f"webhooks.{k}: wrong type"
            if k == "attempts" and v < 1:
                return "webhooks.attempts: at least 1"
            if k in ("disable_after", "timeout_s") and v < 0:
                return f"webhooks.{k}: not negative"
            if k == "retry_delays_s" and not all(
                    isinstance(d, (int, float)) and not isinstance(d, bool) and d >= 0
                    for d in v):
                return "webhooks.retry_delays_s: a list of seconds, none negative"
        for k, v in changes.items():
            setattr(self, k, [float(d) for d in v] if k == "retry_delays_s" else v)
        return None

    def delay(self, attempt: int) -> float:
        """Seconds to wait before try ``attempt`` (2, 3, ...)."""
        if not self.retry_delays_s:
            return 0.0
        return self.retry_delays_s[min(attempt - 2, len(self.retry_delays_s) - 1)]


@dataclass
class Delivery:
    """One change told to one webhook; see the module docstring for ``status``."""

    seq: int
    event_type: str
    fields: dict[str, str]
    queued_at: float
    status: str = "queued"
    body: str = ""
    http_status: int | None = None
    attempts: int = 0
    error: str | None = None
    done_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "eventType": self.event_type, "fields": self.fields,
                "status": self.status, "body": self.body, "httpStatus": self.http_status,
                "attempts": self.attempts, "error": self.error, "queuedAt": self.queued_at,
                "doneAt": self.done_at}


def merge(template: str, fields: dict[str, str]) -> str:
    """``template`` with each merge field (``[OLDNUMBER]``) replaced by its value."""
    for name, value in fields.items():
        template = template.replace(name, value)
    return template


class Firing:
    """The deliveries of one sandbox (see the module docstring). The agreement's webhooks are
    read when a change is told and again before each try."""

    def __init__(self, agreement: Callable[[], Agreement], *,
                 clock: Callable[[], float], sleep: Callable[[float], Awaitable[None]],
                 settings: FiringSettings | None = None, keep: int = 100_000) -> None:
        self._agreement = agreement
        self.clock = clock
        self.sleep = sleep
        self.settings = settings or FiringSettings()
        self.deliveries: deque[Delivery] = deque(maxlen=keep)
        self._queues: dict[str, deque[Delivery]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._seq = 0
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # ------------------------------------------------------------------ what tests call ---
    def tell(self, event_type: str, fields: dict[str, str]) -> None:
        """Queue a delivery of this change if its webhook is installed and enabled (the
        agreement's listener; never blocks, never raises for the receiver's sake)."""
        hook = self._hooks().get(event_type)
        if hook is None or hook.get("isDisabled"):
            return
        self._seq += 1
        d = Delivery(self._seq, event_type, dict(fields), self.clock())
        self.deliveries.append(d)
        self._queues.setdefault(event_type, deque()).append(d)
        self._pending += 1
        self._idle.clear()
        self._wake(event_type)

    async def idle(self) -> None:
        """Return once every delivery queued so far is done (delivered, failed or dropped);
        only a started sandbox delivers."""
        await self._idle.wait()

    def counts(self) -> dict[str, int]:
        """Deliveries by status."""
        return dict(Counter(d.status for d in self.deliveries))

    def of(self, event_type: str | None = None) -> list[Delivery]:
        return [d for d in self.deliveries if event_type in (None, d.event_type)]

    # ------------------------------------------------------------------ lifecycle ---------
    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        for event_type in list(self._queues):
            self._wake(event_type)

    async def stop(self) -> None:
        """Stop delivering (queued deliveries stay queued) and close the connections."""
        workers, self._workers = self._workers, {}
        for task in workers.values():
            task.cancel()
        for task in workers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # ------------------------------------------------------------------ internals ---------
    def _wake(self, event_type: str) -> None:
        if self._session is None:
            return  # queued until the sandbox starts
        task = self._workers.get(event_type)
        if task is None or task.done():
            self._workers[event_type] = asyncio.get_running_loop().create_task(
                self._work(event_type), name=f"economic-webhook-{event_type}")

    async def _work(self, event_type: str) -> None:
        queue = self._queues[event_type]
        while queue:
            d = queue[0]
            try:
                await self._deliver(d)
            except Exception as exc:  # a bug in one delivery must not stop the ones after it
                d.status, d.error = "failed", f"{type(exc).__name__}: {exc}"
            d.done_at = self.clock()
            queue.popleft()
            self._pending -= 1
            if self._pending == 0:
                self._idle.set()

    async def _deliver(self, d: Delivery) -> None:
        s = self.settings
        for attempt in range(1, s.attempts + 1):
            if attempt > 1:
                d.status = "queued"
                await self.sleep(s.delay(attempt))
            hook = self._hooks().get(d.event_type)
            if hook is None or hook.get("isDisabled"):
                d.status = "dropped"
                d.error = f"the {d.event_type} webhook was " + (
                    "deleted" if hook is None else "disabled")
                return
            d.status, d.attempts = "sending", attempt
            d.body = merge(hook.get("postData") or "", d.fields)
            headers = {"User-Agent": USER_AGENT, "Content-Type": hook["contentType"]}
            headers.update({h["key"]: h["value"] for h in hook.get("customHeaders") or ()})
            if await self._post(d, hook["url"], headers):
                d.status = "delivered"
                hook["_failures"] = 0
                return
        d.status = "failed"
        hook = self._hooks().get(d.event_type)
        if hook is not None:
            hook["_failures"] = hook.get("_failures", 0) + 1
            if s.disable_after and hook["_failures"] >= s.disable_after \
                    and not hook.get("isDisabled"):
                webhooks.disable(self._agreement(), d.event_type)

    def _hooks(self) -> dict[str, Record]:
        return self._agreement().webhooks

    async def _post(self, d: Delivery, url: str, headers: dict[str, str]) -> bool:
        session = self._session
        if session is None:
            raise RuntimeError("the sandbox is not running")
        try:
            async with session.post(
                    url, data=d.body.encode(), headers=headers, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s)) as r:
                await r.read()
                d.http_status, d.error = r.status, None
                if 200 <= r.status < 300:
                    return True
                d.error = f"the receiver answered {r.status}"
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            d.http_status, d.error = None, f"{type(exc).__name__}: {exc}"
        return False


def admin_routes(sb: EconomicSandbox) -> list[web.RouteDef]:
    """``/admin/webhooks...`` (see the module docstring)."""

    def listed(hook: Record) -> Record:
        return {**webhooks.render(hook), "readOnly": bool(hook.get("_readOnly")),
                "app": hook.get("_app"), "failures": hook.get("_failures", 0)}

    async def get_all(_r: web.Request) -> web.Response:
        return replies.json({"webhooks": [listed(h) for h in sb.agreement.webhooks.values()],
                             "deliveries": sb.firing.counts(),
                             "settings": sb.firing.settings.as_dict()})

    async def post_one(request: web.Request) -> web.Response:
        try:
            body = msgspec.json.decode(await request.read() or b"null")
        except msgspec.DecodeError:
            body = None
        read_only = isinstance(body, dict) and body.pop("readOnly", False) is True
        rec, errs = webhooks.create(sb.agreement, body, app="person", read_only=read_only)
        if rec is None:
            return replies.json({"error": "; ".join(f"{c}: {m}" for _p, c, m in errs)}, 400)
        return replies.json(listed(rec), 201)

    async def disable(request: web.Request) -> web.Response:
        event = request.match_info["event"]
        if event not in sb.agreement.webhooks:
            return replies.json({"error": f"no webhook for {event}"}, 404)
        hook = webhooks.disable(sb.agreement, event)
        assert hook is not None
        return replies.json(listed(hook))

    async def delete_one(request: web.Request) -> web.Response:
        if sb.agreement.webhooks.pop(request.match_info["event"], None) is None:
            return replies.json({"error": "no such webhook"}, 404)
        return web.Response(status=204)

    async def get_deliveries(request: web.Request) -> web.Response:
        event = request.rel_url.query.get("eventType")
        return replies.json([d.as_dict() for d in sb.firing.of(event)])

    async def clear_deliveries(_r: web.Request) -> web.Response:
        keep = [d for d in sb.firing.deliveries if d.status in ("queued", "sending")]
        sb.firing.deliveries.clear()
        sb.firing.deliveries.extend(keep)
        return web.Response(status=204)

    return [
        web.get("/admin/webhooks", get_all),
        web.post("/admin/webhooks", post_one),
        web.get("/admin/webhooks/deliveries", get_deliveries),
        web.delete("/admin/webhooks/deliveries", clear_deliveries),
        web.post("/admin/webhooks/{event}/disable", disable),
        web.delete("/admin/webhooks/{event}", delete_one),
    ]
