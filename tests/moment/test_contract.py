"""The sandbox serves exactly the shapes of ``../shared/moment/API.md``, and the client's
Structs read them; the hint decoder refuses anything else with its own error only."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.moment import shapes
from daemon.sandbox import moment_data, moment_records
from tests.conftest import shared_or_skip
from tests.moment.conftest import fake_clock

MARKERS = {"Customer": "\nCustomer:\n", "Project": "\nProject:\n", "Invoice": "\nInvoice (",
           "Expense": "\nProject expense (", "Hint": "Example, invoice"}


def api_md_examples() -> dict[str, dict[str, object]]:
    """The JSON examples of API.md: the first JSON block after each marker."""
    text = shared_or_skip("moment", "API.md").read_text(encoding="utf-8")
    found: dict[str, dict[str, object]] = {}
    for name, marker in MARKERS.items():
        start = text.index("```json\n", text.index(marker)) + len("```json\n")
        found[name] = json.loads(text[start:text.index("```", start)])
    return found


def key_tree(value: object) -> object:
    """The keys of nested objects, with the values left out."""
    if isinstance(value, dict):
        return {k: key_tree(v) for k, v in value.items() if v is not None}
    return None


def populated() -> moment_data.MomentData:
    data = moment_data.MomentData(now=fake_clock().utcnow)
    customer = data.add_customer(name="Nordlys", organization_number="DK1", email="a@b.dk",
                                 street="Vestergade 12", postal_code="8000", city="Aarhus")
    project = data.add_project(name="Havnebadet", customer_id=customer.id)
    data.add_invoice(customer_id=customer.id, project_id=project.id, description="R",
                     total_excluding_vat="10000.00", finalize=True)
    return data


@pytest.mark.parametrize(("example", "kind"), [
    ("Customer", "customer"), ("Project", "project"), ("Invoice", "invoice")])
def test_sandbox_objects_have_exactly_the_keys_of_api_md(example: str,
                                                         kind: moment_records.Kind) -> None:
    expected = api_md_examples()[example]
    data = populated()
    (moment_id,) = data.select(kind)
    served = data.render(kind, moment_id)
    assert set(served) == set(expected)
    assert key_tree(served) == key_tree(expected)


@pytest.mark.parametrize(("example", "struct"), [
    ("Customer", shapes.Customer), ("Project", shapes.Project), ("Invoice", shapes.Invoice),
    ("Expense", shapes.ProjectExpense)])
def test_client_structs_know_every_field_of_api_md(example: str, struct: type[object]) -> None:
    raw = json.dumps(api_md_examples()[example]).encode()
    strict = msgspec.defstruct("Strict" + example, [], bases=(struct,),
                               forbid_unknown_fields=True)
    decoded = msgspec.json.decode(raw, type=strict)
    assert json.loads(msgspec.json.encode(decoded)) == {
        k: v for k, v in json.loads(raw).items()}


def test_invoice_example_and_hint_example_decode() -> None:
    invoice = msgspec.json.decode(json.dumps(api_md_examples()["Invoice"]).encode(),
                                  type=shapes.Invoice)
    assert invoice.is_fact and shapes.money(invoice.total_vat) == 2500
    hint = shapes.decode_hint(json.dumps(api_md_examples()["Hint"]).encode())
    assert isinstance(hint, shapes.InvoiceHint) and hint.moment_id == invoice.id


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_a_hint_or_a_hint_error(raw: bytes) -> None:
    try:
        hint = shapes.decode_hint(raw)
    except shapes.HintError as exc:
        assert str(exc)
    else:
        assert hint.moment_id >= 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**12) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["id", "event", "customer", "project", "invoice",
                                       "customerNumber", "projectNumber", "invoiceNumber",
                                       "x"]), children, max_size=4),
    max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_arbitrary_json_gives_a_hint_or_a_hint_error(value: object) -> None:
    try:
        hint = shapes.decode_hint(json.dumps(value).encode())
    except shapes.HintError as exc:
        assert str(exc)
    else:
        assert isinstance(value, dict) and hint.kind in value and hint.moment_id >= 1
