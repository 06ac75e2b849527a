"""publishable keys hold visitors:write; partner keys lose writes they never should have had

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 01:00:00

Publishable keys (public by design, in page source) held ``events:write``, which let anyone
reading a merchant's page post sales and refunds. They now hold only ``visitors:write`` (record
a click, identify a visitor). Keys of a revoked partner are revoked, as revoking a partner now
does. Authentication enforces both whatever a row says; this makes the rows say it too.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """UPDATE api_keys SET scopes = '["visitors:write"]', is_admin = false
        WHERE kind = 'publishable'"""
    )
    op.execute(
        """UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP
        WHERE revoked_at IS NULL AND partner_id IN
            (SELECT id FROM partners WHERE status = 'revoked')"""
    )


def downgrade() -> None:
    op.execute("""UPDATE api_keys SET scopes = '["events:write"]' WHERE kind = 'publishable'""")
