"""Prefixed, time-sortable, unguessable identifiers: ``prg_01JD3...``.

26 Crockford base32 characters: 48 bits of milliseconds (so ids sort by creation time, which
keyset pagination relies on) followed by 80 random bits from ``secrets`` (so they cannot be
guessed or enumerated).
"""

from __future__ import annotations

import os
import secrets
import threading

from openpartner.core.time import utc_now

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

PREFIXES = frozenset(
    {
        "prg",
        "ptn",
        "lnk",
        "key",
        "clk",
        "vis",
        "idn",
        "evt",
        "tch",
        "deal",
        "att",
        "cfg",
        "com",
        "led",
        "pay",
        "run",
        "job",
        "cpn",
        "whk",
        "rul",
        "adj",
        "aud",
    }
)


# Two characters (10 bits) per look-up: ids are minted on the click router's hot path, where the
# one-character loop was a measurable share of each request.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]


def _encode(value: int, length: int) -> str:
    """``length`` base32 characters of ``value``, most significant first (``length`` even)."""
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in range(5 * length - 10, -1, -10)])


_lock = threading.Lock()
_last = 0
# Randomness drawn from the OS a thousand ids at a time (one system call per id was a fifth of
# the cost of an id) and never shared: a forked child forgets what its parent drew.
_RANDOM_BYTES = 10 * 1024
_random = b""
_random_at = 0
# The first 10 characters are the millisecond alone (2 zero bits + 48 bits of time).
_head_millis = -1
_head = ""


def _forget_randomness() -> None:
    global _random, _random_at
    _random, _random_at = b"", 0


os.register_at_fork(after_in_child=_forget_randomness)


def _random80() -> int:
    """80 random bits (call with ``_lock`` held)."""
    global _random, _random_at
    at = _random_at
    if at >= len(_random):
        _random, at = secrets.token_bytes(_RANDOM_BYTES), 0
    _random_at = at + 10
    return int.from_bytes(_random[at : at + 10])


def new_id(prefix: str) -> str:
    """Monotonic within a process (like monotonic ULIDs): an id made in the same millisecond as
    the previous one is that one plus one, so ids always sort in creation order here."""
    global _last, _head_millis, _head
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    millis = int(utc_now().timestamp() * 1000)
    with _lock:
        body = (millis << 80) | _random80()
        if body <= _last:
            body = _last + 1
        _last = body
        if body >> 80 != _head_millis:
            _head_millis = body >> 80
            _head = _encode(_head_millis, 10)
        head = _head
    p = _PAIRS  # the 80 random bits, unrolled: this is most of the cost of an id
    return (
        f"{prefix}_{head}{p[(body >> 70) & 1023]}{p[(body >> 60) & 1023]}"
        f"{p[(body >> 50) & 1023]}{p[(body >> 40) & 1023]}{p[(body >> 30) & 1023]}"
        f"{p[(body >> 20) & 1023]}{p[(body >> 10) & 1023]}{p[body & 1023]}"
    )


def new_ids(prefix: str, n: int) -> list[str]:
    """``n`` ids exactly as ``n`` calls of :func:`new_id` would make them (same format, same
    monotonic order under the same lock), with the randomness drawn at once and the encoding
    done two characters per step: replay makes millions."""
    global _last
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    millis = int(utc_now().timestamp() * 1000)
    randoms = secrets.token_bytes(10 * n)
    out = []
    with _lock:
        last = _last
        for i in range(n):
            body = (millis << 80) | int.from_bytes(randoms[10 * i : 10 * i + 10])
            if body <= last:
                body = last + 1
            last = body
            out.append(
                prefix + "_" + "".join([_PAIRS[(body >> s) & 1023] for s in range(120, -10, -10)])
            )
        _last = last
    return out


def bulk_id_prefix(prefix: str) -> str:
    """The first 14 characters (prefix and time part) of ids another component completes with
    80 random bits per row, e.g. SQL writing millions of rows at once. The millisecond is one no
    id of this process has used yet, and is then used up: those ids sort after every id made
    here before and before every id made after, like :func:`new_id`'s."""
    global _last
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    with _lock:
        millis = max(int(utc_now().timestamp() * 1000), (_last >> 80) + 1)
        _last = (millis << 80) | ((1 << 80) - 1)
    return f"{prefix}_{_encode(millis << 80, 26)[:10]}"


def random_token(nbytes: int = 24) -> str:
    """URL-safe random string for secrets such as API keys and link keys."""
    return secrets.token_urlsafe(nbytes)
