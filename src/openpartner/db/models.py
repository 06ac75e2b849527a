"""Imports every table so ``Base.metadata`` is complete (Alembic autogenerate, drift checks)."""

from openpartner.accounts.models import ApiKey
from openpartner.attribution.records import AttributionRow
from openpartner.clicks.models import Click
from openpartner.coupons.models import PromotionCode
from openpartner.db.base import Base
from openpartner.deals.models import Deal, Touchpoint
from openpartner.events.models import Event
from openpartner.identity.models import IdentityEdge
from openpartner.integrations.stripe.models import StripeEvent
from openpartner.links.models import Link
from openpartner.partners.models import Partner
from openpartner.programs.models import Program
from openpartner.worker.models import Job

__all__ = [
    "ApiKey",
    "AttributionRow",
    "Base",
    "Click",
    "Deal",
    "Event",
    "IdentityEdge",
    "Job",
    "Link",
    "Partner",
    "Program",
    "PromotionCode",
    "StripeEvent",
    "Touchpoint",
]
