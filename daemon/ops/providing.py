"""What the status socket asks the running daemon: the :class:`StatusProvider` port.

The status server (:mod:`daemon.ops.statusserver`) owns HTTP, validation and error answers; the
daemon owns the answers themselves. The daemon implements :class:`StatusProvider` once, over its
event log, projections, work queue and reconcilers, and hands it to the server.

Contract for implementers:

- Every method returns JSON-able data: the typed documents of :mod:`daemon.core.reports`
  where the contract has one (``status``, ``parked``), else plain ``dict``/``list``/``str``/
  ``int``/``float``/``bool``/``None`` or anything :func:`msgspec.json.encode` encodes. The server
  encodes what it gets and changes nothing.
- ``kind`` is already validated (one of :data:`daemon.core.events.ALL_KINDS`) and ``key`` is a
  Moment number (an expense's ``YEAR:ENTRY``) that passed :func:`valid_key` when a method is
  called; implementers need not
  check them again.
- ``None``/``False`` mean "no such entity" / "nothing to do for this entity" and become a 404
  that says so; an exception becomes a 500 ``{"error": "internal error"}`` and is logged, and
  never stops the server.
- Methods must not block the event loop; they may await the store.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Final, Protocol, TypeAlias, runtime_checkable

from daemon.core import events as ev
from daemon.core import reports

Kind: TypeAlias = str  # one of :data:`daemon.core.events.ALL_KINDS`

#: The states ``GET /healthz`` knows: the first two answer 200, the others 503.
HEALTHY_STATES: Final = frozenset({"running", "degraded"})
STATES: Final = frozenset({"starting", "running", "degraded", "stopping"})

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def valid_key(key: str) -> bool:
    """A Moment number (or an expense's ``YEAR:ENTRY``) as a path segment: 1-64 letters,
    digits, ``.``, ``_``, ``-`` or ``:``."""
    return _KEY.match(key) is not None


def as_kind(text: str) -> Kind | None:
    """``text`` as a :data:`Kind`, or ``None`` when it is not one."""
    for kind in ev.ALL_KINDS:
        if text == kind:
            return kind
    return None


@runtime_checkable
class StatusProvider(Protocol):
    """The daemon's answers to the status socket (see the module docstring for the contract)."""

    async def status(self) -> reports.StatusReport:
        """The ``GET /status`` document, shaped as DESIGN.md's Status socket section shows."""
        ...

    async def state(self) -> str:
        """One of :data:`STATES`: ``starting``, ``running``, ``degraded`` or ``stopping``."""
        ...

    async def entity(self, kind: Kind, key: str) -> Mapping[str, object] | None:
        """Desired state, last seen live state, e-conomic ids and event history; ``None`` if
        the log has never heard of the entity."""
        ...

    async def parked(self) -> Sequence[reports.ParkedItem]:
        """Parked items: ``{"kind", "key", "reason", "attempts", "last_error", "parked_at"}``."""
        ...

    async def retry(self, kind: Kind, key: str) -> bool:
        """Un-park the item and queue it; ``False`` when it is not parked."""
        ...

    async def resync(self, kind: Kind, key: str) -> bool:
        """Re-fetch from Moment and reconcile now; ``False`` when the daemon cannot find the
        entity (not in the log and not found by a scan)."""
        ...

    async def reconcile(self) -> int:
        """Queue a full reconcile; returns how many keys were queued once they are queued."""
        ...

    async def backfill_expenses(self, since: dt.date) -> int:
        """Read booked entries dated ``since`` on and queue the expenses Moment lacks; returns
        how many entries were recorded. ValueError (a 409) when expenses are off; an
        e-conomic error becomes a 502."""
        ...

    async def plan(self, kind: Kind | None) -> Mapping[str, object]:
        """What ``moment-sync plan --json`` prints, for one kind or (``None``) all of them."""
        ...


@runtime_checkable
class MetricsSource(Protocol):
    """Renders ``GET /metrics`` in Prometheus text; :class:`daemon.ops.metrics.Metrics` is one."""

    content_type: str

    def render(self) -> bytes: ...
