"""invoice seals; triggers that also refuse INSERT OR REPLACE (SQLite) and TRUNCATE (PostgreSQL)

Revision ID: 0011
Revises: 0010

An issued invoice and the charges it billed get a seal (`store/seals.py`), kept in
`invoice_seals`, which nothing may change once written. Invoices issued before this revision
get a row without a seal, sealed by the first start (it needs the audit key). SQLite's
`INSERT OR REPLACE` deletes the old row without firing DELETE triggers, so inserts that would
replace a sealed row are refused (billed charges: ignored, which keeps rating's
`ON CONFLICT DO NOTHING` working). `store/triggers.py` holds the same statements, to check
them at start and restore them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_IMMUTABLE = "invoices are immutable: corrections go into a later invoice"
_SEALED = "invoice seals are written once"
_SQLITE = [
    "CREATE TRIGGER invoices_no_replace BEFORE INSERT ON invoices "
    "WHEN EXISTS (SELECT 1 FROM invoices WHERE id = NEW.id OR number = NEW.number "
    "OR (tenant = NEW.tenant AND period_start = NEW.period_start AND currency = NEW.currency)) "
    "BEGIN SELECT RAISE(ABORT, 'invoices are immutable: corrections go into a later invoice'); "
    "END",
    "CREATE TRIGGER charges_billed_no_replace BEFORE INSERT ON usage_charges "
    "WHEN EXISTS (SELECT 1 FROM usage_charges WHERE request_id = NEW.request_id "
    "AND token_class = NEW.token_class AND invoice_id IS NOT NULL) "
    "BEGIN SELECT RAISE(IGNORE); END",
    "CREATE TRIGGER invoice_seals_no_update BEFORE UPDATE ON invoice_seals "
    "WHEN OLD.seal IS NOT NULL OR NEW.invoice_id IS NOT OLD.invoice_id "
    f"BEGIN SELECT RAISE(ABORT, '{_SEALED}'); END",
    "CREATE TRIGGER invoice_seals_no_delete BEFORE DELETE ON invoice_seals "
    f"BEGIN SELECT RAISE(ABORT, '{_SEALED}'); END",
    "CREATE TRIGGER invoice_seals_no_replace BEFORE INSERT ON invoice_seals "
    "WHEN EXISTS (SELECT 1 FROM invoice_seals WHERE invoice_id = NEW.invoice_id) "
    "BEGIN SELECT RAISE(ABORT, 'invoice seals are written once'); END",
]
_POSTGRES = [
    f"""CREATE FUNCTION tokenmill_seal_immutable() RETURNS trigger AS $$
        BEGIN
          IF TG_OP = 'DELETE' OR OLD.seal IS NOT NULL OR NEW.invoice_id <> OLD.invoice_id THEN
            RAISE EXCEPTION '{_SEALED}';
          END IF;
          RETURN NEW;
        END $$ LANGUAGE plpgsql""",
    f"""CREATE FUNCTION tokenmill_no_truncate() RETURNS trigger AS $$
        BEGIN
          RAISE EXCEPTION '{_IMMUTABLE}';
        END $$ LANGUAGE plpgsql""",
    "CREATE TRIGGER invoice_seals_immutable BEFORE UPDATE OR DELETE ON invoice_seals "
    "FOR EACH ROW EXECUTE FUNCTION tokenmill_seal_immutable()",
    "CREATE TRIGGER invoices_no_truncate BEFORE TRUNCATE ON invoices "
    "FOR EACH STATEMENT EXECUTE FUNCTION tokenmill_no_truncate()",
    "CREATE TRIGGER charges_no_truncate BEFORE TRUNCATE ON usage_charges "
    "FOR EACH STATEMENT EXECUTE FUNCTION tokenmill_no_truncate()",
    "CREATE TRIGGER invoice_seals_no_truncate BEFORE TRUNCATE ON invoice_seals "
    "FOR EACH STATEMENT EXECUTE FUNCTION tokenmill_no_truncate()",
]


def upgrade() -> None:
    op.create_table(
        "invoice_seals",
        sa.Column("invoice_id", sa.String(32), primary_key=True),
        sa.Column("seal", sa.String(64), nullable=True),
        sa.Column("mac", sa.String(64), nullable=True),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.execute("INSERT INTO invoice_seals (invoice_id) SELECT id FROM invoices")
    for statement in _POSTGRES if op.get_bind().dialect.name == "postgresql" else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for trigger, table in (
            ("invoice_seals_no_truncate", "invoice_seals"),
            ("charges_no_truncate", "usage_charges"),
            ("invoices_no_truncate", "invoices"),
            ("invoice_seals_immutable", "invoice_seals"),
        ):
            op.execute(f"DROP TRIGGER {trigger} ON {table}")
        op.execute("DROP FUNCTION tokenmill_no_truncate()")
        op.execute("DROP FUNCTION tokenmill_seal_immutable()")
    else:
        op.execute("DROP TRIGGER charges_billed_no_replace")
        op.execute("DROP TRIGGER invoices_no_replace")
    op.drop_table("invoice_seals")  # its own triggers go with it
