"""What an ordinary text needs, kept on its conversation row (issue 14)

- conversation_sessions.open_referral_id: the resident's newest open referral, set whenever one opens
  (created, or reopened); a pointer that may go stale when the referral closes, never missing one.
- conversation_sessions.checkin_id: the newest check-in sent to the resident (set when it is sent).
- conversation_sessions.recent_since / recent_count: the loop guard's count of texts in the minute
  from recent_since.
- referrals and follow_ups indexed by resident (and status): a first text asks whether the resident
  has an open referral or a check-in waiting, and the slow path finds them, without a scan.

Plain integers, not foreign keys: a stale or purged pointer only sends that text down the slow path,
which reads the referral and the check-in again and rewrites both.

Revision ID: 0010
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0011"
branch_labels = None
depends_on = None

_OPEN = "('new', 'claimed', 'contacted')"


def upgrade() -> None:
    with op.batch_alter_table("conversation_sessions") as batch:
        batch.add_column(sa.Column("open_referral_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("checkin_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("recent_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("recent_count", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_referrals_resident_status", "referrals", ["resident_id", "status"])
    op.create_index("ix_follow_ups_resident_status", "follow_ups", ["resident_id", "status"])
    op.execute(
        "UPDATE conversation_sessions SET open_referral_id = (SELECT max(r.id) FROM referrals r"
        f" WHERE r.resident_id = conversation_sessions.resident_id AND r.status IN {_OPEN})"
    )
    op.execute(
        "UPDATE conversation_sessions SET checkin_id = (SELECT max(f.id) FROM follow_ups f"
        " WHERE f.resident_id = conversation_sessions.resident_id AND f.status IN ('sent', 'logged'))"
    )


def downgrade() -> None:
    op.drop_index("ix_follow_ups_resident_status", table_name="follow_ups")
    op.drop_index("ix_referrals_resident_status", table_name="referrals")
    with op.batch_alter_table("conversation_sessions") as batch:
        batch.drop_column("recent_count")
        batch.drop_column("recent_since")
        batch.drop_column("checkin_id")
        batch.drop_column("open_referral_id")
