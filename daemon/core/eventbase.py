"""The base of the event vocabulary (:mod:`daemon.core.events`): the version every stored row
records, the kinds of entity, and :class:`Event`, which every event type extends.
"""

from __future__ import annotations

from typing import ClassVar, Final, Literal

import msgspec

SCHEMA_VERSION: Final = 1

Kind = Literal["customer", "project", "invoice"]  # the kinds Moment has (its facts and hints)
KINDS: Final[tuple[Kind, ...]] = ("customer", "project", "invoice")
#: Every kind the daemon manages: Moment's, and those e-conomic's books bring into Moment.
ALL_KINDS: Final[tuple[str, ...]] = (*KINDS, "expense", "payment")


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag=str.lower):
    """Base of every event. Subclasses say which entity they are about."""

    entity_kind: ClassVar[str] = "daemon"

    @property
    def entity_key(self) -> str:
        return ""
