"""Deterministic sample data for the Moment sandbox (the demo and the benches).

:func:`populate` adds N customers, M projects and K invoices to a :class:`MomentData`. The
same seed on an empty company with the same clock gives the same objects, ids and numbers.
Invoices are a realistic mix whose VAT matches the account they are booked on (the e-conomic
sandbox's chart: 1010 books with 25 % VAT, 1020 with none): first :data:`SPECIALS` (an exempt
invoice on 1020, a EUR invoice with an exchange rate, and an invoice with its credit note),
then mostly finalized 25 % invoices on 1010, some drafts (never facts), and a few credited ones,
each with its own credit note (credit notes are counted in K).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import random
from typing import Final

from daemon.sandbox import moment_data, moment_records

_PREFIXES: Final = ("Nordlys", "Havblik", "Fjordvej", "Skovly", "Bakkedal", "Stjerne", "Engholm",
                    "Kystlys", "Lyngby", "Møllegård", "Solsikke", "Vestervig", "Østerled")
_TRADES: Final = ("Arkitekter", "Ingeniører", "Rådgivning", "Byg", "Design", "Landskab",
                  "Consult", "Tegnestue", "Installation", "Energi")
_FORMS: Final = ("ApS", "A/S", "I/S", "IVS")
_CITIES: Final = (("8000", "Aarhus"), ("1050", "København K"), ("5000", "Odense C"),
                  ("9000", "Aalborg"), ("6700", "Esbjerg"), ("7100", "Vejle"))
_STREETS: Final = ("Vestergade", "Søndergade", "Havnegade", "Skolevej", "Kirkevej", "Strandvejen")
_WORK: Final = ("Havnebadet", "Skolen", "Rådhuset", "Biblioteket", "Boligblok", "Broen",
                "Idrætshallen", "Kontorhuset")
_PHASES: Final = ("fase 1", "fase 2", "projektering", "udbud", "tilsyn", "forprojekt")
#: The invoices every sample company starts with (as far as K allows), in this order.
SPECIALS: Final = ("exempt on 1020", "EUR at 745.60", "credited", "credit note")
EXEMPT_ACCOUNT: Final = "1020"
EUR_RATE: Final = "745.60"
_MONTHS: Final = ("januar", "februar", "marts", "april", "maj", "juni", "juli", "august",
                  "september", "oktober", "november", "december")


@dataclasses.dataclass(frozen=True)
class SampleSummary:
    customers: int
    projects: int
    invoices: int
    drafts: int
    credit_notes: int


def populate(data: moment_data.MomentData, *, customers: int, projects: int, invoices: int,
             seed: int = 1) -> SampleSummary:
    """Add the objects; ``projects`` or ``invoices`` need at least one customer.

    Of the invoices about 10 % stay drafts and about 5 % are credited (each credit adds a
    credit note, counted among ``invoices``); the rest are finalized.
    """
    if min(customers, projects, invoices) < 0:
        raise ValueError("counts must not be negative")
    if customers == 0 and (projects or invoices):
        raise ValueError("projects and invoices need at least one customer")
    rng = random.Random(seed)
    customer_ids: list[int] = []
    for index in range(customers):
        postal, city = rng.choice(_CITIES)
        name = f"{rng.choice(_PREFIXES)} {rng.choice(_TRADES)} {rng.choice(_FORMS)}"
        record = data.add_customer(
            name=name, organization_number=f"DK{rng.randrange(10_000_000, 99_999_999)}",
            email=f"bogholderi{index + 1}@example.dk",
            street=f"{rng.choice(_STREETS)} {rng.randrange(1, 200)}",
            postal_code=postal, city=city, country_code="DK", vat_code="DK")
        customer_ids.append(record.id)
    project_ids: list[int] = []
    for _ in range(projects):
        project = data.add_project(name=f"{rng.choice(_WORK)}, {rng.choice(_PHASES)}",
                                   customer_id=rng.choice(customer_ids))
        project_ids.append(project.id)
    made, notes = _specials(data, customer_ids, budget=invoices)
    drafts = 0
    while made < invoices:
        if project_ids and rng.random() < 0.8:
            chosen = data.projects[rng.choice(project_ids)]
            customer_id, project_id = chosen.customer_id, chosen.id
        else:
            customer_id, project_id = rng.choice(customer_ids), None
        amount = decimal.Decimal(rng.randrange(500, 250_000)) * 10
        month = rng.randrange(12)
        invoice_date = dt.date(2026, month + 1, rng.randrange(1, 28))
        draft = data.add_invoice(
            customer_id=customer_id, project_id=project_id,
            description=f"Rådgivning {_MONTHS[month]}",
            total_excluding_vat=(amount / 100).quantize(moment_records.CENT),
            invoice_date=invoice_date, due_date=invoice_date + dt.timedelta(days=14))
        made += 1
        roll = rng.random()
        if roll < 0.10:
            drafts += 1
            continue
        data.finalize_invoice(draft.id)
        if roll > 0.95 and made < invoices:
            data.credit_invoice(draft.id)
            made += 1
            notes += 1
    return SampleSummary(customers=customers, projects=projects, invoices=made, drafts=drafts,
                         credit_notes=notes)


def _specials(data: moment_data.MomentData, customer_ids: list[int], *,
              budget: int) -> tuple[int, int]:
    """Finalize the first of :data:`SPECIALS` that fit in ``budget`` invoices; returns how
    many invoices and how many credit notes were made."""
    if budget < 1:
        return 0, 0
    first = customer_ids[0]
    day = dt.date(2026, 1, 15)
    due = day + dt.timedelta(days=14)
    data.add_invoice(customer_id=first, description="Undervisning, momsfri",
                     total_excluding_vat="4000.00", total_vat="0.00", invoice_date=day,
                     due_date=due, financial_account_number=EXEMPT_ACCOUNT, finalize=True)
    if budget < 2:
        return 1, 0
    data.add_invoice(customer_id=customer_ids[-1], description="Rådgivning, betalt i euro",
                     total_excluding_vat="1200.00", currency="EUR", exchange_rate=EUR_RATE,
                     invoice_date=day, due_date=due, finalize=True)
    if budget < 4:  # an invoice and its credit note come together
        return 2, 0
    credited = data.add_invoice(customer_id=first, description="Rådgivning januar",
                                total_excluding_vat="2000.00", invoice_date=day,
                                due_date=due, finalize=True)
    data.credit_invoice(credited.id)
    return 4, 1
