"""principals: six roles, scoped keys with limits, agents, attribution in the ledger

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The two roles before this revision, and what they become.
_RENAMED = {"admin": ("platform-admin", "management"), "inference": ("member", "inference")}


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(64), sa.ForeignKey("tenants.name"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("tenant", "name", name="uq_agents_tenant_name"),
    )
    op.create_index("ix_agents_tenant", "agents", ["tenant"])
    with op.batch_alter_table("tenants") as batch:  # the PII guard's mode; NULL: the default
        batch.add_column(sa.Column("pii_mode", sa.String(8), nullable=True))
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scopes", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("models", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("tools", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("rpm", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("tpm", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("concurrency", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("budget_tokens", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("budget_period", sa.String(8), nullable=False, server_default="total")
        )
        batch.add_column(sa.Column("agent_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("owner", sa.String(200), nullable=True))
        batch.add_column(sa.Column("rotated_from", sa.String(32), nullable=True))
        batch.add_column(sa.Column("budget_key", sa.String(32), nullable=True))
        batch.create_index("ix_api_keys_budget_key", ["budget_key"])
        batch.create_foreign_key("fk_api_keys_agent", "agents", ["agent_id"], ["id"])
    keys = sa.table("api_keys", sa.column("role", sa.String), sa.column("scopes", sa.String))
    for old, (role, scopes) in _RENAMED.items():
        op.execute(keys.update().where(keys.c.role == old).values(role=role, scopes=scopes))
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("agent", sa.String(32), nullable=True))
        batch.add_column(sa.Column("owner", sa.String(200), nullable=True))
        batch.add_column(sa.Column("trace_id", sa.String(32), nullable=True))
    op.create_index("ix_usage_records_agent", "usage_records", ["agent"])
    op.create_index("ix_usage_records_key_id", "usage_records", ["key_id"])
    with op.batch_alter_table("audit_head") as batch:  # audit retention
        batch.add_column(sa.Column("base_seq", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("base_hash", sa.String(64), nullable=False, server_default="0" * 64)
        )
        batch.add_column(sa.Column("base_mac", sa.String(64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("audit_head") as batch:
        for col in ("base_mac", "base_hash", "base_seq"):
            batch.drop_column(col)
    op.drop_index("ix_usage_records_key_id", "usage_records")
    op.drop_index("ix_usage_records_agent", "usage_records")
    with op.batch_alter_table("usage_records") as batch:
        for col in ("trace_id", "owner", "agent"):
            batch.drop_column(col)
    keys = sa.table("api_keys", sa.column("role", sa.String))
    for old, (role, _) in _RENAMED.items():
        op.execute(keys.update().where(keys.c.role == role).values(role=old))
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_constraint("fk_api_keys_agent", type_="foreignkey")
        for col in (
            "rotated_from",
            "owner",
            "agent_id",
            "budget_period",
            "budget_tokens",
            "concurrency",
            "tpm",
            "rpm",
            "expires_at",
            "tools",
            "models",
            "scopes",
        ):
            batch.drop_column(col)
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("pii_mode")
    op.drop_index("ix_agents_tenant", "agents")
    op.drop_table("agents")
