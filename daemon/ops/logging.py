"""Logging setup with structlog: JSON lines (for journald) or a console view, never a secret.

Guarantees: every event dict passes :func:`scrub` last before rendering, which replaces values
of secret-looking keys and any registered secret value (wherever it appears in a string) with
``<redacted>``; tracebacks are rendered without local variables. Stdlib logging (aiohttp's) goes
through the same processors, and aiohttp's access log is off (webhook paths carry a token).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Final

import structlog

from daemon.core.secrets import REDACTED, Secret

_SECRET_KEYS: Final = re.compile(
    r"(token|secret|password|api[_-]?key|authorization|credential|cookie)", re.IGNORECASE)
_secret_values: set[str] = set()


def register_secret(secret: Secret) -> None:
    """Remember a secret's value so that it is scrubbed from any log line that carries it."""
    value = secret.reveal()
    if len(value) >= 4:
        _secret_values.add(value)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, Secret):
        return REDACTED
    if isinstance(value, str):
        for secret in _secret_values:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_KEYS.search(str(k)) else _scrub_value(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub_value(v) for v in value)
    return value


def scrub(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]
          ) -> MutableMapping[str, Any]:
    """structlog processor: redact secret keys and known secret values."""
    for key in list(event_dict):
        if _SECRET_KEYS.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub_value(event_dict[key])
    return event_dict


def configure(log_format: str = "json", *, level: int = logging.INFO,
              stream: Any = None) -> None:
    """Configure structlog and stdlib logging once for the process."""
    out = stream if stream is not None else sys.stderr
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if log_format == "console":
        renderer: Any = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback)
        exc: list[Any] = []
    else:
        renderer = structlog.processors.JSONRenderer()
        exc = [structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False))]
    structlog.configure(
        processors=[*shared, *exc, scrub, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared, processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta, *exc, scrub, renderer]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").disabled = True
