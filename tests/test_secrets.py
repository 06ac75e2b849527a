"""Keyed hashes are HMAC-SHA-256 exactly (stored hashes stay comparable across versions)."""

from __future__ import annotations

import hmac

from hypothesis import given
from hypothesis import strategies as st

from openpartner.secrets import keyed_hash


@given(
    key=st.binary(min_size=1, max_size=200),
    value=st.text(),
    purpose=st.sampled_from(["ip", "visitor"]),
)
def test_keyed_hash_is_hmac_sha256_of_purpose_and_value(
    key: bytes, value: str, purpose: str
) -> None:
    expected = hmac.new(key, f"{purpose}:{value}".encode(), "sha256").hexdigest()
    assert keyed_hash(value, purpose=purpose, secret=key) == expected
