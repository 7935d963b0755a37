"""Reads the agreement's books once and keeps them: the VAT code of every account, the rate of
every VAT code, and the base currency (``GET /accounts``, ``GET /vat-accounts``, ``GET /self``).

:class:`Chart` answers :meth:`Chart.books` from its cache after the first read, so invoice
entries cost no extra calls each; :meth:`Chart.forget` makes the next answer a fresh read (the
full reconcile calls it, so a VAT code changed in e-conomic is seen within one full interval).
Concurrent first reads share one read. A read that fails raises the client's error and caches
nothing. Never writes to e-conomic.
"""

from __future__ import annotations

from decimal import Decimal

import anyio

from daemon.core import books
from daemon.economic import client as economic_client


class Chart:
    def __init__(self, client: economic_client.EconomicClient) -> None:
        self._client = client
        self._books: books.Books | None = None
        self._lock = anyio.Lock()

    def forget(self) -> None:
        """The next :meth:`books` reads e-conomic again."""
        self._books = None

    async def books(self) -> books.Books:
        """The cached books, read on first use (or after :meth:`forget`)."""
        async with self._lock:
            if self._books is None:
                self._books = await read(self._client)
            return self._books


async def read(client: economic_client.EconomicClient) -> books.Books:
    """The books as e-conomic holds them now (three paged reads)."""
    accounts = await client.accounts()
    vat_accounts = await client.vat_accounts()
    me = await client.get_self()
    base = me.settings.baseCurrency if me.settings and me.settings.baseCurrency else "DKK"
    return books.Books(
        account_vat_codes={a.accountNumber: (a.vatAccount.vatCode or "")
                           if a.vatAccount is not None else "" for a in accounts},
        vat_rates={v.vatCode: Decimal(str(v.ratePercentage or 0)) for v in vat_accounts},
        base_currency=base.upper(),
        vat_ledger=frozenset(ref.accountNumber for v in vat_accounts
                             for ref in (v.account, v.contraAccount)
                             if ref is not None and ref.accountNumber is not None))
