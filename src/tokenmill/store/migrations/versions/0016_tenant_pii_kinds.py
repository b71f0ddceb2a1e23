"""tenants may name the kinds of personal data the PII guard looks for in their traffic

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:  # a list of kinds; NULL: the server's
        batch.add_column(sa.Column("pii_kinds", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("pii_kinds")
