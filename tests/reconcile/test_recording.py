"""The outcome recorder: a terminal refusal parks the item with a fresh intent for the content
its own ``WriteIntended`` recorded (not a hash recovered from a bulk call's key, which names
only the batch's first item)."""

from __future__ import annotations

import msgspec
import pytest

from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.economic.client import EconomicClient
from daemon.sandbox.economic import EconomicSandbox
from daemon.store.eventlog import EventLog
from tests.reconcile.conftest import OPTIONS, customer, invoice, pdf, reconciler, record

pytestmark = pytest.mark.anyio


async def test_a_refused_invoice_of_a_bulk_call_keeps_its_own_content_in_the_fresh_intent(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    good = invoice(41, 1, None, sha=await log.put_blob(pdf(41)))
    bad = invoice(43, 1, None, sha=await log.put_blob(pdf(43)), invoice_date="2001-03-01")
    await record(log, [customer(1), good, bad])
    rec = reconciler(log, client)
    rec.resync("customer", "1")
    rec.resync("invoice", "41")
    rec.resync("invoice", "43")
    await rec.step()
    st = log.tables.state("invoice", "43")
    assert st.parked and "accounting year" in st.reason
    intents = [r.event for r in await log.read_entity("invoice", "43")
               if isinstance(r.event, ev.WriteIntended) and r.event.action == "transfer"]
    mapped = mp.map_invoice(bad, OPTIONS).value
    assert mapped is not None
    # the entry as sent: with the VAT code its account (1010) books with in e-conomic
    own = mp.fields_hash(msgspec.structs.replace(mapped, contra_vat_code="U25"))
    assert len(intents) == 2  # the bulk call's, then the fresh one for the retry after a fix
    assert intents[0].idempotency_key != intents[1].idempotency_key
    assert [i.content_hash for i in intents] == [own, own]
    assert st.intents["transfer"] == intents[1].idempotency_key
