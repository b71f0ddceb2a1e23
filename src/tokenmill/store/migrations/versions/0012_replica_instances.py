"""replicas as data: one row per replica instance, written by the controller that owns it

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replica_instances",
        sa.Column("id", sa.String(160), primary_key=True),
        sa.Column("deployment", sa.String(128), nullable=False, index=True),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("engine", sa.String(32), nullable=False),
        sa.Column("endpoint", sa.String(1024), nullable=True),
        sa.Column("devices", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("draining", sa.Boolean(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.Column("failure", sa.String(4000), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("heartbeat_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("replica_instances")
