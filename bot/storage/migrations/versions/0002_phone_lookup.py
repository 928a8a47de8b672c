"""residents.phone_lookup: residents are found by a keyed hash, so the phone itself can be encrypted

The lookup starts as the bare E.164 number (what it is without DATA_KEY); with a key set,
`peaceline rotate-key` rewrites it as the keyed hash and encrypts the phone. The phone column
loses its unique constraint (ciphertext differs on every write) and becomes TEXT (a Fernet token
is longer than 32 characters).

Downgrade only a database without encrypted values: it puts back VARCHAR(32) and UNIQUE(phone).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LOOKUP_UNIQUE = "uq_residents_phone_lookup"
PHONE_UNIQUE = "uq_residents_phone"
# On SQLite 0001's UNIQUE(phone) has no name; batch mode gives reflected constraints this one.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _phone_unique() -> str:
    """The unique constraint on phone: "residents_phone_key" on PostgreSQL, unnamed on SQLite."""
    for constraint in sa.inspect(op.get_bind()).get_unique_constraints("residents"):
        if constraint["column_names"] == ["phone"]:
            return constraint["name"] or PHONE_UNIQUE
    raise RuntimeError("residents has no unique constraint on phone to replace")


def upgrade() -> None:
    with op.batch_alter_table("residents", naming_convention=NAMING) as batch:
        batch.add_column(sa.Column("phone_lookup", sa.String(length=64), nullable=True))
        batch.drop_constraint(_phone_unique(), type_="unique")
        batch.alter_column("phone", type_=sa.Text(), existing_type=sa.String(length=32), existing_nullable=True)
    op.execute("UPDATE residents SET phone_lookup = phone")
    with op.batch_alter_table("residents") as batch:
        batch.create_unique_constraint(LOOKUP_UNIQUE, ["phone_lookup"])


def downgrade() -> None:
    with op.batch_alter_table("residents") as batch:
        batch.drop_constraint(LOOKUP_UNIQUE, type_="unique")
        batch.drop_column("phone_lookup")
        batch.alter_column("phone", type_=sa.String(length=32), existing_type=sa.Text(), existing_nullable=True)
        batch.create_unique_constraint(PHONE_UNIQUE, ["phone"])
