"""Which characters a request's text may hold.

Nothing a client sends may carry a C0 control character (U+0000 to U+001F) or a lone UTF-16
surrogate: PostgreSQL refuses NUL in text and JSONB (it answered 500 where SQLite stored it),
neither database can encode a lone surrogate, and control characters in an id or a header-bound
value are only ever an attack or a bug. Free text (metadata values, names, reasons) may hold
tab, line feed and carriage return; identifiers, keys, paths and query strings none at all.
"""

from __future__ import annotations

import re

_IN_IDENTIFIER = re.compile("[\x00-\x1f\ud800-\udfff]")
_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


def bad_character(value: str, *, free_text: bool = False) -> str | None:
    """The first character ``value`` may not hold (as ``U+XXXX``), or None."""
    found = (_IN_TEXT if free_text else _IN_IDENTIFIER).search(value)
    return None if found is None else f"U+{ord(found.group()):04X}"
