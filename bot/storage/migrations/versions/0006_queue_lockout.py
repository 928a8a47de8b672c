"""referrals.tier, login_failures and rate_counts; the caseworker-row lockout goes

- referrals.tier orders the queue (triage.Tier): existing web-chat referrals become tier 1, below
  SMS ones, as new ones are.
- login_failures counts wrong passwords per (account, client), so the lockout throttles the
  clients that fail, not the account for everyone; caseworkers.failed_logins and locked_until go.
- rate_counts holds per-window counts (new web-chat referrals per address per hour).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("referrals") as batch:
        batch.add_column(sa.Column("tier", sa.Integer(), nullable=False, server_default="0"))
        batch.create_index("ix_referrals_status_tier", ["status", "tier", "created_at"])
    op.execute("UPDATE referrals SET tier = 1 WHERE resident_id IN (SELECT id FROM residents WHERE channel = 'web')")
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_key", sa.String(length=64), nullable=False),
        sa.Column("client_key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("account_key", "client_key", name="uq_login_failures_pair"),
    )
    op.create_index("ix_login_failures_client", "login_failures", ["client_key"])
    op.create_table(
        "rate_counts",
        sa.Column("scope", sa.String(length=32), primary_key=True),
        sa.Column("key", sa.String(length=64), primary_key=True),
        sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
    )
    with op.batch_alter_table("caseworkers") as batch:
        batch.drop_column("failed_logins")
        batch.drop_column("locked_until")


def downgrade() -> None:
    with op.batch_alter_table("caseworkers") as batch:
        batch.add_column(sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    op.drop_table("rate_counts")
    op.drop_index("ix_login_failures_client", table_name="login_failures")
    op.drop_table("login_failures")
    with op.batch_alter_table("referrals") as batch:
        batch.drop_index("ix_referrals_status_tier")
        batch.drop_column("tier")
