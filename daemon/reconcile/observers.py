"""The observer port: where the reconcile layer reports what a person or a dashboard should
hear of (an item parked, a PDF not attached, drift repaired, a booked invoice that differs from
e-conomic's booked entry). The app adapts :mod:`daemon.ops`
(alerts, metrics) to :class:`Observer`; tests pass their own or :class:`NullObserver`.

Guarantees: an observer is told only after the outcome it reports is durable in the log, and
through :class:`SafeObserver` its failures are logged and never reach the reconcile loop.
"""

from __future__ import annotations

import logging
from typing import Protocol

_log = logging.getLogger(__name__)


class Observer(Protocol):
    """Where alerts and metrics go (the app adapts :mod:`daemon.ops` to this)."""

    def parked(self, kind: str, key: str, reason: str) -> None: ...

    def pdf_skipped(self, invoice: str, reason: str) -> None: ...

    def drift_repaired(self, kind: str, key: str, fields: list[str]) -> None: ...

    def warned(self, kind: str, key: str, warning: str) -> None: ...

    def booked_mismatch(self, invoice: str, fields: list[str], note: str) -> None: ...


class SafeObserver:
    """Calls an observer and keeps its failures away from the reconcile loop."""

    def __init__(self, inner: Observer) -> None:
        self.inner = inner

    def parked(self, kind: str, key: str, reason: str) -> None:
        try:
            self.inner.parked(kind, key, reason)
        except Exception:
            _log.exception("observer failed on parked %s:%s", kind, key)

    def pdf_skipped(self, invoice: str, reason: str) -> None:
        try:
            self.inner.pdf_skipped(invoice, reason)
        except Exception:
            _log.exception("observer failed on pdf_skipped %s", invoice)

    def drift_repaired(self, kind: str, key: str, fields: list[str]) -> None:
        try:
            self.inner.drift_repaired(kind, key, fields)
        except Exception:
            _log.exception("observer failed on drift_repaired %s:%s", kind, key)

    def warned(self, kind: str, key: str, warning: str) -> None:
        try:
            self.inner.warned(kind, key, warning)
        except Exception:
            _log.exception("observer failed on warned %s:%s", kind, key)

    def booked_mismatch(self, invoice: str, fields: list[str], note: str) -> None:
        try:
            self.inner.booked_mismatch(invoice, fields, note)
        except Exception:
            _log.exception("observer failed on booked_mismatch %s", invoice)


class NullObserver:
    """Hears nothing: for commands that reconcile once (``resync``) and for tests."""

    def parked(self, kind: str, key: str, reason: str) -> None:
        del kind, key, reason

    def pdf_skipped(self, invoice: str, reason: str) -> None:
        del invoice, reason

    def drift_repaired(self, kind: str, key: str, fields: list[str]) -> None:
        del kind, key, fields

    def warned(self, kind: str, key: str, warning: str) -> None:
        del kind, key, warning

    def booked_mismatch(self, invoice: str, fields: list[str], note: str) -> None:
        del invoice, fields, note
