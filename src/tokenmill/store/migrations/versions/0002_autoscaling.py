"""autoscaling: a replica range per deployment

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("min_replicas", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_replicas", sa.Integer(), nullable=True))
    # Deployments made before autoscaling keep their fixed size.
    op.execute("UPDATE deployments SET min_replicas = replicas, max_replicas = replicas")
    with op.batch_alter_table("deployments") as batch:
        batch.alter_column("min_replicas", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("max_replicas", existing_type=sa.Integer(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("max_replicas")
        batch.drop_column("min_replicas")
