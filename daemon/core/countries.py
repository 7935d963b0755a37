"""Countries: a country's name as e-conomic's screens write it, whether a name e-conomic holds
names a given country, and the VAT zone a country's customers belong to.

Names come from pycountry (ISO 3166-1 and its bundled gettext translations, pinned in
pyproject.toml), never from a hand-typed table. pycountry is the one library outside stdlib and
msgspec the core imports (tests/core/test_layering.py allows exactly it): it is data, read from
files inside the installed package, the same for every call, so these functions stay pure
functions of their arguments. The translation catalogs are read once, lazily; the index of every
name in every language (about half a second to build) only when a name is neither the English
nor the Danish one.

Guarantees: :func:`name` never guesses: an unknown code has no name; :func:`same` is true for
any name of the country in any language pycountry knows, in any case; EU membership is a list
of codes below (EU law, not a translation).
"""

from __future__ import annotations

import functools
import gettext
import os
from typing import Final

import pycountry

HOME: Final = "DK"
LANGUAGES: Final = ("da", "en")
_DOMAIN: Final = "iso3166-1"

#: The EU member states by ISO 3166-1 alpha-2 code (27 since the United Kingdom left on
#: 2020-02-01). The Faroe Islands and Greenland are outside the EU and its VAT area.
EU_MEMBERS: Final = frozenset((
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
    "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK"))


#: Every key :func:`zone_key` gives: ``vat_zones`` must map each when zones come from countries.
ZONE_KEYS: Final = ("DK", "EU", "ABROAD")


def zone_key(code: str) -> str:
    """The ``vat_zones`` key of a country: ``DK`` for Denmark (and for no country at all: the
    agreement's own), ``EU`` for another member state, else ``ABROAD``."""
    code = code.strip().upper()
    if not code or code == HOME:
        return "DK"
    return "EU" if code in EU_MEMBERS else "ABROAD"


def iso_code(text: str) -> str | None:
    """Moment's country code as ISO 3166-1 alpha-2 (``"dk"``, ``"DNK"`` → ``"DK"``), or None
    when it is no country's code."""
    raw = text.strip().upper()
    if len(raw) == 2:
        found = pycountry.countries.get(alpha_2=raw)
    elif len(raw) == 3:
        found = pycountry.countries.get(alpha_3=raw)
    else:
        return None
    return None if found is None else str(found.alpha_2)


@functools.cache
def _catalog(language: str) -> gettext.NullTranslations:
    return gettext.translation(_DOMAIN, pycountry.LOCALES_DIR, languages=[language],
                               fallback=True)


def _names(country: object) -> list[str]:
    return [str(n) for n in (getattr(country, "name", None),
                             getattr(country, "official_name", None),
                             getattr(country, "common_name", None)) if n]


def name(code: str, language: str) -> str | None:
    """The country's name in ``language`` (``"DE"``, ``"da"`` → ``"Tyskland"``; ``"en"`` →
    ``"Germany"``): its common name where it has one (``"South Korea"``), else its ISO name."""
    country = pycountry.countries.get(alpha_2=code.strip().upper())
    if country is None:
        return None
    common = getattr(country, "common_name", None)
    if language == "en":
        return str(common or country.name)
    tr = _catalog(language)
    if common and tr.gettext(common) != common:
        return tr.gettext(common)
    return tr.gettext(str(country.name))


@functools.cache
def _index() -> dict[str, frozenset[str]]:
    """Every name of every country in every language pycountry has, casefolded → codes (a
    few translations share a name between two countries, so a name may give several)."""
    found: dict[str, set[str]] = {}
    catalogs = [gettext.NullTranslations()] + [
        _catalog(lang) for lang in sorted(os.listdir(pycountry.LOCALES_DIR))
        if os.path.exists(os.path.join(pycountry.LOCALES_DIR, lang, "LC_MESSAGES",
                                       f"{_DOMAIN}.mo"))]
    for country in pycountry.countries:
        for english in _names(country):
            for tr in catalogs:
                found.setdefault(tr.gettext(english).casefold(), set()).add(country.alpha_2)
    return {k: frozenset(v) for k, v in found.items()}


def same(text: str, code: str) -> bool:
    """Whether ``text`` (a name e-conomic holds) names the country ``code``, in any language or
    case. A code is not a name: ``"DK"`` is not Denmark's name."""
    wanted = text.strip().casefold()
    if not wanted:
        return False
    country = pycountry.countries.get(alpha_2=code.strip().upper())
    if country is None:
        return False
    for lang in LANGUAGES:
        if wanted == (name(country.alpha_2, lang) or "").casefold():
            return True
    return country.alpha_2 in _index().get(wanted, frozenset())
