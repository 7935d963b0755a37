"""What a controller works with during a pass: the log, the clients, the mapping options, the
work queue, the outcome recorder, the observer, the cached books (``chart``), and the bounds
of a pass.

One instance is shared by the controllers of one reconciler, so a configuration reload
(``options``) and the start of shutdown (``stopping``) reach every controller at once. Nothing
else lives here: sweeps, ``plan`` and the status counts take only what they read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from daemon.core import mapping as mp
from daemon.economic import charting
from daemon.economic.client import EconomicClient
from daemon.moment.client import MomentClient
from daemon.reconcile import observers
from daemon.reconcile.queueing import WorkQueue
from daemon.reconcile.recording import Recorder
from daemon.store.eventlog import EventLog


@dataclass
class Controls:
    log: EventLog
    client: EconomicClient
    options: mp.Options
    queue: WorkQueue
    outcomes: Recorder
    observer: observers.Observer
    max_in_flight: int = 8
    #: the Moment client the kinds that flow from e-conomic into Moment write with (None: a
    #: reconciler of e-conomic only; those kinds then wait)
    moment: MomentClient | None = None
    stopping: bool = False  # set on shutdown: start no new write, finish the ones in flight
    #: the agreement's books (accounts' VAT codes, rates, base currency), read once and
    #: forgotten at each full sweep
    chart: charting.Chart = field(init=False)

    def __post_init__(self) -> None:
        self.chart = charting.Chart(self.client)


class Controller(Protocol):
    """Reconciles a batch of queued keys of one kind (the work of one pass)."""

    async def reconcile(self, keys: Sequence[str]) -> None: ...
