"""Prefixed, time-sortable, unguessable identifiers: ``prg_01JD3...``.

26 Crockford base32 characters: 48 bits of milliseconds (so ids sort by creation time, to the
millisecond, and keyset pagination has a stable order) followed by 80 random bits from
``secrets``, fresh for every id (so they cannot be guessed or enumerated, not even from an id
made in the same millisecond). Ids of one millisecond are in no particular order among
themselves: whatever needs the order of creation within a millisecond keeps a sequence of its
own (events' ``seq``) or a timestamp.
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
# The millisecond of the latest id (or one past a reserved one): the time part never goes back
# within a process, even when the clock does.
_floor = 0
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


def _millis() -> int:
    """The millisecond for the next ids (call with ``_lock`` held)."""
    global _floor
    millis = int(utc_now().timestamp() * 1000)
    if millis < _floor:
        millis = _floor
    _floor = millis
    return millis


def new_id(prefix: str) -> str:
    """Sorted by millisecond; within one millisecond the 80 random bits are fresh for every id,
    so ids made together are in no particular order among themselves. Never derived from the
    previous id (monotonic ULIDs add one: knowing one click id gave the next one away)."""
    global _head_millis, _head
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    with _lock:
        millis = _millis()
        body = _random80()
        if millis != _head_millis:
            _head_millis = millis
            _head = _encode(millis, 10)
        head = _head
    p = _PAIRS  # the 80 random bits, unrolled: this is most of the cost of an id
    return (
        f"{prefix}_{head}{p[(body >> 70) & 1023]}{p[(body >> 60) & 1023]}"
        f"{p[(body >> 50) & 1023]}{p[(body >> 40) & 1023]}{p[(body >> 30) & 1023]}"
        f"{p[(body >> 20) & 1023]}{p[(body >> 10) & 1023]}{p[body & 1023]}"
    )


def new_id_after(prefix: str, previous: str | None) -> str:
    """A fresh id that sorts after ``previous`` (an id of the same prefix): :func:`new_id`'s, or
    if ``previous`` is of this millisecond (or later), one with its millisecond plus one and 80
    fresh random bits. For the few rows whose order of creation is their meaning, such as
    versions of a program's rules; the time part is then at most a millisecond ahead."""
    made = new_id(prefix)
    if previous is None or made > previous:
        return made
    millis = 0
    for char in previous[len(prefix) + 1 : len(prefix) + 11]:
        millis = millis * 32 + _ALPHABET.index(char)
    with _lock:
        body = _random80()
    return f"{prefix}_{_encode(millis + 1, 10)}{_encode(body, 16)}"


def new_ids(prefix: str, n: int) -> list[str]:
    """``n`` ids as ``n`` calls of :func:`new_id` would make them in one millisecond (same
    format, 80 fresh random bits each), with the randomness drawn at once and the encoding done
    two characters per step: replay makes millions. Their order is not the order of the list."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    randoms = secrets.token_bytes(10 * n)
    with _lock:
        millis = _millis()
    head = prefix + "_" + _encode(millis, 10)
    pairs = _PAIRS
    out = []
    for i in range(n):
        body = int.from_bytes(randoms[10 * i : 10 * i + 10])
        out.append(head + "".join([pairs[(body >> s) & 1023] for s in range(70, -10, -10)]))
    return out


def bulk_id_prefix(prefix: str) -> str:
    """The first 14 characters (prefix and time part) of ids another component completes with
    80 bits per row, e.g. SQL writing millions of rows at once. The millisecond is one no id of
    this process has used yet, and is then used up: those ids sort after every id made here
    before and before every id made after."""
    global _floor
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    with _lock:
        millis = max(int(utc_now().timestamp() * 1000), _floor + 1)
        _floor = millis + 1
    return f"{prefix}_{_encode(millis, 10)}"


def random_token(nbytes: int = 24) -> str:
    """URL-safe random string for secrets such as API keys and link keys."""
    return secrets.token_urlsafe(nbytes)
