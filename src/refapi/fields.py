"""Text read as numbers in ASCII digits only, shared by every feature.

``int()`` reads other scripts' digits (Arabic-Indic, fullwidth), underscores (``1_0``), a sign
and surrounding spaces; ``str.isdigit()`` also takes ``²``, which ``int()`` refuses. A number
this API reads from text is written in digits 0-9 alone.
"""

from __future__ import annotations

import re
from typing import Any

import marshmallow as ma

_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


def ascii_digits(text: str, *, max_digits: int) -> int | None:
    """The number ``text`` writes in 1 to ``max_digits`` digits 0-9 and nothing else, or None."""
    if len(text) > max_digits or not _DIGITS.fullmatch(text):
        return None
    return int(text)


class _WrittenInAscii(ma.fields.Field):
    """A number field whose text (not a JSON number) must match ``text_pattern`` in full."""

    text_pattern: re.Pattern[str]

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) and not self.text_pattern.fullmatch(value):
            raise self.make_error("invalid", input=value)
        return super()._deserialize(value, attr, data, **kwargs)


class AsciiInteger(_WrittenInAscii, ma.fields.Integer):
    """marshmallow's ``Integer``, but text (a query argument) must be digits 0-9 alone.

    Without it, ``?page=1_0`` would be page 10, and an Arabic-Indic 3 page 3.
    """

    text_pattern = _DIGITS
    default_error_messages: ma.types.ErrorMessages = {  # noqa: RUF012 - as marshmallow declares it
        "invalid": "Not a number written in digits 0-9."
    }


class AsciiDecimal(_WrittenInAscii, ma.fields.Decimal):
    """marshmallow's ``Decimal``, but text must be plain digits 0-9 with an optional fraction.

    ``Decimal()`` would read ``"8_50"``, fullwidth digits, ``" 850 "`` and ``"850e0"`` as 850.
    A JSON number is read as it is.
    """

    text_pattern = _DECIMAL
    default_error_messages: ma.types.ErrorMessages = {  # noqa: RUF012 - as marshmallow declares it
        "invalid": "Not a number written in digits 0-9 (with an optional '.' and fraction)."
    }
