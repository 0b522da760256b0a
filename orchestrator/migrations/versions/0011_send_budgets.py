"""send budgets: global per-key send windows (campaign throttles, SMTP relays, Pages)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "send_budgets",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("window_index", sa.BigInteger(), nullable=False),
        sa.Column("period_seconds", sa.Integer(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("granted", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_send_budgets")),
    )


def downgrade() -> None:
    op.drop_table("send_budgets")
