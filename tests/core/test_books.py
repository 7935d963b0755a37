"""The VAT, sign, currency and text rules of an invoice entry (daemon.core.books)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from daemon.core import books

BOOKS = books.Books(account_vat_codes={1010: "U25", 1020: "", 1030: "U0"},
                    vat_rates={"U25": Decimal("25"), "U0": Decimal("0"), "I25": Decimal("25")})


@pytest.mark.parametrize(("case", "account", "total", "vat", "parked"), [
    ("25 % on a 25 % account", 1010, "12500.00", "2500.00", False),
    ("0 on an account without VAT", 1020, "10000.00", "0", False),
    ("0 on a 0 % account", 1030, "10000.00", "0.00", False),
    ("exempt on a 25 % account", 1010, "10000.00", "0", True),
    ("25 % on an account without VAT", 1020, "12500.00", "2500.00", True),
    # 10,000 + 2,500 VAT at 25 % and 5,000 exempt: 2,500 of 17,500 matches no single rate
    ("mixed rates on one invoice", 1010, "17500.00", "2500.00", True),
    ("mixed rates on an account without VAT", 1020, "17500.00", "2500.00", True),
    # 1 % of 2,500 is 25.00: the edge of the tolerance
    ("just inside 1 %", 1010, "12500.00", "2525.00", False),
    ("just outside 1 %", 1010, "12500.00", "2525.01", True),
    ("just inside 1 % below", 1010, "12500.00", "2475.00", False),
    ("just outside 1 % below", 1010, "12500.00", "2474.99", True),
    # on a small invoice the 1.00 floor is the tolerance
    ("small, inside 1.00", 1010, "12.50", "3.50", False),
    ("small, outside 1.00", 1010, "12.50", "3.51", True),
    ("credit note 25 %", 1010, "-1250.00", "-250.00", False),
    ("credit note without VAT on a 25 % account", 1010, "-1250.00", "0", True),
])
def test_vat_cases(case: str, account: int, total: str, vat: str, parked: bool) -> None:
    chosen = books.vat_code(invoice=17, account=account, setting="", books=BOOKS)
    assert not chosen.problem
    problem = books.check_vat(invoice=17, account=account, code=chosen.code, books=BOOKS,
                              total=Decimal(total), moment_vat=vat, currency="DKK")
    assert bool(problem) == parked, case
    if parked:
        assert "invoice 17" in problem and f"account {account}" in problem
        assert f"{Decimal(vat):.2f} DKK" in problem  # Moment's amount
        if chosen.code:
            assert f"VAT code {chosen.code} at 25 %" in problem
        else:
            assert "no VAT code (0 %)" in problem


def test_the_parking_sentence_names_both_amounts() -> None:
    problem = books.check_vat(invoice=17, account=1010, code="U25", books=BOOKS,
                              total=Decimal("10000.00"), moment_vat="0", currency="DKK")
    assert "Moment's VAT is 0.00 DKK" in problem
    assert "account 1010 books with VAT code U25 at 25 %" in problem
    assert "2000.00 DKK of VAT" in problem


def test_the_vat_code_follows_the_setting_then_the_account() -> None:
    assert books.vat_code(invoice=1, account=1010, setting="", books=BOOKS).code == "U25"
    assert books.vat_code(invoice=1, account=1020, setting="", books=BOOKS).code == ""
    assert books.vat_code(invoice=1, account=1010, setting="none", books=BOOKS).code == ""
    assert books.vat_code(invoice=1, account=1020, setting="I25", books=BOOKS).code == "I25"
    unknown = books.vat_code(invoice=1, account=1010, setting="X99", books=BOOKS)
    assert "'X99' is not a VAT code" in unknown.problem
    missing = books.vat_code(invoice=1, account=4711, setting="", books=BOOKS)
    assert "account 4711 is not in e-conomic's chart" in missing.problem


def test_none_expects_no_vat() -> None:
    code = books.vat_code(invoice=1, account=1010, setting="none", books=BOOKS).code
    assert books.check_vat(invoice=1, account=1010, code=code, books=BOOKS,
                           total=Decimal("100"), moment_vat="0", currency="DKK") == ""
    assert books.check_vat(invoice=1, account=1010, code=code, books=BOOKS,
                           total=Decimal("125"), moment_vat="25", currency="DKK")


@pytest.mark.parametrize(("credit", "total", "parked"), [
    (False, "100", False), (True, "-100", False), (True, "100", True), (False, "-100", True),
    (False, "0", False), (True, "0", False)])
def test_a_sign_that_contradicts_is_credit_note_parks(credit: bool, total: str,
                                                      parked: bool) -> None:
    problem = books.check_sign(invoice=18, is_credit_note=credit, total=Decimal(total))
    assert bool(problem) == parked
    if parked:
        assert "invoice 18" in problem and "Moment" in problem


def test_exchange_rate() -> None:
    assert books.exchange_rate(currency="DKK", books=BOOKS, moment_rate="") == (None, "")
    assert books.exchange_rate(currency="EUR", books=BOOKS, moment_rate="745.80") == (
        Decimal("745.80"), "")
    rate, warning = books.exchange_rate(currency="EUR", books=BOOKS, moment_rate="")
    assert rate is None and "e-conomic's own rate" in warning
    sek = books.Books(account_vat_codes={}, vat_rates={}, base_currency="SEK")
    rate, warning = books.exchange_rate(currency="EUR", books=sek, moment_rate="745.80")
    assert rate is None and "base currency is SEK" in warning


def test_texts() -> None:
    assert books.entry_text(description="", number=17, is_credit_note=False,
                            language="da") == ("Faktura 17", False)
    assert books.entry_text(description=" ", number=18, is_credit_note=True,
                            language="da") == ("Kreditnota 18", False)
    assert books.entry_text(description="", number=17, is_credit_note=False,
                            language="en") == ("Invoice 17", False)
    assert books.entry_text(description="", number=18, is_credit_note=True,
                            language="en") == ("Credit note 18", False)
    text, was_cut = books.entry_text(description="x" * 300, number=1, is_credit_note=False,
                                     language="da")
    assert text == "x" * 250 and was_cut
