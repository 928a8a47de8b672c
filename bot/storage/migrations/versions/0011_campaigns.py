"""campaigns: canvasses with a code on their cards, and the campaign that reached each resident first

Revision ID: 0011
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None

NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}  # 0001's unnamed UNIQUEs, reflected by batch mode
CAMPAIGN_FK = "fk_residents_campaign_id"


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(length=16), nullable=False, unique=True),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("zips", sa.JSON(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("residents", naming_convention=NAMING) as batch:
        batch.add_column(sa.Column("campaign_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(CAMPAIGN_FK, "campaigns", ["campaign_id"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("residents", naming_convention=NAMING) as batch:
        batch.drop_constraint(CAMPAIGN_FK, type_="foreignkey")
        batch.drop_column("campaign_id")
    op.drop_table("campaigns")
