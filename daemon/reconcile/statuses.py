"""Status figures for ``GET /status``, read from the projections (no I/O, no e-conomic calls).

Per kind (every spec of :data:`daemon.reconcile.kinds.SPECS` the configuration has on):
``desired`` (managed entities, not gone), ``parked``, ``in_sync`` (the log records the current
desired fields as applied; for an invoice: transferred, PDF attached or skipped, booked, as
configured) and ``pending`` (the rest). Strays as reported, never deleted; booked invoices
reported as differing.
"""

from __future__ import annotations

from daemon.core import mapping as mp
from daemon.core import plans, reports
from daemon.core import projections as pj
from daemon.core import rows as rw
from daemon.reconcile import kinds


def entity_counts(tables: pj.Tables, options: mp.Options) -> dict[str, reports.EntityCounts]:
    out: dict[str, reports.EntityCounts] = {}
    for spec in kinds.SPECS:
        if not spec.enabled(options):
            continue
        counts = {"desired": 0, "in_sync": 0, "pending": 0, "parked": 0}
        for item in spec.items(tables, options):
            counts["desired"] += 1
            if item.state.parked:
                counts["parked"] += 1
            elif item.in_sync:
                counts["in_sync"] += 1
            else:
                counts["pending"] += 1
        out[spec.kind] = reports.EntityCounts(**counts)
    return out


def drift_repaired(tables: pj.Tables) -> int:
    return sum(st.drift_repaired for st in tables.states().values())


def strays(tables: pj.Tables) -> list[plans.PlanStray]:
    """The strays reported so far (``StrayReported``), by kind and number."""
    out: list[plans.PlanStray] = []
    for name, row in sorted(tables.daemon().items()):
        if name.startswith("stray:"):
            _prefix, kind, number = name.split(":", 2)
            out.append(plans.PlanStray(kind=kind,
                                       number=int(number) if number.isdigit() else number,
                                       managed_key=row.extra.get("managed_key", ""),
                                       note=row.value, reported_at=row.at))
    return out


def booked_mismatches(tables: pj.Tables) -> list[reports.BookedMismatch]:
    """The booked invoices last reported as differing (``BookedMismatch``), by number."""
    out = [reports.BookedMismatch(
        number=st.economic_number if st.economic_number is not None else int(st.key),
        fields=list(st.mismatch_fields), note=st.mismatch)
        for st in tables.states().values()
        if st.kind == "invoice" and st.mismatch and (st.economic_number is not None
                                                      or st.key.isdigit())]
    return sorted(out, key=lambda m: m.number)


def last_hint_at(tables: pj.Tables) -> str | None:
    """When the last e-conomic webhook delivery was recorded (None: never)."""
    row = tables.daemon().get(rw.LAST_ECONOMIC_HINT)
    return row.at if row is not None else None
