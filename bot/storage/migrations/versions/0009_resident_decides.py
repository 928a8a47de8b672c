"""The resident decides how we reach them; DELETE; a queue ordered by risk (issue 16)

- residents.contact_chosen_at: when the resident chose the contact preference herself (until then
  it is a default: contact.default_for).
- opt_out_markers: the keyed hash (crypto.opt_out_marker) of a number that had opted out and then erased its data
  by texting DELETE, so nothing the line starts can reach it again before it texts START.
- referrals.queue_at (the score as a time: created_at minus the risk bonus, triage.risk_minutes),
  referrals.held_texts (texts that raised it during a crisis hold) and referrals.repeat (another
  referral from the same person in the 7 days before it).

Revision ID: 0009
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("residents") as batch:
        batch.add_column(sa.Column("contact_chosen_at", sa.DateTime(timezone=True), nullable=True))
    # A preference set before this revision was said by the resident herself ("don't text me, he checks my phone").
    op.execute(
        "UPDATE residents SET contact_chosen_at = COALESCE(last_seen_at, created_at) WHERE contact_preference <> 'any'"
    )
    op.create_table(
        "opt_out_markers",
        sa.Column("phone_lookup", sa.String(length=64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("referrals") as batch:
        batch.add_column(sa.Column("queue_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("held_texts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("repeat", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE referrals SET queue_at = created_at")
    with op.batch_alter_table("referrals") as batch:
        batch.alter_column("queue_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.create_index("ix_referrals_status_tier_queue", ["status", "tier", "queue_at"])


def downgrade() -> None:
    with op.batch_alter_table("referrals") as batch:
        batch.drop_index("ix_referrals_status_tier_queue")
        batch.drop_column("repeat")
        batch.drop_column("held_texts")
        batch.drop_column("queue_at")
    op.drop_table("opt_out_markers")
    with op.batch_alter_table("residents") as batch:
        batch.drop_column("contact_chosen_at")
