"""power samples per node, measured or estimated

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "power_samples",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("node", sa.String(200), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("watts", sa.Float(), nullable=False),
        sa.Column("estimated", sa.Boolean(), nullable=False),
        sa.Column("basis", sa.String(300), nullable=False),
    )
    op.create_index("ix_power_samples_node_at", "power_samples", ["node", "at"])


def downgrade() -> None:
    op.drop_index("ix_power_samples_node_at", "power_samples")
    op.drop_table("power_samples")
