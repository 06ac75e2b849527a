"""Decode the form bodies and query strings the ``stripe`` library sends.

The library flattens nested parameters into brackets: ``metadata[order]=42``,
``capabilities[transfers][requested]=true``, ``expand[0]=data.destination``. Values stay strings,
as Stripe receives them; each endpoint converts what it reads.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


class FormError(ValueError):
    pass


def parse_form(raw: str) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True, strict_parsing=False):
        match = _KEY.match(key)
        if match is None:
            raise FormError(f"Invalid parameter name: {key}")
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = root
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise FormError(f"Invalid parameter name: {key}")
            node = nxt
        last = parts[-1]
        if last == "":  # ``expand[]=x``: append in order of appearance
            last = str(len(node))
        if isinstance(node.get(last), dict):
            raise FormError(f"Invalid parameter name: {key}")
        node[last] = value
    return {k: _lists(v) for k, v in root.items()}


def _lists(value: Any) -> Any:
    """Dicts whose keys are all indices (``expand[0]``, ``expand[1]``) become lists."""
    if not isinstance(value, dict):
        return value
    converted = {k: _lists(v) for k, v in value.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted
