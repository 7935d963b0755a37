"""The log's rows as its readers see them: :class:`Record` (one stored row), :class:`Committed`
(one committed event, as a consumer gets it), :class:`Appended` (what an append answers), and how
a row is read and a time written. Data and pure conversions only; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final, NamedTuple

import msgspec

from daemon.core import clocks
from daemon.core import events as ev


def iso(moment: datetime) -> str:
    """How the log writes a time: UTC, to the microsecond, with ``Z``."""
    return clocks.iso(moment, timespec="microseconds")


class Record(msgspec.Struct, frozen=True):
    """One row of the log. ``payload`` is the msgspec JSON; :attr:`event` decodes it."""

    seq: int
    type: str
    schema_version: int
    kind: str
    key: str
    idempotency_key: str
    occurred_at: str
    recorded_at: str
    payload: bytes

    @property
    def event(self) -> ev.Event:
        return ev.decode(self.payload)


class Committed(NamedTuple):
    """One committed event as a consumer sees it."""

    seq: int
    event: ev.Event


class Appended(msgspec.Struct, frozen=True):
    seq: int
    new: bool


COLUMNS: Final = ("seq, type, schema_version, entity_kind, entity_key, idempotency_key, "
                   "occurred_at, recorded_at, payload")


def to_record(row: Sequence[object]) -> Record:
    seq, type_, version, kind, key, ikey, occurred, recorded, payload = row
    return Record(int(seq), str(type_), int(version), str(kind), str(key),  # type: ignore[call-overload]
                  str(ikey), str(occurred), str(recorded), bytes(payload))  # type: ignore[call-overload]
