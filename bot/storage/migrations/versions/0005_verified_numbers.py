"""verified numbers: a number typed on the web chat is proved by a code and never held on a web record

Schema:
- `residents.linked_resident_id` (a web visitor -> the SMS record of the number they proved) and
  `residents.phone_verified_at`;
- `phone_codes`: one-time codes, as a keyed hash, with their tries, per visitor and phone lookup;
- CHECK `ck_residents_web_holds_no_number`: a web record holds no phone and no phone lookup, so an
  inbound text can never land on one.

Untangling what the old `/chat/phone` left behind. No web number was ever verified before this
revision, so:
1. A web record that carries SMS messages (an inbound message whose channel is not `web`: a text
   from the number that was typed into that chat found the chat's record) is tangled with the
   number's owner. Its chat key is revoked, so the browser that holds it reads and writes nothing
   more (as after Leave now), and the number moves to a new SMS record of its own. The new record
   takes the number's opt-out (a STOP from either side is kept: nobody who may have said STOP is
   texted), undeliverable reason, language, time zone and last text, and the record's pending
   check-ins (they were meant for that number; their referral stays as it is). Messages,
   referrals and notes stay where they are, for the caseworkers. An audit event
   `migration.untangled` names both records.
2. Every other web record that holds a number loses it (phone, phone lookup, undeliverable
   reason): caseworker texts and check-ins for it go to the chat page only, until the visitor
   proves a number with a code.
3. Links kept only in audit events (`consent.recorded` with `phone_resident_id`: a visitor typed
   the number of someone who had texted before) were never verified; nothing reads them any more.

The stored phone and lookup are moved as they are (ciphertext under DATA_KEY), so no key is needed.
Downgrade drops the new table, columns and check; numbers cleared or moved are not put back.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}  # 0001's unnamed UNIQUEs, reflected by batch mode
WEB_HOLDS_NO_NUMBER = "ck_residents_web_holds_no_number"
LINKED_FK = "fk_residents_linked_resident_id"

residents = sa.table(
    "residents",
    *(
        sa.column(c)
        for c in (
            "id",
            "phone",
            "phone_lookup",
            "chat_key",
            "channel",
            "language",
            "timezone",
            "opted_out_at",
            "consent_texts",
            "undeliverable_reason",
            "created_at",
            "last_seen_at",
        )
    ),
)
messages = sa.table(
    "messages", sa.column("resident_id"), sa.column("direction"), sa.column("channel"), sa.column("created_at")
)
follow_ups = sa.table("follow_ups", sa.column("resident_id"), sa.column("status"))
audit_events = sa.table(
    "audit_events", sa.column("at"), sa.column("action"), sa.column("resident_id"), sa.column("detail", sa.JSON)
)


def upgrade() -> None:
    with op.batch_alter_table("residents", naming_convention=NAMING) as batch:
        batch.add_column(sa.Column("linked_resident_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("phone_verified_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key(LINKED_FK, "residents", ["linked_resident_id"], ["id"], ondelete="SET NULL")
    op.create_table(
        "phone_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("phone_lookup", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=128), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["resident_id"], ["residents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_phone_codes_lookup_created", "phone_codes", ["phone_lookup", "created_at"])
    op.create_index("ix_phone_codes_resident_created", "phone_codes", ["resident_id", "created_at"])
    _untangle(op.get_bind())
    with op.batch_alter_table("residents", naming_convention=NAMING) as batch:
        batch.create_check_constraint(
            WEB_HOLDS_NO_NUMBER, "channel <> 'web' OR (phone IS NULL AND phone_lookup IS NULL)"
        )


def _untangle(conn: sa.Connection) -> None:
    """Steps 1 and 2 of the docstring."""
    web = residents.c.channel == "web"
    sms_in = sa.and_(
        messages.c.resident_id == residents.c.id, messages.c.direction == "in", messages.c.channel != "web"
    )
    tangled = (
        conn.execute(sa.select(residents).where(web, sa.exists().where(sms_in)).order_by(residents.c.id))
        .mappings()
        .all()
    )
    for row in tangled:
        conn.execute(
            residents.update()
            .where(residents.c.id == row["id"])
            .values(chat_key=None, phone=None, phone_lookup=None, undeliverable_reason=None)
        )
        if row["phone_lookup"] is None:  # purged since: nobody's number to move
            continue
        last_text = conn.scalar(
            sa.select(sa.func.max(messages.c.created_at)).where(
                messages.c.resident_id == row["id"], messages.c.direction == "in", messages.c.channel != "web"
            )
        )
        conn.execute(
            residents.insert().values(
                phone=row["phone"],
                phone_lookup=row["phone_lookup"],
                channel="sms",
                language=row["language"],
                timezone=row["timezone"],
                opted_out_at=row["opted_out_at"],
                consent_texts=True,
                undeliverable_reason=row["undeliverable_reason"],
                created_at=row["created_at"],
                last_seen_at=last_text,
            )
        )
        owner = conn.scalar(sa.select(residents.c.id).where(residents.c.phone_lookup == row["phone_lookup"]))
        conn.execute(
            follow_ups.update()
            .where(follow_ups.c.resident_id == row["id"], follow_ups.c.status == "pending")
            .values(resident_id=owner)
        )
        conn.execute(
            audit_events.insert().values(
                at=sa.func.current_timestamp(),
                action="migration.untangled",
                resident_id=row["id"],
                detail={"sms_resident_id": owner},
            )
        )
    conn.execute(
        residents.update()
        .where(web, residents.c.phone_lookup.is_not(None) | residents.c.phone.is_not(None))
        .values(phone=None, phone_lookup=None, undeliverable_reason=None)
    )


def downgrade() -> None:
    with op.batch_alter_table("residents", naming_convention=NAMING) as batch:
        batch.drop_constraint(WEB_HOLDS_NO_NUMBER, type_="check")
        batch.drop_constraint(LINKED_FK, type_="foreignkey")
        batch.drop_column("phone_verified_at")
        batch.drop_column("linked_resident_id")
    op.drop_index("ix_phone_codes_resident_created", table_name="phone_codes")
    op.drop_index("ix_phone_codes_lookup_created", table_name="phone_codes")
    op.drop_table("phone_codes")
