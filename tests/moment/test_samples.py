"""The Moment sandbox's sample invoices (the demo's) book correctly against the e-conomic
sandbox's chart: each one's VAT is what its account's VAT code says, within the daemon's
tolerance (max(1.00, 1 %)), and the special cases are there."""

from __future__ import annotations

from decimal import Decimal

import pytest

from daemon.sandbox import economic_state
from daemon.sandbox import moment as moment_sandbox
from tests.moment.conftest import fake_clock


def expected_vat(account: str, total: Decimal) -> Decimal:
    """The VAT e-conomic's chart implies for ``total`` (incl. VAT) booked on ``account``."""
    chart = economic_state.seeded()
    code = chart.accounts[int(account)].get("vatAccount", {}).get("vatCode")
    rate = Decimal(str(chart.vat_accounts[code]["ratePercentage"])) if code else Decimal(0)
    return total * rate / (100 + rate)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sample_invoices_have_the_vat_of_their_accounts(seed: int) -> None:
    sb = moment_sandbox.MomentSandbox(now=fake_clock().utcnow)
    summary = sb.populate(customers=40, projects=25, invoices=30, seed=seed)
    booked = [i for i in sb.invoices.values() if i.status != "DRAFT"]
    assert len(booked) == summary.invoices - summary.drafts
    for i in booked:
        assert i.financial_account_number is not None
        want = expected_vat(i.financial_account_number, i.total_including_vat)
        assert abs(i.total_vat - want) <= max(Decimal("1.00"), abs(want) / 100), i
    exempt = [i for i in booked if i.financial_account_number == "1020"]
    assert [(i.total_vat, i.currency) for i in exempt] == [(Decimal("0.00"), "DKK")]
    foreign = [i for i in booked if i.currency != "DKK"]
    assert [(i.currency, str(i.exchange_rate)) for i in foreign] == [("EUR", "745.60")]
    assert all(i.exchange_rate is None for i in booked if i.currency == "DKK")
    notes = [i for i in booked if i.is_credit_note]
    assert notes and summary.credit_notes == len(notes)
    for note in notes:
        original = next(i for i in booked if i.invoice_number == note.credited_invoice_number)
        assert original.status == "CREDITED"
        assert note.total_including_vat == -original.total_including_vat < 0


@pytest.mark.parametrize(("budget", "made"), [(0, []), (1, ["1020/DKK"]),
                                              (3, ["1020/DKK", "1010/EUR", "1010/DKK"])])
def test_the_special_invoices_fit_the_count(budget: int, made: list[str]) -> None:
    sb = moment_sandbox.MomentSandbox(now=fake_clock().utcnow)
    summary = sb.populate(customers=2, projects=0, invoices=budget, seed=1)
    assert summary.invoices == budget == len(sb.invoices)
    got = [f"{i.financial_account_number}/{i.currency}" for i in sb.invoices.values()]
    assert got[:len(made)] == made
