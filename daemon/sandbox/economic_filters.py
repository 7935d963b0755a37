"""The fake e-conomic's filter and sort language, as e-conomic documents and behaves.

``field$op:value`` with ``$eq $ne $gt $gte $lt $lte $like $in $nin``, joined by ``$and:`` and
``$or:`` (``$and:`` binds tighter), parentheses for grouping, escapes ``$$ $( $) $* $, $[ $]``,
``$null:``, ``$in:[a,b]`` of at most 200 values; strings compare case-insensitively; ``$like:``
without ``*`` means "contains", with ``*`` it is a wildcard, ``[...]`` a character class.
Sorting: ``sort=a,-b,~c`` (``-`` descending, ``~`` alphabetic).

Errors raise :class:`FilterError` with the message e-conomic gives; the caller shapes the body.
Written independently of the client's filter builder, on purpose.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

OPS = ("gte", "lte", "eq", "ne", "gt", "lt", "like", "in", "nin")
ESCAPABLE = "$()*,[]"
MAX_IN = 200


class FilterError(Exception):
    """A filter or sort the server refuses; ``message`` is e-conomic's wording."""

    def __init__(self, message: str, *, kind: str = "syntax") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind  # "syntax", "field", "operator", "array", "sort"


@dataclass(frozen=True)
class Field:
    """A filterable property: its type (int, float, str, bool, date, datetime) and operators."""

    type: str
    ops: frozenset[str] = frozenset(OPS)


Chars = list[tuple[str, bool]]  # (character, was escaped)


@dataclass
class Cond:
    field: str
    op: str
    values: list[Chars | None]  # None stands for $null:


@dataclass
class Group:
    kind: str  # "and" | "or"
    parts: list[Cond | Group]


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def parse(self) -> Cond | Group:
        node = self.disjunction(0)
        if self.i != len(self.s):
            raise FilterError(f"Syntax error at position {self.i}.")
        return node

    def disjunction(self, depth: int) -> Cond | Group:
        parts = [self.conjunction(depth)]
        while self.s.startswith("$or:", self.i):
            self.i += 4
            parts.append(self.conjunction(depth))
        return parts[0] if len(parts) == 1 else Group("or", parts)

    def conjunction(self, depth: int) -> Cond | Group:
        parts = [self.atom(depth)]
        while self.s.startswith("$and:", self.i):
            self.i += 5
            parts.append(self.atom(depth))
        return parts[0] if len(parts) == 1 else Group("and", parts)

    def atom(self, depth: int) -> Cond | Group:
        if self.s.startswith("(", self.i):
            self.i += 1
            node = self.disjunction(depth + 1)
            if not self.s.startswith(")", self.i):
                raise FilterError("Syntax error, expected: )")
            self.i += 1
            return node
        return self.cond(depth)

    def cond(self, depth: int) -> Cond:
        m = re.compile(r"([A-Za-z][A-Za-z0-9_.]*)\$([a-z]+):").match(self.s, self.i)
        if m is None or m.group(2) not in OPS:
            raise FilterError(f"Syntax error at position {self.i}.")
        self.i = m.end()
        field, op = m.group(1), m.group(2)
        if op in ("in", "nin"):
            if not self.s.startswith("[", self.i):
                raise FilterError("Syntax error, expected: [")
            self.i += 1
            values: list[Chars | None] = []
            while True:
                values.append(self.value(depth, in_list=True))
                if self.s.startswith(",", self.i):
                    self.i += 1
                    continue
                if self.s.startswith("]", self.i):
                    self.i += 1
                    break
                raise FilterError("Syntax error, expected: ]")
            if len(values) > MAX_IN:
                raise FilterError(
                    f"We only allow filtering on arrays with less than '{MAX_IN}' values. "
                    f"Your array has {len(values)} values.", kind="array")
            return Cond(field, op, values)
        return Cond(field, op, [self.value(depth, in_list=False)])

    def value(self, depth: int, *, in_list: bool) -> Chars | None:
        if self.s.startswith("$null:", self.i):
            self.i += 6
            return None
        out: Chars = []
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c == "$":
                if s.startswith("$and:", self.i) or s.startswith("$or:", self.i):
                    break
                if self.i + 1 < len(s) and s[self.i + 1] in ESCAPABLE:
                    out.append((s[self.i + 1], True))
                    self.i += 2
                    continue
                raise FilterError(f"Syntax error at position {self.i}.")
            if c == ")" and depth > 0:
                break
            if in_list and c in ",]":
                break
            out.append((c, False))
            self.i += 1
        return out


def parse(text: str) -> Cond | Group:
    return _Parser(text).parse()


def _plain(chars: Chars) -> str:
    return "".join(c for c, _ in chars)


def _like_regex(chars: Chars) -> re.Pattern[str]:
    wild = any(c == "*" and not esc for c, esc in chars)
    out: list[str] = []
    i = 0
    while i < len(chars):
        c, esc = chars[i]
        if c == "*" and not esc:
            out.append(".*")
        elif c == "[" and not esc:
            j = i + 1
            inner: list[str] = []
            # A class runs to the next ']' after at least one character ("[[]" is a literal "[").
            while j < len(chars) and not (chars[j][0] == "]" and inner):
                inner.append(chars[j][0])
                j += 1
            if j < len(chars):
                out.append("[" + "".join(re.escape(x.casefold()) for x in inner) + "]")
                i = j
            else:
                out.append(re.escape("["))
        else:
            out.append(re.escape(c.casefold()))
        i += 1
    body = "".join(out)
    return re.compile(("^" + body + "$") if wild else body, re.IGNORECASE | re.DOTALL)


def _dt(text: str) -> dt.datetime:
    t = text.strip().replace("Z", "+00:00")
    if len(t) == 10:
        t += "T00:00:00+00:00"
    v = dt.datetime.fromisoformat(t)
    return v if v.tzinfo else v.replace(tzinfo=dt.UTC)


def coerce(kind: str, raw: object) -> Any:
    """A record's or a filter's value as the comparable Python value of type ``kind``."""
    if raw is None:
        return None
    if kind == "int":
        return int(str(raw)) if not isinstance(raw, bool) else int(raw)
    if kind == "float":
        return float(str(raw))
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        s = str(raw).lower()
        if s not in ("true", "false"):
            raise ValueError(s)
        return s == "true"
    if kind in ("date", "datetime"):
        return _dt(str(raw))
    return str(raw).casefold()


def lookup(record: Mapping[str, Any], path: str) -> Any:
    node: Any = record
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def compile_filter(text: str, fields: Mapping[str, Field]
                   ) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate for ``text`` over records with ``fields``; raises :class:`FilterError`."""
    tree = parse(text)
    return _compile(tree, fields)


def _compile(node: Cond | Group, fields: Mapping[str, Field]
             ) -> Callable[[Mapping[str, Any]], bool]:
    if isinstance(node, Group):
        parts = [_compile(p, fields) for p in node.parts]
        if node.kind == "and":
            return lambda r: all(p(r) for p in parts)
        return lambda r: any(p(r) for p in parts)
    spec = fields.get(node.field)
    if spec is None:
        raise FilterError(f"Filtering is not allowed on property '{node.field}'.", kind="field")
    if node.op not in spec.ops:
        raise FilterError(f"Operator ${node.op}: not supported on property {node.field}",
                          kind="operator")
    path, kind = node.field, spec.type
    if node.op == "like":
        chars = node.values[0]
        if chars is None:
            raise FilterError("Syntax error: $like: needs a value.")
        rx = _like_regex(chars)
        return lambda r: (v := lookup(r, path)) is not None and \
            rx.search(str(v).casefold()) is not None
    try:
        values = [None if v is None else coerce(kind, _plain(v)) for v in node.values]
    except ValueError as exc:
        raise FilterError(f"Could not convert the value of '{node.field}' to {kind}.") from exc

    def get(r: Mapping[str, Any]) -> Any:
        raw = lookup(r, path)
        if raw is None and kind == "bool":
            return False  # booleans are omitted when false
        return coerce(kind, raw)

    op, want = node.op, values[0]
    if op in ("in", "nin"):
        members = set(values)
        return (lambda r: get(r) in members) if op == "in" else (lambda r: get(r) not in members)
    if op == "eq":
        return lambda r: get(r) == want
    if op == "ne":
        return lambda r: get(r) != want
    cmp: Callable[[Any, Any], bool] = {
        "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}[op]

    def ordered(r: Mapping[str, Any]) -> bool:
        v = get(r)
        return v is not None and want is not None and cmp(v, want)
    return ordered


def sort_records(records: list[dict[str, Any]], sort: str, sortable: Mapping[str, Field]
                 ) -> list[dict[str, Any]]:
    """``records`` sorted by ``sort`` (``a,-b,~c``); raises :class:`FilterError`."""
    keys: list[tuple[str, bool, bool]] = []
    for part in sort.split(","):
        part = part.strip()
        desc = alpha = False
        while part[:1] in ("-", "~"):
            desc |= part[0] == "-"
            alpha |= part[0] == "~"
            part = part[1:]
        if part not in sortable:
            raise FilterError("Could not parse query string sort parameter", kind="sort")
        keys.append((part, desc, alpha))
    out = list(records)
    for name, desc, alpha in reversed(keys):
        kind = "str" if alpha else sortable[name].type

        def key(r: Mapping[str, Any], name: str = name, kind: str = kind) -> tuple[bool, Any]:
            v = lookup(r, name)
            return (v is None, coerce(kind, v) if v is not None else 0)
        out.sort(key=key, reverse=desc)
    return out
