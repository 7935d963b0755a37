"""Strict JSON for webhook bodies: one parse that refuses what a lenient parser lets through.

Both receivers (Moment's hints, e-conomic's) answer 400 with a sentence saying what is wrong;
this is the part of that check they share. :func:`loads` refuses a body that is not UTF-8,
empty, not JSON, carries ``NaN``/``Infinity``, repeats a key in one object, nests too deeply, or
holds an integer too long to convert (Python's 4,300-digit limit), each with its own message.
Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable


class BodyError(ValueError):
    """A body that is not what the receiver takes; ``str()`` says why, for a 400."""


def _reject_constant(name: str) -> object:
    raise BodyError(f"body is not valid JSON: {name} is not a JSON value")


def _no_duplicates(what: str) -> Callable[[list[tuple[str, object]]], dict[str, object]]:
    def hook(pairs: list[tuple[str, object]]) -> dict[str, object]:
        result: dict[str, object] = {}
        for key, value in pairs:
            if key in result:
                raise BodyError(f"body is not valid JSON for {what}: key {key!r} appears twice")
            result[key] = value
        return result
    return hook


def describe(value: object) -> str:
    """What a JSON value is, for a message (``a string``, ``null``, ``an array`` ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def loads(body: bytes, *, what: str) -> object:
    """The JSON value of ``body``, or :class:`BodyError`; ``what`` names the thing expected
    (``"a hint"``) in the messages."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    if not text.strip():
        raise BodyError("body is empty; expected a JSON object")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates(what),
                          parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BodyError(f"body is not valid JSON: {exc.msg} at line {exc.lineno} "
                        f"column {exc.colno}") from None
    except RecursionError:
        raise BodyError(f"body is not valid JSON for {what}: nested too deeply") from None
    except BodyError:
        raise
    except ValueError:
        # Python refuses to convert an integer of more than 4,300 digits (CVE-2020-10735);
        # no hint needs one, and it must be a 400, not an error inside the receiver
        raise BodyError(f"body is not valid JSON for {what}: a number in it is too long") \
            from None
