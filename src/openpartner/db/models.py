"""Imports every table so ``Base.metadata`` is complete (Alembic autogenerate, drift checks)."""

from openpartner.accounts.models import ApiKey
from openpartner.attribution.configs import AttributionConfig
from openpartner.attribution.records import AttributionRow
from openpartner.clicks.models import Click
from openpartner.commissions.models import (
    Adjustment,
    Commission,
    CommissionAudit,
    CommissionRuleVersion,
)
from openpartner.coupons.models import PromotionCode
from openpartner.db.base import Base
from openpartner.deals.models import Deal, Touchpoint
from openpartner.events.models import Event
from openpartner.identity.models import IdentityEdge
from openpartner.integrations.stripe.models import StripeEvent
from openpartner.ledger.models import LedgerBalance, LedgerEntry
from openpartner.links.models import Link
from openpartner.partners.models import Partner
from openpartner.payouts.models import ConnectAccount, Payout, PayoutItem, PayoutRun
from openpartner.programs.models import Program
from openpartner.router.models import RouterInvalidation
from openpartner.worker.models import Job

__all__ = [
    "Adjustment",
    "ApiKey",
    "AttributionConfig",
    "AttributionRow",
    "Base",
    "Click",
    "Commission",
    "CommissionAudit",
    "CommissionRuleVersion",
    "ConnectAccount",
    "Deal",
    "Event",
    "IdentityEdge",
    "Job",
    "LedgerBalance",
    "LedgerEntry",
    "Link",
    "Partner",
    "Payout",
    "PayoutItem",
    "PayoutRun",
    "Program",
    "PromotionCode",
    "RouterInvalidation",
    "StripeEvent",
    "Touchpoint",
]
