"""What the engine attributes: a partner's touches and the conversion they may earn credit for.

Both are plain, immutable values built by the caller from raw rows (clicks, touchpoints, coupon
redemptions, events). Nothing here reads a database or a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from openpartner.core.errors import ValidationFailed
from openpartner.core.money import exponent

KINDS: Final = frozenset({"click", "touchpoint", "coupon"})
"""``click``: a visit through a partner link; ``touchpoint``: a B2B touch recorded directly
(referral, intro, demo, …); ``coupon``: a partner's coupon or promotion code on the sale."""

OTHER_ROLE: Final = "other"
"""The role of a touch without one (clicks and coupons), and of roles a model has no weight for."""


def _require_utc(value: datetime, what: str, code: str) -> None:
    offset = value.utcoffset()
    # timedelta(0) is falsy: anything else is naive (None) or a non-UTC offset.
    if offset is None or offset:
        raise ValidationFailed(f"{what} must be an aware UTC datetime, got {value!r}.", code=code)


@dataclass(frozen=True, slots=True)
class Touch:
    """One partner touch on the way to a conversion.

    Touches are ordered by ``(at, seq, id)``: time, then ingest sequence (the tie-break for equal
    timestamps), then id, so the order never depends on how the caller listed them. ``id`` must be
    unique among the touches of one conversion.
    """

    id: str
    seq: int
    """Ingest sequence of the raw row (e.g. ``clicks.seq``)."""
    partner_id: str
    at: datetime
    """Aware UTC time of the touch."""
    kind: str = "click"
    role: str | None = None
    """Touchpoint type for ``role_based`` (``referral``, ``intro``, ``demo``, ``support``,
    ``closer``, ``other`` or a program's own); ``None`` counts as ``other``."""
    flagged: bool = False
    """Bot, duplicate, velocity or otherwise under review: earns nothing."""
    partner_revoked: bool = False
    """The partner was revoked: earns nothing."""

    def __post_init__(self) -> None:
        _require_utc(self.at, "Touch time", "invalid_touch")
        if self.kind not in KINDS:
            raise ValidationFailed(
                f"Touch kind must be one of {sorted(KINDS)}, got {self.kind!r}.",
                code="invalid_touch",
            )


def touch_order(touch: Touch) -> tuple[datetime, int, str]:
    """The sort key every part of attribution uses: time, then ingest sequence, then id."""
    return (touch.at, touch.seq, touch.id)


@dataclass(frozen=True, slots=True)
class Conversion:
    """The sale, lead or deal being attributed.

    ``amount`` is in minor units of ``currency`` and may be zero (a lead: who gets it still
    matters for flat rewards) or negative (a refund, split the same way as the sale).
    """

    at: datetime
    amount: int
    currency: str

    def __post_init__(self) -> None:
        _require_utc(self.at, "Conversion time", "invalid_conversion")
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise ValidationFailed(
                "Conversion amount must be an integer in minor units.", code="invalid_amount"
            )
        exponent(self.currency)  # raises invalid_currency for anything but an ISO 4217 code
