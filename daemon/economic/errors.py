"""The e-conomic client's own errors: nothing from aiohttp escapes ``daemon.economic``.

Every error carries the method, the path (no query string: filters may hold personal data,
and never the host), the HTTP status (0 when no answer came), e-conomic's error code and a
trimmed body. None carries request or response headers: their ``repr`` would leak the tokens.

``retryable`` says whether the same intent may be sent again (with the same Idempotency-Key);
``retry_after`` is the least number of seconds to wait first when the server or the budget said so.
"""

from __future__ import annotations

from collections.abc import Mapping

BODY_LIMIT = 2_000


def trim(body: str, limit: int = BODY_LIMIT) -> str:
    """The body cut to ``limit`` characters, marked when cut."""
    return body if len(body) <= limit else body[:limit] + "…[trimmed]"


class EconomicError(Exception):
    """Base of every error the client raises."""

    retryable: bool = False

    def __init__(self, message: str, *, method: str = "", path: str = "", status: int = 0,
                 code: str | None = None, body: str = "",
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.body = trim(body)
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f"{self.method} {self.path}".strip()
        status = f" -> {self.status}" if self.status else ""
        code = f" [{self.code}]" if self.code else ""
        return f"{where}{status}{code}: {self.message}" if where else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class RetryableError(EconomicError):
    """The intent may be sent again later; nothing says it was refused for good."""

    retryable = True


class RateLimited(RetryableError):
    """429: the agreement's bucket is empty; every call waits until ``retry_after`` has passed."""


class BudgetExhausted(RetryableError):
    """The daily fair-use budget (less the invoice reserve, for non-invoice calls) is spent."""


class ServerError(RetryableError):
    """5xx from e-conomic."""


class TransportError(RetryableError):
    """No usable answer: connection refused or reset, malformed response, or a dropped body.
    The request may or may not have been applied; retry with the same Idempotency-Key."""


class Timeout(TransportError):
    """No answer within the client's timeout; the outcome is unknown."""


class UnknownOutcome(RetryableError):
    """A write answered 2xx, so e-conomic applied it, but its body could not be read: what it
    created (numbers, vouchers) is unknown. Never a refusal: look the natural key up before
    writing again."""


class TerminalError(EconomicError):
    """e-conomic refused the request itself; sending it again unchanged fails the same way."""


class ValidationError(TerminalError):
    """400: ``fields`` maps a property path (``customerGroup``, ``lines[0].unitNetPrice``,
    ``name``, or ``""`` for the request as a whole) to e-conomic's messages for it."""

    def __init__(self, message: str, *, fields: Mapping[str, list[str]] | None = None,
                 method: str = "", path: str = "", status: int = 400, code: str | None = None,
                 body: str = "") -> None:
        super().__init__(message, method=method, path=path, status=status, code=code, body=body)
        self.fields: dict[str, list[str]] = {k: list(v) for k, v in (fields or {}).items()}

    def __str__(self) -> str:
        base = super().__str__()
        if not self.fields:
            return base
        detail = "; ".join(f"{k or '(request)'}: {' '.join(v)}" for k, v in self.fields.items())
        return f"{base} ({detail})"


class Unauthorized(TerminalError):
    """401: the token pair is missing, wrong or revoked."""


class Forbidden(TerminalError):
    """403: the app's role or the agreement does not allow this resource."""


class MissingModule(Forbidden):
    """403 ``AccessDeniedAgreementMissingModules``: e.g. the project module is not enabled."""


class NotFound(TerminalError):
    """404: the resource does not exist."""


class Conflict(TerminalError):
    """409: the ``objectVersion`` sent is stale; re-read and retry with the fresh one."""


class RequestRejected(TerminalError):
    """Any other 4xx (405, 413, 415, ...)."""


class Redirected(TerminalError):
    """3xx: e-conomic (or something in front of it) pointed elsewhere. Never followed: the
    tokens and the body would go to that place. ``location`` is where it pointed (scheme, host
    and path; the query is left out)."""

    def __init__(self, message: str, *, location: str, method: str = "", path: str = "",
                 status: int = 0, body: str = "") -> None:
        super().__init__(message, method=method, path=path, status=status, body=body)
        self.location = location


class ProtocolError(TerminalError):
    """A 2xx answer whose body does not have the shape the spec promises."""
