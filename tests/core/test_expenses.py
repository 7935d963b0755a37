"""Which booked entries are expenses, and what Moment's expense holds (pure)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from daemon.core import events as ev
from daemon.core import expenses as xp
from daemon.core import mapping as mp

ON = mp.Options(expenses=True, cost_types={2850: "Underleverandør"})


def fact(**kw: object) -> ev.BookedEntryRecorded:
    base: dict[str, object] = dict(
        entry_number=4711, entry_type=3, account_number=2750, account_type="profitAndLoss",
        project_number=1, amount=Decimal("1160.00"), currency="DKK",
        date="2026-11-18T00:00:00Z", text="Rejse Aarhus-København", vat_code="I25",
        vat_rate=Decimal(25), reverse_charge=False, voucher_number=33, customer_number=None,
        customer_invoice_number=None)
    base.update(kw)
    return xp.recorded(**base)  # type: ignore[arg-type]


def never(_year: str, _voucher: int) -> bool:
    return False


def test_a_cost_on_a_project_becomes_the_expense_moment_is_sent() -> None:
    f = fact()
    assert f.entity_key == "2026:4711" and not f.problem
    assert xp.not_an_expense(f, ON, own_vouchers=never, projects={"1"}) == ""
    mapped = xp.map_expense(f, ON)
    assert mapped.value == xp.ExpenseFields(
        entry_number=4711, external_id="economic:2026:entry:4711", project_number="1",
        description="Rejse Aarhus-København", amount_including_vat="1450.00", currency="DKK",
        date="2026-11-18", cost_type="Udlæg")


@pytest.mark.parametrize(("amount", "code", "rate", "reverse", "expected"), [
    ("1160.00", "I25", 25, False, "1450.00"),
    ("0.02", "I25", 25, False, "0.03"),       # 0.025 rounds half up
    ("-0.02", "I25", 25, False, "-0.03"),     # a credit rounds away from zero too
    ("99.99", "", None, False, "99.99"),      # no VAT code: the amount
    ("1000.00", "IEUY", 25, True, "1000.00"),  # reverse charge: no VAT was charged
    ("10.10", "I6", Decimal("6.5"), False, "10.76"),
])
def test_amount_including_vat_is_the_amount_plus_its_codes_rate_rounded_half_up(
        amount: str, code: str, rate: Decimal | int | None, reverse: bool,
        expected: str) -> None:
    f = fact(amount=Decimal(amount), vat_code=code,
             vat_rate=Decimal(rate) if rate is not None else None, reverse_charge=reverse)
    assert xp.amount_including_vat(f) == Decimal(expected)


def test_what_is_not_an_expense_says_why() -> None:
    def why(options: mp.Options = ON, own: bool = False, **kw: object) -> str:
        return xp.not_an_expense(fact(**kw), options, own_vouchers=lambda y, v: own,
                                 projects={"1"})

    assert why(entry_type=10) == "neither a supplier invoice nor a finance voucher"
    assert why(entry_type=2) == "neither a supplier invoice nor a finance voucher"
    assert why(customer_number=5) == "a customer entry"
    assert why(account_type="status") == "account 2750 is not a profit-and-loss account"
    accounts = mp.Options(expenses=True, expense_accounts=(2800,))
    assert why(accounts) == "account 2750 is not one of [expenses] accounts"
    assert why(accounts, account_number=2800, account_type="status") == ""
    assert why(own=True) == "voucher 33 is one of the daemon's own invoices"
    assert why(project_number=None) == "on no project"
    assert why(project_number=7) == "project 7 is not in Moment"


@pytest.mark.parametrize(("kw", "words"), [
    ({"amount": "tolv"}, "its amount 'tolv' is not an amount"),
    ({"amount": None}, "its amount None is not an amount"),
    ({"amount": 1.5}, "its amount 1.5 is not an amount"),  # a float never becomes money
    ({"date": "2026-13-40"}, "its date '2026-13-40' is not a date"),
    ({"date": None}, "its date None is not a date"),
    ({"project_number": 10**12}, "its project number 1000000000000 is not a project number"),
    ({"project_number": "1"}, "its project number '1' is not a project number"),
    ({"unreadable": "Expected `int`"}, "does not read as e-conomic specifies"),
])
def test_an_entry_that_does_not_parse_is_recorded_with_a_sentence(
        kw: dict[str, object], words: str) -> None:
    f = fact(**kw)
    assert words in f.problem and f.problem.startswith("booked entry 4711 cannot become")
    assert xp.not_an_expense(f, ON, own_vouchers=never, projects={"1"}) == f.problem
    if "date" in kw:
        assert f.year == xp.NO_YEAR


def test_keys_are_year_and_entry() -> None:
    assert xp.parse_key("2026:4711") == ("2026", 4711)
    for bad in ("2026", "26:1", "2026:", "2026:x", "２０２６:1", "2026:1:2", ":1"):
        assert xp.parse_key(bad) is None


def test_texts_cost_types_and_currency() -> None:
    f = fact(text="  ", account_number=2850, currency="eur")
    value = xp.map_expense(f, ON).value
    assert value is not None
    assert (value.description, value.cost_type, value.currency) == ("Bilag 33",
                                                                    "Underleverandør", "EUR")
    long = xp.map_expense(fact(text="x" * 300), ON)
    assert long.value is not None and len(long.value.description) == 250 and long.warnings
