"""The Moment client's own errors: the only exceptions that leave ``daemon.moment``.

Hierarchy::

    MomentError
    ├── RetryableError          try again later, with backoff
    │   ├── RateLimited         429; ``retry_after`` seconds when Moment said so
    │   ├── ServerError         5xx (``retry_after`` too, when a 503 says so)
    │   ├── TransportError      connection refused or reset, timeout, truncated body
    │   └── UnknownOutcome      a write answered 2xx whose body cannot be read: applied,
    │                           with what result unknown; look it up before writing again
    └── TerminalError           retrying the same request cannot help
        ├── Unauthorized        401/403: the API key is wrong, expired or lacks rights
        ├── NotFound            404: Moment has no such object
        ├── RequestRejected     any other 4xx: the request itself is wrong
        └── BadResponse         2xx/3xx that is not what API.md promises (shape, type)
            └── Redirected      3xx: not followed (the key would go along); says where to

The classes follow the e-conomic client's (``daemon.economic.errors``): retryable, refused
(terminal), and unknown outcome. A write whose outcome is unknown, a
:class:`TransportError` or :class:`UnknownOutcome` on a POST or PUT, must be followed by a
lookup of its natural key (the ``externalId``, the payment status) before it is sent again.

Guarantees: every error names the method and the path (never the query's secrets: there are
none, the key travels in a header) and, for HTTP answers, the status; none keeps a reference
to a request, a response or their headers, so no ``repr`` or traceback can leak the API key.
A cause is chained only when it carries no headers (transport errors, decode errors).
"""

from __future__ import annotations


class MomentError(Exception):
    """Base of all Moment client errors; ``retryable`` says whether to try again later."""

    retryable: bool = False

    def __init__(self, message: str, *, method: str, path: str, status: int | None = None) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.status = status

    def __str__(self) -> str:
        where = f"{self.method} {self.path}"
        status = f" -> {self.status}" if self.status is not None else ""
        return f"{where}{status}: {self.args[0]}"


class RetryableError(MomentError):
    """Worth trying again; ``retry_after`` is Moment's ``Retry-After`` in seconds, if it sent
    one (a backoff never waits less than that)."""

    retryable = True

    def __init__(self, message: str, *, method: str, path: str, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, method=method, path=path, status=status)
        self.retry_after = retry_after


class RateLimited(RetryableError):
    """429 Too Many Requests."""


class ServerError(RetryableError):
    """Moment answered 5xx."""


class TransportError(RetryableError):
    """No complete HTTP answer: refused, reset, timed out, or the body was cut short."""


class UnknownOutcome(RetryableError):
    """A write answered 2xx, so Moment applied it, but its body could not be read: what it
    created (the expense's id) is unknown. Never a refusal: look it up before writing again."""


class TerminalError(MomentError):
    retryable = False


class Unauthorized(TerminalError):
    """401 or 403: the API key is wrong, expired, or its user lacks access to the company."""


class NotFound(TerminalError):
    """404: Moment has no object with this id (deleted, or never existed)."""


class RequestRejected(TerminalError):
    """A 4xx other than 401, 403, 404 and 429: Moment refused the request as made."""


class BadResponse(TerminalError):
    """An answer that does not match API.md: undecodable JSON, wrong shape, a redirect."""


class Redirected(BadResponse):
    """3xx: never followed, since the API key would go along; ``location`` is where it pointed
    (scheme, host and path; the query is left out)."""

    def __init__(self, message: str, *, location: str, method: str, path: str,
                 status: int | None = None) -> None:
        super().__init__(message, method=method, path=path, status=status)
        self.location = location
