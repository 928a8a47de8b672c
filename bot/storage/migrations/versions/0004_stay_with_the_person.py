"""Crisis kind, contact preference and honest promises: who was told about an urgent referral

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("residents") as batch:
        batch.add_column(sa.Column("contact_preference", sa.String(16), nullable=False, server_default="any"))
    with op.batch_alter_table("referrals") as batch:
        batch.add_column(sa.Column("crisis_kind", sa.String(16), nullable=True))
        batch.add_column(sa.Column("escalation_due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("on_call_told_at", sa.DateTime(timezone=True), nullable=True))
    # Crisis referrals made before this revision carry their kind in the reason ("crisis:abuse").
    op.execute("UPDATE referrals SET crisis_kind = substr(reason, 8) WHERE reason LIKE 'crisis:%'")


def downgrade() -> None:
    with op.batch_alter_table("referrals") as batch:
        batch.drop_column("on_call_told_at")
        batch.drop_column("notified_at")
        batch.drop_column("escalation_due_at")
        batch.drop_column("crisis_kind")
    with op.batch_alter_table("residents") as batch:
        batch.drop_column("contact_preference")
