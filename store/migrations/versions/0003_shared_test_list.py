"""the iMocha test list cached in the workspace row, shared by replicas

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("tests_cache", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("tests_loaded_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("tests_loaded_at")
        batch.drop_column("tests_cache")
