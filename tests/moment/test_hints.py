"""The strict webhook hint decoder: every valid shape in, every bad body out with a message."""

from __future__ import annotations

import json

import msgspec
import pytest

from daemon.moment import shapes

CUSTOMER = {"id": 62788973, "customerNumber": "10001"}
PROJECT = {"id": 62788980, "projectNumber": "1"}


def body(value: object) -> bytes:
    return json.dumps(value).encode()


def test_customer_hint() -> None:
    hint = shapes.decode_hint(body({"event": "UPDATE", "customer": CUSTOMER}))
    assert isinstance(hint, shapes.CustomerHint)
    assert (hint.kind, hint.moment_id, hint.event) == ("customer", 62788973, "UPDATE")
    assert hint.customer.customer_number == "10001"


def test_project_hint_with_its_customer() -> None:
    hint = shapes.decode_hint(body({"event": "CREATE_NEW",
                                    "project": {**PROJECT, "customer": CUSTOMER}}))
    assert isinstance(hint, shapes.ProjectHint)
    assert (hint.kind, hint.moment_id) == ("project", 62788980)
    assert hint.project.project_number == "1"
    assert hint.project.customer == shapes.CustomerRef(id=62788973, customer_number="10001")


def test_invoice_hint_as_documented_by_moment() -> None:
    raw = (b'{"event": "CREATE_NEW", "invoice": {"id": 106939080, "invoiceNumber": 1,\n'
           b'  "customer": {"id": 62788973, "customerNumber": "10001"},\n'
           b'  "project": {"id": 62788980, "projectNumber": "1"}}}')
    hint = shapes.decode_hint(raw)
    assert isinstance(hint, shapes.InvoiceHint)
    assert (hint.kind, hint.moment_id, hint.invoice.invoice_number) == ("invoice", 106939080, 1)
    assert hint.invoice.project == shapes.ProjectRef(id=62788980, project_number="1")
    # Encoding gives Moment's own shape back: hints can be stored and replayed as sent.
    assert json.loads(msgspec.json.encode(hint)) == json.loads(raw)


@pytest.mark.parametrize("invoice", [
    {"id": 3, "customer": CUSTOMER, "project": PROJECT},
    {"id": 3, "invoiceNumber": None, "customer": CUSTOMER},
    {"id": 3, "customer": CUSTOMER, "project": None},
    {"id": 3},
])
def test_draft_invoice_hint_without_number_is_valid(invoice: dict[str, object]) -> None:
    hint = shapes.decode_hint(body({"event": "CREATE_NEW", "invoice": invoice}))
    assert isinstance(hint, shapes.InvoiceHint)
    assert hint.invoice.invoice_number is None
    assert hint.moment_id == 3


def test_unknown_fields_inside_the_object_are_ignored() -> None:
    hint = shapes.decode_hint(body({"event": "UPDATE",
                                    "customer": {**CUSTOMER, "name": "Nordlys", "x": [1]}}))
    assert hint == shapes.CustomerHint(event="UPDATE", customer=shapes.CustomerRef(
        id=62788973, customer_number="10001"))


BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("empty body", b"", "body is empty"),
    ("whitespace only", b"  \n ", "body is empty"),
    ("not JSON", b"event=CREATE_NEW", "not valid JSON"),
    ("truncated JSON", b'{"event": "X", "customer": {"id": 1}', "not valid JSON"),
    ("not UTF-8", b'{"event": "\xff"}', "not UTF-8"),
    ("NaN", b'{"event": "X", "customer": {"id": NaN}}', "NaN is not a JSON value"),
    ("array", b"[1, 2]", "body must be an object, got an array"),
    ("string", b'"CREATE_NEW"', "body must be an object, got a string"),
    ("null", b"null", "body must be an object, got null"),
    ("duplicate key", b'{"event": "X", "customer": {"id": 1, "id": 2}}', "appears twice"),
    ("no event", body({"customer": CUSTOMER}), "event is missing"),
    ("event a number", body({"event": 7, "customer": CUSTOMER}), "event must be a string"),
    ("event empty", body({"event": " ", "customer": CUSTOMER}), "non-empty string"),
    ("event huge", body({"event": "X" * 101, "customer": CUSTOMER}), "at most 100"),
    ("no object", body({"event": "X"}), "no object in the hint"),
    ("unknown kind", body({"event": "X", "claim": {"id": 1}}), "unknown object kind 'claim'"),
    ("two kinds", body({"event": "X", "customer": CUSTOMER, "project": PROJECT}),
     "more than one object kind"),
    ("number for object", body({"event": "X", "customer": 62788973}),
     "customer must be an object, got a number"),
    ("string for object", body({"event": "X", "invoice": "106939080"}),
     "invoice must be an object, got a string"),
    ("array for object", body({"event": "X", "project": [PROJECT]}),
     "project must be an object, got an array"),
    ("null for object", body({"event": "X", "customer": None}),
     "customer must be an object, got null"),
    ("missing id", body({"event": "X", "customer": {"customerNumber": "10001"}}),
     "customer.id is missing"),
    ("id a string", body({"event": "X", "customer": {"id": "62788973"}}),
     "customer.id must be a positive integer, got a string"),
    ("id zero", body({"event": "X", "project": {"id": 0}}),
     "project.id must be a positive integer, got 0"),
    ("id negative", body({"event": "X", "invoice": {"id": -3}}),
     "invoice.id must be a positive integer, got -3"),
    ("id a boolean", body({"event": "X", "customer": {"id": True}}),
     "customer.id must be a positive integer, got a boolean"),
    ("id a float", body({"event": "X", "customer": {"id": 1.5}}),
     "customer.id must be a positive integer, got a number"),
    ("customer number as number", body({"event": "X", "customer": {"id": 1,
                                                                  "customerNumber": 10001}}),
     "customer.customerNumber must be a string, got a number"),
    ("project number empty", body({"event": "X", "project": {"id": 2, "projectNumber": ""}}),
     "project.projectNumber must not be empty"),
    ("invoice number as string", body({"event": "X", "invoice": {"id": 3,
                                                                 "invoiceNumber": "1"}}),
     "invoice.invoiceNumber must be a positive integer, got a string"),
    ("invoice number zero", body({"event": "X", "invoice": {"id": 3, "invoiceNumber": 0}}),
     "invoice.invoiceNumber must be a positive integer, got 0"),
    ("nested customer a number", body({"event": "X", "invoice": {"id": 3, "customer": 1}}),
     "invoice.customer must be an object, got a number"),
    ("nested customer without id", body({"event": "X", "project": {
        "id": 2, "customer": {"customerNumber": "10001"}}}), "project.customer.id is missing"),
    ("nested project bad id", body({"event": "X", "invoice": {"id": 3, "project": {
        "id": "2"}}}), "invoice.project.id must be a positive integer"),
    ("nested too deeply", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("id of 4,300+ digits", b'{"event": "X", "customer": {"id": ' + b"9" * 4301 + b"}}",
     "a number in it is too long"),
    ("unknown field of 5,000 digits", b'{"event": "X", "invoice": {"id": 3, "x": '
     + b"1" * 5000 + b"}}", "a number in it is too long"),
]


@pytest.mark.parametrize(("raw", "message"), [(raw, message) for _, raw, message in BAD_BODIES],
                         ids=[name for name, _, _ in BAD_BODIES])
def test_bad_bodies_are_refused_with_a_message(raw: bytes, message: str) -> None:
    with pytest.raises(shapes.HintError) as caught:
        shapes.decode_hint(raw)
    assert message in str(caught.value)
    assert caught.value.__cause__ is None  # the message stands alone, for a 400 answer
