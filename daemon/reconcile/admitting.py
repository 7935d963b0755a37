"""The start of every controller's pass: which queued keys go ahead now.

A key goes ahead when its kind's spec maps it (a mapping problem parks it with the sentence),
it is not parked, and every kind it depends on (the spec's ``depends_on``, data) is in
e-conomic, or is an optional dependency that is parked and the item goes without (an invoice
without its project: recorded once as ``WentWithout`` and alerted as a warning). An item whose
dependency is not there yet waits under it in the queue (and the dependency is queued when
Moment has it); an item whose dependency is parked is parked with the dependency's reason, and
goes again when the dependency is retried.

Guarantees: writes nothing to e-conomic; the only events recorded are ``Parked`` and
``WentWithout``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from daemon.core import events as ev
from daemon.core import expenses as xp
from daemon.core import mapping as mp
from daemon.core import payments as pay
from daemon.reconcile import kinds, reasons, specs
from daemon.reconcile.controls import Controls

F = TypeVar("F", bound=ev.Event)
D = TypeVar("D", bound=mp.CustomerFields | mp.ProjectFields | mp.InvoiceEntry
            | pay.PaymentFields | xp.ExpenseFields)


async def admit(controls: Controls, spec: specs.Spec[F, D, Any],
                keys: Sequence[str]) -> list[specs.Item[F, D]]:
    """The items of ``keys`` that go ahead now, in the order given."""
    out: list[specs.Item[F, D]] = []
    tables = controls.log.tables
    for key in keys:
        item = spec.item(tables, controls.options, key)
        if item is None or item.state.parked:
            continue
        if item.desired is None:
            await controls.outcomes.park(spec.kind, key, reason=item.mapped.problem)
            continue
        skipped = {w.dependency for w in item.without}
        if await blocked(controls, spec.kind, key,
                         [(d.kind, d.key(item.fact)) for d in spec.depends_on
                          if f"{d.kind}:{d.key(item.fact)}" not in skipped]):
            continue
        await went_without(controls, spec.kind, key, item.without)
        out.append(item)
    return out


async def went_without(controls: Controls, kind: str, item_key: str,
                       without: Sequence[specs.Without]) -> None:
    """Record (once) and alert that the item goes ahead without these parked dependencies."""
    state = controls.log.tables.state(kind, item_key)
    for w in without:
        if w.dependency in state.without:
            continue
        await controls.log.append(
            ev.WentWithout(kind=kind, key=item_key, dependency=w.dependency, warning=w.warning),
            idempotency_key=f"without:{kind}:{item_key}:{w.dependency}")
        controls.observer.warned(kind, item_key, w.warning)


async def blocked(controls: Controls, kind: str, key: str,
                  dependencies: Sequence[tuple[str, str]]) -> bool:
    """True when ``kind:key`` cannot go yet because one of its dependencies is not in
    e-conomic (not applied, or not even known from Moment yet): it waits under the first such
    dependency, or parks with the dependency's reason when that is parked."""
    tables = controls.log.tables
    for dep_kind, dep_key in dependencies:
        if not dep_key:
            continue
        row = kinds.spec(dep_kind).rows(tables).get(dep_key)
        if row is not None and row.gone:
            continue  # no longer managed: e-conomic decides whether it exists
        dep = tables.state(dep_kind, dep_key)
        if dep.parked:
            await controls.outcomes.park(kind, key,
                                         reason=reasons.waiting_for(dep_kind, dep_key, dep.reason),
                                         last_error=f"waiting on {dep_kind}:{dep_key}")
            return True
        if not dep.applied_hash:
            controls.queue.wait_on((dep_kind, dep_key), (kind, key))
            if row is not None and not controls.queue.queued(dep_kind, dep_key):
                controls.queue.add(dep_kind, dep_key)
            return True
    return False
