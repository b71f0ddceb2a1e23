"""billing: price rules, priced usage charges, immutable invoices

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Invoices never change once issued; a billed charge stays billed. SQLite and PostgreSQL
# spell triggers differently; both refuse with the same words.
_IMMUTABLE = "invoices are immutable: corrections go into a later invoice"
_SQLITE = [
    f"CREATE TRIGGER invoices_no_update BEFORE UPDATE ON invoices "
    f"BEGIN SELECT RAISE(ABORT, '{_IMMUTABLE}'); END",
    f"CREATE TRIGGER invoices_no_delete BEFORE DELETE ON invoices "
    f"BEGIN SELECT RAISE(ABORT, '{_IMMUTABLE}'); END",
    f"CREATE TRIGGER charges_billed_no_update BEFORE UPDATE ON usage_charges "
    f"WHEN OLD.invoice_id IS NOT NULL BEGIN SELECT RAISE(ABORT, '{_IMMUTABLE}'); END",
    f"CREATE TRIGGER charges_billed_no_delete BEFORE DELETE ON usage_charges "
    f"WHEN OLD.invoice_id IS NOT NULL BEGIN SELECT RAISE(ABORT, '{_IMMUTABLE}'); END",
]
_POSTGRES = [
    f"""CREATE FUNCTION tokenmill_immutable() RETURNS trigger AS $$
        BEGIN
          IF TG_TABLE_NAME = 'invoices' OR OLD.invoice_id IS NOT NULL THEN
            RAISE EXCEPTION '{_IMMUTABLE}';
          END IF;
          RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
        END $$ LANGUAGE plpgsql""",
    "CREATE TRIGGER invoices_immutable BEFORE UPDATE OR DELETE ON invoices "
    "FOR EACH ROW EXECUTE FUNCTION tokenmill_immutable()",
    "CREATE TRIGGER charges_billed_immutable BEFORE UPDATE OR DELETE ON usage_charges "
    "FOR EACH ROW EXECUTE FUNCTION tokenmill_immutable()",
]


def upgrade() -> None:
    op.create_table(
        "price_rules",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("book", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("token_class", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("pico_per_token", sa.BigInteger(), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=True),
        sa.Column("effective_from", sa.Float(), nullable=False),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "book",
            "version",
            "model",
            "token_class",
            "tenant",
            "currency",
            name="uq_price_rules_identity",
        ),
    )
    op.create_table(
        "usage_charges",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("token_class", sa.String(16), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("rule_id", sa.String(32), sa.ForeignKey("price_rules.id"), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("pico", sa.BigInteger(), nullable=False),
        sa.Column("invoice_id", sa.String(32), nullable=True),
    )
    op.create_index("ix_usage_charges_tenant", "usage_charges", ["tenant"])
    op.create_index("ix_usage_charges_created_at", "usage_charges", ["created_at"])
    op.create_index("ix_usage_charges_invoice_id", "usage_charges", ["invoice_id"])
    op.create_table(
        "invoices",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("number", sa.String(120), nullable=False, unique=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("period_start", sa.Float(), nullable=False),
        sa.Column("period_end", sa.Float(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tax_rate", sa.String(16), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.UniqueConstraint("tenant", "period_start", "currency", name="uq_invoices_period"),
    )
    op.create_index("ix_invoices_tenant", "invoices", ["tenant"])
    for statement in _POSTGRES if op.get_bind().dialect.name == "postgresql" else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER charges_billed_immutable ON usage_charges")
        op.execute("DROP TRIGGER invoices_immutable ON invoices")
        op.execute("DROP FUNCTION tokenmill_immutable()")
    op.drop_index("ix_invoices_tenant", "invoices")
    op.drop_table("invoices")
    for name in ("invoice_id", "created_at", "tenant"):
        op.drop_index(f"ix_usage_charges_{name}", "usage_charges")
    op.drop_table("usage_charges")
    op.drop_table("price_rules")
