"""What Moment's answers mean, for :class:`~daemon.moment.client.MomentClient`: a non-2xx
status as the error it is (retryable or terminal, :func:`status_error`), a body decoded into
its shape (:func:`decode`; a write's answer that cannot be read is an unknown outcome,
:func:`decode_written`; a listed object that does not fit is
:class:`~daemon.moment.shapes.Unreadable`, :func:`listed`), aiohttp's failures as
:class:`~daemon.moment.errors.TransportError`, ``Retry-After``, and an invoice PDF's body as a
stream. Only :mod:`daemon.moment.errors` exceptions leave it; an error is chained to its cause
only when that cause holds no request or response headers (:func:`cause`).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import urllib.parse
from collections.abc import AsyncIterator
from typing import Final, Literal, TypeVar

import aiohttp
import msgspec

from daemon.moment import errors, shapes

ERROR_SNIPPET: Final = 200

R = TypeVar("R")


def parse_retry_after(value: str | None, now: dt.datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return max(0.0, (when - now).total_seconds())
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


class PdfStream:
    """The body of one PDF answer, read chunk by chunk: ``async for chunk in pdf``.

    ``content_length`` is Moment's ``Content-Length`` when it sent one. Iterating raises only
    :class:`~daemon.moment.errors.TransportError` (body cut short, timeout).
    """

    def __init__(self, response: aiohttp.ClientResponse, *, method: str, path: str,
                 chunk_size: int) -> None:
        self._response = response
        self._method = method
        self._path = path
        self._chunk_size = chunk_size
        self.content_length: int | None = response.content_length

    def __repr__(self) -> str:
        return f"<PdfStream {self._method} {self._path}>"

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(self._chunk_size):
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(exc, method=self._method, path=self._path) from cause(exc)


def cause(exc: BaseException) -> BaseException | None:
    """The exception to chain to, or None when it would carry request or response headers."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return None
    return exc


def transport_error(exc: BaseException, *, method: str, path: str) -> errors.TransportError:
    if isinstance(exc, TimeoutError):
        reason = "timed out"
    elif isinstance(exc, aiohttp.ClientResponseError):
        reason = f"{type(exc).__name__} (status {exc.status})"
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return errors.TransportError(reason, method=method, path=path)



async def read(response: aiohttp.ClientResponse, *, method: str, path: str) -> bytes:
    try:
        return await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise transport_error(exc, method=method, path=path) from cause(exc)

def status_error(response: aiohttp.ClientResponse, body: bytes, *, method: str, path: str,
                 now: dt.datetime) -> errors.MomentError:
    """The error a non-2xx answer is: retryable (429, 5xx, with ``Retry-After`` read as of
    ``now``) or terminal (refused, not found, a redirect, an unexpected status)."""
    status = response.status
    snippet = body[:ERROR_SNIPPET].decode("utf-8", "replace").strip()
    detail = f"{response.reason or 'HTTP ' + str(status)}" + (f": {snippet}" if snippet else "")
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
        kind = errors.RateLimited if status == 429 else errors.ServerError
        return kind(detail, method=method, path=path, status=status, retry_after=retry_after)
    if 300 <= status < 400:
        location = where(response.headers.get("Location"))
        return errors.Redirected(
            f"Moment answered with a redirect to {location}; it was not followed (the API key "
            f"would go with it): check [moment] api_url", location=location, method=method,
            path=path, status=status)
    if status in (401, 403):
        return errors.Unauthorized(detail, method=method, path=path, status=status)
    if status == 404:
        return errors.NotFound(detail, method=method, path=path, status=status)
    if 400 <= status < 500:
        return errors.RequestRejected(detail, method=method, path=path, status=status)
    return errors.BadResponse(f"unexpected status ({detail})", method=method, path=path,
                              status=status)


def decode(raw: bytes, kind: type[R], *, method: str, path: str) -> R:
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.DecodeError as exc:
        raise errors.BadResponse(f"answer does not match the expected shape: {exc}",
                                 method=method, path=path, status=200) from exc


def decode_written(raw: bytes, kind: type[R], *, method: str, path: str) -> R:
    """A write's answer; one that does not decode leaves what Moment did unknown."""
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.DecodeError as exc:
        raise errors.UnknownOutcome(
            f"Moment answered the write but its body cannot be read ({exc}): whether it "
            "was applied must be looked up", method=method, path=path, status=200) from exc


def listed(kind: Literal["customer", "project", "invoice"], raw: msgspec.Raw,
           shape: type[R]) -> R | shapes.Unreadable:
    """One object of a listed page: its shape, or :class:`~daemon.moment.shapes.Unreadable`
    (with its id when that much can be read) when it does not fit."""
    try:
        return msgspec.json.decode(raw, type=shape)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        try:
            moment_id = msgspec.json.decode(raw, type=shapes.ListedId).id
        except (msgspec.DecodeError, msgspec.ValidationError):
            moment_id = None
        usable = isinstance(moment_id, int) and not isinstance(moment_id, bool) \
            and 1 <= moment_id <= 2 ** 63 - 1
        return shapes.Unreadable(kind=kind, moment_id=moment_id if usable else None,  # type: ignore[arg-type]
                                 error=str(exc)[:ERROR_SNIPPET])


def where(location: str | None) -> str:
    """A ``Location`` as scheme, host and path (the query may hold anything: left out)."""
    if not location:
        return "nowhere (no Location header)"
    parts = urllib.parse.urlsplit(location)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path,
                                    "", ""))[:300] or "nowhere (an empty Location header)"
