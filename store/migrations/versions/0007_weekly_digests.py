"""weekly digests: one row per plan and week, the plan's digest switch and the workspace's time zone

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "weekly_digests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("week", sa.String(length=10), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=True),
        sa.Column("file_id", sa.String(length=32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_weekly_digests_plan_id_plans"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_weekly_digests_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_weekly_digests")),
        sa.UniqueConstraint("plan_id", "week", name=op.f("uq_weekly_digests_plan_id_week")),
    )
    with op.batch_alter_table("plans") as batch:
        batch.add_column(sa.Column("weekly_digest", sa.Boolean(), server_default=sa.text("true"), nullable=False))
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("timezone")
    with op.batch_alter_table("plans") as batch:
        batch.drop_column("weekly_digest")
    op.drop_table("weekly_digests")
