"""Speaking HTTP to the daemon with the standard library only (no product code between a test
and what it checks): :func:`ask` over the status socket, :func:`fetch` to a loopback URL."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


def ask(path: Path, method: str, target: str, *, timeout: float = 15.0) -> Reply:
    """One HTTP/1.1 request over the Unix socket at ``path``."""
    conn = _UnixConnection(path, timeout)
    try:
        conn.request(method, target)
        response = conn.getresponse()
        return Reply(response.status, response.read(), response.getheader("Content-Type") or "")
    finally:
        conn.close()


def fetch(method: str, url: str, *, body: object = None,
         headers: Mapping[str, str] | None = None, timeout: float = 10.0) -> Reply:
    """One HTTP request to a loopback URL (a sandbox's admin surface, the webhook receiver);
    an error status is an answer, not an exception."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"loopback http only, not {url!r}")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback http, checked above
        url, method=method, data=data, headers={
            **({"Content-Type": "application/json"} if data is not None else {}),
            **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return Reply(answer.status, answer.read(), answer.headers.get("Content-Type", ""))
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, error.read(), error.headers.get("Content-Type", ""))
