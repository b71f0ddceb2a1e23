"""usage history: usage and revenue summed per hour and per day, filled from the ledger

The rollups are kept as the ledger and the rating step write (`metering/rollup.py`,
`billing/revenue_rollup.py`); this fills them from what an upgraded database already holds,
with the same rules in SQL: a bucket starts at the whole seconds of `created_at` less their
remainder by the bucket's length, an error is outcome "error" or status >= 500, a TTFT falls in
the first bucket whose bound it does not pass. The statements are frozen here, as a migration
must be; a test keeps them equal to the live code's sums.

Revision ID: 0015
Revises: 0014
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_SPANS = (3600, 86400)
_TTFT_BOUNDS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
_TTFT_COLUMNS = [f"ttft_ms_{b}" for b in _TTFT_BOUNDS] + ["ttft_ms_inf"]
_SUMS = ["requests", "errors", "prompt_tokens", "cached_tokens", "completion_tokens"]


def _dimensions() -> list[sa.Column[Any]]:
    return [
        sa.Column("bucket_s", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("bucket", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("agent", sa.String(32), primary_key=True),
    ]


def upgrade() -> None:
    op.create_table(
        "usage_rollup",
        *_dimensions(),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _SUMS + _TTFT_COLUMNS),
    )
    op.create_index("ix_usage_rollup_tenant", "usage_rollup", ["tenant", "bucket_s", "bucket"])
    op.create_table(
        "revenue_rollup",
        *_dimensions(),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("pico", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_revenue_rollup_tenant", "revenue_rollup", ["tenant", "bucket_s", "bucket"])
    dialect = op.get_bind().dialect.name
    for span in _SPANS:
        op.execute(_fill_usage(span, dialect))
        op.execute(_fill_revenue(span, dialect))


def _start(column: str, span: int, dialect: str) -> str:
    """A bucket's start: whole seconds (truncated, as Python's int(); created_at >= 0) less
    their remainder, in integers, so it matches the live code exactly. PostgreSQL's cast rounds,
    hence FLOOR there."""
    if dialect == "sqlite":
        whole = f"CAST({column} AS INTEGER)"
    else:
        whole = f"CAST(FLOOR({column}) AS BIGINT)"
    return f"({whole} - {whole} % {span})"


def _ttft_counts() -> list[str]:
    """One count per TTFT bucket: (previous bound, bound], the last above every bound."""
    lows = [f"ttft_ms > {b}" for b in _TTFT_BOUNDS]
    highs = [f"ttft_ms <= {b}" for b in _TTFT_BOUNDS]
    tests = [
        highs[0],
        *(f"{lo} AND {hi}" for lo, hi in zip(lows[:-1], highs[1:], strict=True)),
        lows[-1],
    ]
    return [f"SUM(CASE WHEN {test} THEN 1 ELSE 0 END)" for test in tests]


def _fill_usage(span: int, dialect: str) -> str:
    columns = ", ".join(["bucket_s", "bucket", "tenant", "key_id", "model", "agent", *_SUMS,
                         *_TTFT_COLUMNS])  # fmt: skip
    sums = [
        "COUNT(*)",
        "SUM(CASE WHEN outcome = 'error' OR status >= 500 THEN 1 ELSE 0 END)",
        "SUM(prompt_tokens)",
        "SUM(cached_tokens)",
        "SUM(completion_tokens)",
        *_ttft_counts(),
    ]
    return (
        f"INSERT INTO usage_rollup ({columns}) "  # noqa: S608 - constants only
        f"SELECT {span}, {_start('created_at', span, dialect)}, tenant, key_id, model, "
        f"COALESCE(agent, ''), {', '.join(sums)} FROM usage_records GROUP BY 2, 3, 4, 5, 6"
    )


def _fill_revenue(span: int, dialect: str) -> str:
    columns = "bucket_s, bucket, tenant, key_id, model, agent, currency, pico"
    return (
        f"INSERT INTO revenue_rollup ({columns}) "  # noqa: S608 - constants only
        f"SELECT {span}, {_start('c.created_at', span, dialect)}, c.tenant, "
        "COALESCE(r.key_id, ''), c.model, COALESCE(r.agent, ''), c.currency, SUM(c.pico) "
        "FROM usage_charges c LEFT JOIN usage_records r ON r.request_id = c.request_id "
        "GROUP BY 2, 3, 4, 5, 6, 7"
    )


def downgrade() -> None:
    op.drop_table("revenue_rollup")
    op.drop_table("usage_rollup")
