"""The cheap check that lets a clean body skip the walk never passes a body the walk refuses."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from openpartner.api.schemas import _clearly_safe, _unsafe

# Every character a JSON string can carry, the refused ones (C0 controls, lone surrogates) often.
refused = st.sampled_from(["\x00", "\t", "\n", "\r", "\x1f", "\ud800", "\udfff", "\\"])
text = st.text(
    alphabet=st.characters(max_codepoint=0xFFFF, exclude_categories=()) | refused, max_size=8
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=40,
)


@given(st.dictionaries(text, json_values, max_size=4))
@settings(max_examples=300)
def test_a_body_the_fast_check_passes_is_one_the_walk_passes(body: dict[str, Any]) -> None:
    if _clearly_safe(body):
        assert list(_unsafe(body, frozenset(), frozenset())) == []


def test_deep_or_dirty_bodies_go_to_the_walk() -> None:
    deep: Any = 0
    for _ in range(40):
        deep = [deep]
    assert not _clearly_safe({"a": deep})
    for dirty in ("nul\x00", "line\nfeed", "tab\t", "\ud800", "\x1f"):
        assert not _clearly_safe({"metadata": {"note": dirty}})
    assert _clearly_safe({"type": "sale", "amount": "19.99", "metadata": {"plan": "pro é"}})
