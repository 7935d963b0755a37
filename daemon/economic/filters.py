"""Filter expressions for e-conomic's ``filter`` query parameter, escaped by its rules.

Both API families share the syntax ``field$op:value`` joined by ``$and:``/``$or:`` with
parentheses for grouping. A :class:`Filter` renders to that text; values are escaped so that no
value can change the structure of the expression:

- ``$`` ``(`` ``)`` ``*`` ``,`` are escaped as ``$$ $( $) $* $,`` in every value;
- ``[``/``]`` are left alone in scalar operators (the server does not unescape ``$[`` there),
  escaped as ``$[ $]`` inside ``$in:``/``$nin:`` lists, and become ``[[]``/``[]]`` under
  ``$like:`` where brackets are SQL character classes; ``%`` and ``_`` likewise under ``$like:``;
- ``None`` is ``$null:``; datetimes are UTC ``YYYY-MM-DDTHH:MM:SSZ``; dates ``YYYY-MM-DD``.

A ``$in:`` list holds at most 200 values (the server refuses more); :func:`in_` raises before
sending such a request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

Scalar = str | int | float | bool | dt.date | dt.datetime | None
MAX_IN: Final = 200
_BASIC: Final = str.maketrans({"$": "$$", "(": "$(", ")": "$)", "*": "$*", ",": "$,"})
_LIST: Final = str.maketrans({"$": "$$", "(": "$(", ")": "$)", "*": "$*", ",": "$,",
                              "[": "$[", "]": "$]"})
_LIKE: Final = str.maketrans({"$": "$$", "(": "$(", ")": "$)", "*": "$*", ",": "$,",
                              "[": "[[]", "]": "[]]", "%": "[%]", "_": "[_]"})


def _render(value: Scalar, table: dict[int, str]) -> str:
    if value is None:
        return "$null:"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value.translate(table)


@dataclass(frozen=True, slots=True)
class Filter:
    """A rendered, already-escaped filter expression; combine with ``&`` and ``|``."""

    text: str
    compound: bool = False

    def __and__(self, other: Filter) -> Filter:
        return and_(self, other)

    def __or__(self, other: Filter) -> Filter:
        return or_(self, other)

    def __str__(self) -> str:
        return self.text


def _field(name: str) -> str:
    if not name or any(c in name for c in "$():,[]* "):
        raise ValueError(f"not a field name: {name!r}")
    return name


def _op(op: str, field: str, value: Scalar) -> Filter:
    return Filter(f"{_field(field)}${op}:{_render(value, _BASIC)}")


def eq(field: str, value: Scalar) -> Filter:
    return _op("eq", field, value)


def ne(field: str, value: Scalar) -> Filter:
    return _op("ne", field, value)


def gt(field: str, value: Scalar) -> Filter:
    return _op("gt", field, value)


def gte(field: str, value: Scalar) -> Filter:
    return _op("gte", field, value)


def lt(field: str, value: Scalar) -> Filter:
    return _op("lt", field, value)


def lte(field: str, value: Scalar) -> Filter:
    return _op("lte", field, value)


def like(field: str, text: str, *, match: Literal["contains", "prefix", "suffix"] = "contains"
         ) -> Filter:
    """``text`` matched literally: contained in, starting or ending the field's value."""
    body = text.translate(_LIKE)
    if match == "prefix":
        body = body + "*"
    elif match == "suffix":
        body = "*" + body
    return Filter(f"{_field(field)}$like:{body}")


def _list(op: str, field: str, values: Iterable[Scalar]) -> Filter:
    items = list(values)
    if not items:
        raise ValueError(f"${op}: needs at least one value")
    if len(items) > MAX_IN:
        raise ValueError(f"${op}: takes at most {MAX_IN} values, got {len(items)}")
    return Filter(f"{_field(field)}${op}:[{','.join(_render(v, _LIST) for v in items)}]")


def in_(field: str, values: Iterable[Scalar]) -> Filter:
    return _list("in", field, values)


def nin(field: str, values: Iterable[Scalar]) -> Filter:
    return _list("nin", field, values)


def _join(sep: str, parts: tuple[Filter, ...]) -> Filter:
    if not parts:
        raise ValueError("nothing to combine")
    if len(parts) == 1:
        return parts[0]
    return Filter(sep.join(f"({p.text})" if p.compound else p.text for p in parts), True)


def and_(*parts: Filter) -> Filter:
    return _join("$and:", parts)


def or_(*parts: Filter) -> Filter:
    return _join("$or:", parts)


def chunks(values: Iterable[Scalar], size: int = MAX_IN) -> Iterable[list[Scalar]]:
    """``values`` in lists of at most ``size`` (for ``$in:`` filters over many keys)."""
    batch: list[Scalar] = []
    for v in values:
        batch.append(v)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
