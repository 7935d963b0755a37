"""The kinds the reconciler manages, each described once by its spec, in dependency order.

Every part that iterates kinds (the controllers, the sweeps, ``plan``, the status counts, the
work queue) iterates :data:`SPECS`, so adding a kind is adding its spec here. Dependencies are
data in each spec (:attr:`daemon.reconcile.specs.Spec.depends_on`); :data:`SPECS` lists every
kind after the kinds it depends on, which is the order a pass takes them in, and importing this
module fails when that order is broken.
"""

from __future__ import annotations

from typing import Any, Final

from daemon.reconcile import customers, entries, expenses, payments, projects, specs

AnySpec = specs.Spec[Any, Any, Any]

SPECS: Final[tuple[AnySpec, ...]] = (customers.SPEC, projects.SPEC, entries.SPEC,
                                     expenses.SPEC, payments.SPEC)
BY_KIND: Final[dict[str, AnySpec]] = {s.kind: s for s in SPECS}
NAMES: Final[tuple[str, ...]] = tuple(BY_KIND)


def _check_order() -> None:
    seen: set[str] = set()
    for spec in SPECS:
        missing = [d.kind for d in spec.depends_on if d.kind not in seen]
        if missing:
            raise ImportError(f"kind {spec.kind} is listed before {', '.join(missing)}, which "
                              "it depends on")
        seen.add(spec.kind)


_check_order()


def spec(kind: str) -> AnySpec:
    """The spec of ``kind``; ValueError naming the kinds for an unknown one."""
    found = BY_KIND.get(kind)
    if found is None:
        raise ValueError(f"unknown kind {kind!r}: one of {', '.join(NAMES)}")
    return found
