"""The client's filter builder: exact renderings, limits, and a property test that any value
survives the round trip through the sandbox's independent parser."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.economic import filters as f
from daemon.sandbox.economic_filters import Field, compile_filter


def test_renderings() -> None:
    assert str(f.eq("name", "A (b), c* $d [e]")) == "name$eq:A $(b$)$, c$* $$d [e]"
    assert str(f.like("name", "50%_[x]")) == "name$like:50[%][_][[]x[]]"
    assert str(f.like("name", "ab", match="prefix")) == "name$like:ab*"
    assert str(f.in_("name", ["a,b", "[c]"])) == "name$in:[a$,b,$[c$]]"
    assert str(f.eq("email", None)) == "email$eq:$null:"
    assert str(f.eq("barred", True)) == "barred$eq:true"
    when = dt.datetime(2026, 1, 2, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert str(f.gt("lastUpdated", when)) == "lastUpdated$gt:2026-01-02T03:05:06Z"
    assert str(f.lte("date", dt.date(2026, 3, 1))) == "date$lte:2026-03-01"
    both = (f.eq("a", 1) | f.eq("b", 2)) & f.eq("c", 3)
    assert str(both) == "(a$eq:1$or:b$eq:2)$and:c$eq:3"


def test_limits() -> None:
    f.in_("n", range(200))
    with pytest.raises(ValueError, match="at most 200"):
        f.in_("n", range(201))
    with pytest.raises(ValueError):
        f.in_("n", [])
    with pytest.raises(ValueError, match="field name"):
        f.eq("na$me", 1)
    assert [len(c) for c in f.chunks(range(450))] == [200, 200, 50]


FIELDS = {"name": Field("str"), "customerNumber": Field("int")}
names = st.text(alphabet=st.characters(codec="utf-8"),
                min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(target=names, other=names)
def test_any_value_round_trips_through_the_server_parser(target: str, other: str) -> None:
    records = [{"name": target, "customerNumber": 1}, {"name": other, "customerNumber": 2}]
    expect_eq = [1] + ([2] if other.casefold() == target.casefold() else [])
    eq = compile_filter(str(f.eq("name", target)), FIELDS)
    assert [r["customerNumber"] for r in records if eq(r)] == expect_eq
    like = compile_filter(str(f.like("name", target)), FIELDS)
    expect_like = [1] + ([2] if target.casefold() in other.casefold() else [])
    assert [r["customerNumber"] for r in records if like(r)] == expect_like
    either = compile_filter(str(f.eq("name", other) | f.in_("name", [target])), FIELDS)
    assert [r["customerNumber"] for r in records if either(r)] == [1, 2]
