"""A secret value that never shows itself.

Guarantees: ``repr``/``str``/format of a :class:`Secret` is ``<redacted>``; msgspec refuses to
encode it (it is not a Struct field type anywhere that is persisted). The value is revealed only
by :meth:`Secret.reveal`, called where an HTTP header is built.
"""

from __future__ import annotations

from typing import Final

REDACTED: Final = "<redacted>"


class Secret:
    """An opaque string; compare with :meth:`equals` (constant time)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def equals(self, other: str) -> bool:
        import hmac

        return hmac.compare_digest(self._value.encode(), other.encode())

    def __repr__(self) -> str:
        return REDACTED

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:  # never pickled with its value
        raise TypeError("a Secret cannot be pickled")
