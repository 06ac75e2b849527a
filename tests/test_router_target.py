"""Pure rules of the redirect: target composition, cookies, client address, click ids."""

from __future__ import annotations

import random
import re

import pytest

from openpartner.core.ids import _ALPHABET, _encode, new_id
from openpartner.router.target import (
    client_ip,
    compile_target,
    cookie_header,
    host_in_domain,
    parse_trusted,
    request_host,
)

CLICK = "clk_01JD3ABCDEFGHJKMNPQRSTVWXY"


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        ("https://acme.example/welcome", f"https://acme.example/welcome?cref={CLICK}"),
        ("https://acme.example", f"https://acme.example/?cref={CLICK}"),
        ("https://acme.example/p?plan=pro", f"https://acme.example/p?plan=pro&cref={CLICK}"),
        (
            "https://acme.example/p?plan=pro&x=1#pricing",
            f"https://acme.example/p?plan=pro&x=1&cref={CLICK}#pricing",
        ),
        ("https://acme.example/p#top", f"https://acme.example/p?cref={CLICK}#top"),
        # Existing escapes, "+" and empty values are kept byte for byte.
        (
            "https://acme.example/a%20b/?q=caf%C3%A9+bar&empty=&flag",
            f"https://acme.example/a%20b/?q=caf%C3%A9+bar&empty=&flag&cref={CLICK}",
        ),
        # Raw non-ASCII and spaces are percent-encoded (a Location header is ASCII).
        (
            "https://acme.example/café?name=Zoë Ω#über",
            f"https://acme.example/caf%C3%A9?name=Zo%C3%AB%20%CE%A9&cref={CLICK}#%C3%BCber",
        ),
        # Our parameter appears once, ours: a stale or planted one is removed.
        (
            "https://acme.example/p?cref=old&a=1&cr%65f=x",
            f"https://acme.example/p?a=1&cref={CLICK}",
        ),
        ("https://acme.example:8443/p?a=1", f"https://acme.example:8443/p?a=1&cref={CLICK}"),
        ("http://acme.example/p?", f"http://acme.example/p?cref={CLICK}"),
        (
            'https://acme.example/p?q="<x>"&b={1}',
            f"https://acme.example/p?q=%22%3Cx%3E%22&b=%7B1%7D&cref={CLICK}",
        ),
    ],
)
def test_redirect_target_composition(destination: str, expected: str) -> None:
    prefix, suffix = compile_target(destination, "cref")
    location = prefix + CLICK + suffix
    assert location == expected
    assert location.isascii() and not any(c in location for c in " \r\n\t")


def test_custom_click_parameter() -> None:
    prefix, suffix = compile_target("https://acme.example/p?ref=a#x", "via_click")
    assert prefix + CLICK + suffix == f"https://acme.example/p?ref=a&via_click={CLICK}#x"


def test_cookie_header_attributes() -> None:
    assert cookie_header("_cref", CLICK, domain="acme.example", max_age_days=60) == (
        f"_cref={CLICK}; Domain=acme.example; Path=/; Max-Age=5184000; Secure; HttpOnly; "
        "SameSite=Lax"
    )
    relaxed = cookie_header(
        "_cref", CLICK, domain=None, max_age_days=900, secure=False, http_only=False
    )
    assert relaxed == f"_cref={CLICK}; Path=/; Max-Age=34560000; SameSite=Lax"


@pytest.mark.parametrize(
    ("host", "domain", "allowed"),
    [
        ("go.acme.example", "acme.example", True),
        ("acme.example", "acme.example", True),
        ("a.b.acme.example", "acme.example", True),
        ("evilacme.example", "acme.example", False),
        ("acme.example.evil.example", "acme.example", False),
        ("", "acme.example", False),
    ],
)
def test_host_in_cookie_domain(host: str, domain: str, allowed: bool) -> None:
    assert host_in_domain(host, domain) is allowed


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        ("Go.Acme.Example", "go.acme.example"),
        ("go.acme.example:443", "go.acme.example"),
        ("[::1]:8001", "[::1]"),
        ("", ""),
        (None, ""),
    ],
)
def test_request_host(raw: str | None, host: str) -> None:
    assert request_host(raw) == host


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("198.51.100.7", None, "198.51.100.7"),
        # An untrusted peer's header is the client's own invention.
        ("198.51.100.7", "203.0.113.1", "198.51.100.7"),
        ("127.0.0.1", "203.0.113.1", "203.0.113.1"),
        # Left-most entries are client-supplied; the right-most untrusted hop is the client.
        ("127.0.0.1", "1.1.1.1, 203.0.113.1", "203.0.113.1"),
        ("127.0.0.1", "203.0.113.1, 10.0.0.2", "203.0.113.1"),
        ("127.0.0.1", "not-an-ip", "127.0.0.1"),
        ("127.0.0.1", "10.0.0.2", "127.0.0.1"),
    ],
)
def test_client_ip(peer: str, forwarded: str | None, expected: str) -> None:
    assert client_ip(peer, forwarded, parse_trusted("127.0.0.1, 10.0.0.2")) == expected


def test_click_ids_are_prefixed_sortable_and_random() -> None:
    ids = [new_id("clk") for _ in range(1000)]
    assert len(set(ids)) == 1000
    pattern = re.compile(rf"^clk_[{_ALPHABET}]{{26}}$")
    assert all(pattern.match(i) for i in ids)
    assert [i[:14] for i in ids] == sorted(i[:14] for i in ids)  # time part never goes back


def test_id_encoding_matches_the_one_character_reference() -> None:
    def reference(value: int, length: int) -> str:
        chars = []
        for _ in range(length):
            chars.append(_ALPHABET[value & 31])
            value >>= 5
        return "".join(reversed(chars))

    rng = random.Random(7)
    for value in [0, 1, 2**128 - 1, *(rng.getrandbits(128) for _ in range(2000))]:
        assert _encode(value, 26) == reference(value, 26)
