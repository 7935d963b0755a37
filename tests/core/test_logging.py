"""Logging: JSON lines or console, secrets scrubbed, tracebacks without local variables."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from daemon.core.secrets import Secret
from daemon.ops import logging as logsetup


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure() is process-wide: put structlog and the root logger back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("aiohttp.access").disabled = False


def _capture(fmt: str) -> io.StringIO:
    out = io.StringIO()
    logsetup.configure(fmt, stream=out)
    return out


def test_json_lines_scrub_secret_keys_and_values() -> None:
    out = _capture("json")
    token = Secret("tok-3f9a1c77-canary")
    logsetup.register_secret(token)
    log = structlog.get_logger("t")
    log.info("calling", url="http://x/webhooks/moment/tok-3f9a1c77-canary", api_key="abc",
             secret=token, nested={"password": "pw", "ok": "fine tok-3f9a1c77-canary"})
    logging.getLogger("aiohttp.server").error("bad request line GET /x/tok-3f9a1c77-canary")
    text = out.getvalue()
    assert "tok-3f9a1c77-canary" not in text and '"abc"' not in text and '"pw"' not in text
    first = json.loads(text.splitlines()[0])
    assert first["event"] == "calling" and first["api_key"] == "<redacted>"
    assert first["url"] == "http://x/webhooks/moment/<redacted>"
    assert first["nested"] == {"password": "<redacted>", "ok": "fine <redacted>"}
    assert "level" in first and "timestamp" in first


def test_tracebacks_carry_no_local_variables() -> None:
    out = _capture("json")

    def fail() -> None:
        local_secret = "do-not-show-this-local"  # noqa: F841 - the point of the test
        raise RuntimeError("boom")

    try:
        fail()
    except RuntimeError:
        structlog.get_logger("t").exception("failed")
    record = json.loads(out.getvalue().splitlines()[-1])
    assert "boom" in json.dumps(record["exception"])
    assert "do-not-show-this-local" not in out.getvalue()


def test_console_format_is_plain_text() -> None:
    out = _capture("console")
    structlog.get_logger("t").warning("hello", count=3)
    line = out.getvalue().strip()
    assert "hello" in line and "count=3" in line and not line.startswith("{")
