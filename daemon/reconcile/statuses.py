"""Status figures for ``GET /status``, read from the projections (no I/O, no e-conomic calls).

Per kind: ``desired`` (managed entities, not gone), ``parked``, ``in_sync`` (the log records
the current desired fields as applied; for an invoice: transferred, PDF attached or skipped,
booked, as configured) and ``pending`` (the rest). Strays as reported, never deleted.
"""

from __future__ import annotations

import datetime as dt

from daemon.core import mapping as mp
from daemon.core import projections as pj


def iso(posix: float | None) -> str | None:
    if posix is None:
        return None
    return dt.datetime.fromtimestamp(posix, dt.UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def _count(tables: pj.Tables, kind: str, hashes: dict[str, str | None]) -> dict[str, int]:
    out = {"desired": 0, "in_sync": 0, "pending": 0, "parked": 0}
    for key, want in hashes.items():
        out["desired"] += 1
        st = tables.state(kind, key)
        if st.parked:
            out["parked"] += 1
        elif want is not None and st.applied_hash == want:
            out["in_sync"] += 1
        else:
            out["pending"] += 1
    return out


def desired_hashes(tables: pj.Tables, options: mp.Options) -> dict[str, dict[str, str | None]]:
    """Per kind, key → the hash of its mapped desired fields (None: cannot be mapped)."""
    out: dict[str, dict[str, str | None]] = {"customer": {}, "project": {}, "invoice": {}}
    for key, c in tables.customers().items():
        if not c.gone:
            cm = mp.map_customer(c.fact, options).value
            out["customer"][key] = mp.fields_hash(cm) if cm else None
    for key, p in tables.projects().items():
        if not p.gone:
            pm = mp.map_project(p.fact, options).value
            out["project"][key] = mp.fields_hash(pm) if pm else None
    for key, i in tables.invoices().items():
        if not i.gone:
            im = mp.map_invoice(i.fact, options).value
            out["invoice"][key] = mp.fields_hash(im) if im else None
    return out


def entity_counts(tables: pj.Tables, options: mp.Options) -> dict[str, dict[str, int]]:
    return {kind: _count(tables, kind, hashes)
            for kind, hashes in desired_hashes(tables, options).items()}


def drift_repaired(tables: pj.Tables) -> int:
    return sum(st.drift_repaired for st in tables.states().values())


def strays(tables: pj.Tables) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for name, row in sorted(tables.daemon().items()):
        if name.startswith("stray:"):
            _prefix, kind, number = name.split(":", 2)
            out.append({"kind": kind, "number": int(number) if number.isdigit() else number,
                        "managed_key": row.extra.get("managed_key", ""), "note": row.value,
                        "reported_at": row.at})
    return out
