"""The cached chart: accounts' VAT codes, VAT rates and the base currency, read once."""

from __future__ import annotations

from decimal import Decimal

import pytest

from daemon.economic import charting, errors
from daemon.economic.client import EconomicClient
from daemon.sandbox.economic import EconomicSandbox

pytestmark = pytest.mark.anyio


async def test_the_chart_is_read_once_and_again_after_forget(
        sandbox: EconomicSandbox, client: EconomicClient) -> None:
    chart = charting.Chart(client)
    first = await chart.books()
    assert first.account_vat_codes[1010] == "U25"
    assert first.account_vat_codes[1020] == ""
    assert first.vat_rates["U25"] == Decimal("25")
    assert first.base_currency == "DKK"
    served = len(sandbox.served)
    assert served >= 3
    for _ in range(5):
        assert await chart.books() == first
    assert len(sandbox.served) == served  # cached: no call per invoice
    chart.forget()
    await chart.books()
    assert len(sandbox.served) > served


async def test_a_failed_read_caches_nothing(sandbox: EconomicSandbox,
                                            client: EconomicClient) -> None:
    chart = charting.Chart(client)
    sandbox.inject("500", 50)
    with pytest.raises(errors.EconomicError):
        await chart.books()
    sandbox.faults.scheduled.clear()
    assert (await chart.books()).account_vat_codes[1010] == "U25"
