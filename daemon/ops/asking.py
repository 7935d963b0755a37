"""Asking the running daemon over its status socket: the CLI's side of the status socket.

``moment-sync status``, ``parked``, ``resync`` and ``plan`` use :class:`StatusClient`. It never
reads secrets or the configuration's secret files; it needs only the socket path.

Errors are owned here: no aiohttp exception escapes. :class:`DaemonNotRunning` when the socket
file is absent or nobody answers on it (the message names the path and how to check the
service); :class:`DaemonError` when the daemon answered with an error status (it carries the
status and the daemon's own sentence); :class:`DaemonUnreachable` for anything else that goes
wrong on the way (a timeout, a permission problem, a malformed answer).
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Final
from urllib.parse import quote

import aiohttp
import msgspec

from daemon.ops import providing

_BASE: Final = "http://localhost"
DEFAULT_TIMEOUT: Final = 30.0


class AskError(Exception):
    """Asking the daemon failed; the message is a sentence for the operator."""


class DaemonNotRunning(AskError):
    """No daemon answers on the socket."""


class DaemonUnreachable(AskError):
    """The socket is there but the conversation failed (permissions, timeout, bad answer)."""


class DaemonError(AskError):
    """The daemon answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Answer(msgspec.Struct, frozen=True):
    """One answer: its HTTP status and its body (JSON for every route but ``/metrics``)."""

    status: int
    body: bytes

    def json(self) -> object:
        """The body decoded as JSON; :class:`DaemonUnreachable` when it is not JSON."""
        try:
            return msgspec.json.decode(self.body)
        except msgspec.DecodeError:
            raise DaemonUnreachable("the daemon's answer is not JSON") from None


def _segment(key: str) -> str:
    """``key`` as one path segment: a ``/`` or ``?`` in it cannot reach another route."""
    return quote(key, safe="")


def _error_text(body: bytes, status: int) -> str:
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        decoded = None
    if isinstance(decoded, dict) and isinstance(decoded.get("error"), str):
        return str(decoded["error"])
    return f"the daemon answered HTTP {status}"


class StatusClient:
    """Requests to the status socket at ``path``; one connection per request, closed after it."""

    def __init__(self, path: Path | str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._path = Path(path)
        self._timeout = timeout

    @property
    def path(self) -> Path:
        return self._path

    def _denied(self) -> str:
        return (f"permission denied on {self._path}: run as root or as a member of the "
                "socket's group")

    async def request(self, method: str, target: str, *, accept_error: bool = False) -> Answer:
        """Send one request; raises :class:`DaemonError` on a 4xx/5xx unless ``accept_error``."""
        try:
            present = self._path.exists()
        except PermissionError:  # a directory on the way that we may not search (0750)
            raise DaemonUnreachable(self._denied()) from None
        if not present:
            raise DaemonNotRunning(
                f"no status socket at {self._path}: the daemon is not running "
                "(see systemctl status moment-sync)"
            )
        connector = aiohttp.UnixConnector(path=str(self._path), force_close=True)
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with (
                aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
                session.request(method, _BASE + target) as response,
            ):
                answer = Answer(status=response.status, body=await response.read())
        except aiohttp.ClientConnectorError as exc:
            code = exc.os_error.errno
            if code in (errno.ENOENT, errno.ECONNREFUSED):
                raise DaemonNotRunning(
                    f"nothing answers on {self._path}: the daemon is not running "
                    "(see systemctl status moment-sync)"
                ) from None
            if code in (errno.EACCES, errno.EPERM):
                raise DaemonUnreachable(self._denied()) from None
            raise DaemonUnreachable(f"cannot connect to {self._path}: {exc.strerror}") from None
        except TimeoutError:
            raise DaemonUnreachable(
                f"the daemon did not answer within {self._timeout:g}s on {self._path}"
            ) from None
        except aiohttp.ClientError as exc:
            raise DaemonUnreachable(
                f"the conversation with the daemon on {self._path} failed: "
                f"{type(exc).__name__}"
            ) from None
        if answer.status >= 400 and not accept_error:
            raise DaemonError(answer.status, _error_text(answer.body, answer.status))
        return answer

    async def status(self) -> bytes:
        """The raw ``GET /status`` JSON (``moment-sync status --json`` prints it as is)."""
        return (await self.request("GET", "/status")).body

    async def healthz(self) -> tuple[int, str]:
        """``(HTTP status, state)`` from ``GET /healthz``; a 503 is an answer, not an error."""
        answer = await self.request("GET", "/healthz", accept_error=True)
        document = answer.json()
        state = document.get("state") if isinstance(document, dict) else None
        return answer.status, state if isinstance(state, str) else ""

    async def metrics(self) -> bytes:
        return (await self.request("GET", "/metrics")).body

    async def entity(self, kind: providing.Kind, key: str) -> bytes:
        return (await self.request("GET", f"/entities/{kind}/{_segment(key)}")).body

    async def parked(self) -> bytes:
        return (await self.request("GET", "/parked")).body

    async def retry(self, kind: providing.Kind, key: str) -> bytes:
        return (await self.request("POST", f"/parked/{kind}/{_segment(key)}/retry")).body

    async def resync(self, kind: providing.Kind, key: str) -> bytes:
        return (await self.request("POST", f"/resync/{kind}/{_segment(key)}")).body

    async def reconcile(self) -> int:
        """Queue a full reconcile; how many keys were queued."""
        document = (await self.request("POST", "/reconcile")).json()
        queued = document.get("queued") if isinstance(document, dict) else None
        if not isinstance(queued, int):
            raise DaemonUnreachable("the daemon's answer to /reconcile has no count")
        return queued

    async def backfill_expenses(self, since: str) -> int:
        """Have the daemon read booked entries from ``since`` (YYYY-MM-DD) on; how many it
        recorded."""
        document = (await self.request("POST", f"/backfill/expenses?since={since}")).json()
        queued = document.get("queued") if isinstance(document, dict) else None
        if not isinstance(queued, int):
            raise DaemonUnreachable("the daemon's answer to /backfill/expenses has no count")
        return queued

    async def plan(self, kind: providing.Kind | None = None) -> bytes:
        """The raw plan JSON, as ``moment-sync plan --json`` prints it."""
        target = "/plan" if kind is None else f"/plan?kind={kind}"
        return (await self.request("GET", target)).body
