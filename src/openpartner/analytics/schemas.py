"""Response shapes of the analytics API. Amounts are integer minor units next to their currency;
shares are exact fractions (``"n/d"``) with a percentage string rounded to two decimals."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import ConfigDict, Field

from openpartner.api.schemas import ResponseModel


class PeriodOut(ResponseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    from_: date = Field(alias="from")
    to: date
    """Included: the range ends at midnight after this day (UTC)."""


class Ratio(ResponseModel):
    fraction: str
    """Exact, ``"numerator/denominator"``."""
    percent: str
    """``fraction`` x 100, rounded once (half to even) to two decimals: ``"45.45"``."""


class RevenueOut(ResponseModel):
    currency: str
    sales: int
    refunds: int
    net: int
    """``sales - refunds``: each on the day it occurred."""


class SalesOut(RevenueOut):
    sales_count: int
    average_sale: int | None
    """Average sale (sales only, before refunds), rounded once to a minor unit."""


class Conversions(ResponseModel):
    total: int
    by_type: dict[str, int]


class AttributionPart(ResponseModel):
    conversions: int
    revenue: list[RevenueOut]


class OverviewOut(ResponseModel):
    object: str = "analytics.overview"
    program_id: str
    period: PeriodOut
    conversions: Conversions
    """Non-refund events: leads, signups, sales and custom types."""
    revenue: list[SalesOut]
    revenue_basis: str
    attributed: AttributionPart
    """Conversions with at least one credited partner; sales with credits, and refunds of them."""
    unattributed: AttributionPart


class LeaderboardEntry(ResponseModel):
    rank: int
    partner_id: str
    name: str
    conversions: int
    """Conversions credited: an event counts for every partner credited on it."""
    net: int
    """Net credited revenue in the ranking currency."""
    revenue: list[RevenueOut]
    """Credited revenue in every currency."""


class LeaderboardOut(ResponseModel):
    object: str = "analytics.leaderboard"
    program_id: str
    period: PeriodOut
    currency: str
    revenue_basis: str
    data: list[LeaderboardEntry]


class ModelUsage(ResponseModel):
    model: str
    engine_version: str
    events: int
    rows: int


class ModelsOut(ResponseModel):
    object: str = "analytics.models"
    program_id: str
    period: PeriodOut
    program_model: str
    """The program's model today; the rows say what each conversion was attributed under."""
    attributed_events: int
    data: list[ModelUsage]


class TouchMixItem(ResponseModel):
    kind: str
    """``click``, ``touchpoint`` or ``coupon``."""
    type: str | None
    """The touchpoint type (``referral``, ``demo``, …); null for clicks and coupons."""
    recorded: int
    """Touches that happened in the range (coupon: conversions carrying a partner's code)."""
    flagged: int
    """Of the recorded clicks, those flagged (bot, duplicate, velocity, revoked)."""
    credited: int
    """Attribution rows of this kind on the range's conversions."""
    credited_events: int
    credited_share: Ratio
    """``credited`` over all credited rows."""


class TouchMixOut(ResponseModel):
    object: str = "analytics.touch_mix"
    program_id: str
    period: PeriodOut
    data: list[TouchMixItem]


class CreditOut(ResponseModel):
    partner_id: str
    name: str
    amount: int
    weight: str


class RecentConversion(ResponseModel):
    event_id: str
    type: str
    customer_id: str | None
    occurred_at: datetime
    amount: int | None
    currency: str | None
    refunded: int
    attributed: bool
    credits: list[CreditOut]


class RecentOut(ResponseModel):
    object: str = "analytics.recent_conversions"
    program_id: str
    data: list[RecentConversion]


class ShareOut(ResponseModel):
    currency: str
    partner_net: int
    program_net: int
    """Net credited revenue of every partner of the program."""
    share: Ratio | None
    """``partner_net / program_net``; null when ``program_net`` is 0."""


class MonthOut(ResponseModel):
    month: str
    """``YYYY-MM``, calendar month in UTC."""
    conversions: int
    revenue: list[RevenueOut]


class PartnerAnalyticsOut(ResponseModel):
    object: str = "analytics.partner"
    partner_id: str
    program_id: str
    name: str
    period: PeriodOut
    conversions: Conversions
    revenue: list[RevenueOut]
    revenue_basis: str
    revenue_share: list[ShareOut] | None
    """Null for the partner's own key: the program's totals are not the partner's data."""
    touch_mix: list[TouchMixItem]
    months: list[MonthOut]
    """Every month the range touches, empty ones included."""


class JourneyCounts(ResponseModel):
    total: int
    converted: int
    not_converted: int
    conversions_without_partner_touch: int
    """Customers whose first conversion in the range had no eligible partner touch (left out)."""


class DataDrivenPartner(ResponseModel):
    partner_id: str
    name: str
    journeys: int
    converted_journeys: int
    removal_effect: Ratio
    """1 - P(conversion without the partner) / P(conversion)."""
    markov_share: Ratio
    """The removal effect over the sum of all removal effects."""
    shapley_value: str
    """Exact Shapley value in conversions (may be negative)."""
    shapley_share: Ratio


class DataDrivenOut(ResponseModel):
    object: str = "analytics.data_driven"
    program_id: str
    period: PeriodOut
    notice: str
    """Always "Analytics only, never used for payouts."."""
    conversion_type: str | None
    exact: bool
    """False when the Markov chain was too tangled to solve exactly and was simulated."""
    conversion_probability: Ratio
    journeys: JourneyCounts
    data: list[DataDrivenPartner]
    """Sorted by Markov share, largest first."""
