"""Countries: the VAT zone a country's customers belong to.

Pure data and functions: which ISO 3166-1 alpha-2 codes are EU member states, and so which of
the zone keys of ``vat_zones`` (``DK``, ``EU``, ``ABROAD``) a customer's country gives
(DESIGN.md, "VAT zone"). Never guesses a zone from a name: only from an ISO code.
"""

from __future__ import annotations

from typing import Final

HOME: Final = "DK"

#: The EU member states by ISO 3166-1 alpha-2 code (27 since the United Kingdom left on
#: 2020-02-01; EU law, not a translation, so it is kept here rather than in a library). The
#: VAT area differs in a few territories (the Faroe Islands and Greenland are outside it, and
#: are not member states here either).
EU_MEMBERS: Final = frozenset((
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
    "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK"))


def zone_key(code: str) -> str:
    """The ``vat_zones`` key of a country: ``DK`` for Denmark (and for no country at all: the
    agreement's own), ``EU`` for another member state, else ``ABROAD``."""
    code = code.strip().upper()
    if not code or code == HOME:
        return "DK"
    return "EU" if code in EU_MEMBERS else "ABROAD"
