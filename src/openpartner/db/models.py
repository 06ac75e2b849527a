"""Imports every table so ``Base.metadata`` is complete (Alembic autogenerate, drift checks)."""

from openpartner.accounts.models import ApiKey
from openpartner.clicks.models import Click
from openpartner.db.base import Base
from openpartner.links.models import Link
from openpartner.partners.models import Partner
from openpartner.programs.models import Program
from openpartner.router.models import RouterInvalidation

__all__ = [
    "ApiKey",
    "Base",
    "Click",
    "Link",
    "Partner",
    "Program",
    "RouterInvalidation",
]
