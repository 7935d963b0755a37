"""Whose calls a client is making: the component a task works for, and a count by component of
the calls that wait for their turn or are in flight.

The watchdog excuses a component while its own calls wait on a rate limit or on a slow service
(DESIGN.md, Limits survive restarts: waiting is progress, a wedge is not), and only its own: a
wait of one component must not hide another that is wedged. Each client's limiter keeps a
:class:`Calls` and counts every call under :data:`CALLER` from before it waits until it is
answered; a component's task sets :data:`CALLER` once, and the tasks it starts inherit it.

Invariants: :meth:`Calls.busy` is true for a caller exactly while one of its calls has entered
and not left; a caller that never set :data:`CALLER` is ``""`` and excuses no named component.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
from collections.abc import Iterator
from typing import Final

#: The component whose task makes the calls (``"reconcile"``, ``"preflight"``); ``""`` when
#: none said. One variable for every client, so a component names itself once for all of them.
CALLER: Final[contextvars.ContextVar[str]] = contextvars.ContextVar("caller", default="")


class Calls:
    """Calls waiting or in flight, counted by :data:`CALLER`."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: collections.Counter[str] = collections.Counter()

    def enter(self) -> str:
        """A call of the current caller starts waiting; returns that caller, for :meth:`leave`."""
        caller = CALLER.get()
        self._open[caller] += 1
        return caller

    @contextlib.contextmanager
    def entering(self) -> Iterator[str]:
        """:meth:`enter` for the block (a limiter's wait for its turn), and :meth:`leave` when
        it raises: a call that never got its turn is not waiting any more. When the block
        ends normally the call stays counted until the limiter's release leaves."""
        caller = self.enter()
        try:
            yield caller
        except BaseException:
            self.leave(caller)
            raise

    def leave(self, caller: str) -> None:
        """The call :meth:`enter` counted for ``caller`` is answered, failed or cancelled."""
        left = self._open[caller] - 1
        if left < 0:
            raise RuntimeError(f"a call of {caller!r} left that never entered")
        if left:
            self._open[caller] = left
        else:
            del self._open[caller]

    def busy(self, caller: str) -> bool:
        """Calls of ``caller`` wait for their turn (a slot, the pace, a Retry-After pause) or are
        in flight: each ends by itself (a pause at its end, a call at its timeout)."""
        return self._open[caller] > 0
