"""decisions written back to the ATS: the write-back queue, Harvest credentials, the ATS stage id

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ats_writebacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("audit_id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("reverses_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name=op.f("fk_ats_writebacks_application_id_applications"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["audit_id"], ["audit_log.id"], name=op.f("fk_ats_writebacks_audit_id_audit_log"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["reverses_id"], ["ats_writebacks.id"], name=op.f("fk_ats_writebacks_reverses_id_ats_writebacks"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_ats_writebacks_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ats_writebacks")),
        sa.UniqueConstraint("audit_id", name=op.f("uq_ats_writebacks_audit_id")),
    )
    op.create_index("ix_ats_writebacks_pending", "ats_writebacks", ["done_at", "application_id"], unique=False)
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("harvest_credentials_enc", sa.Text(), nullable=True))
    with op.batch_alter_table("applications") as batch:
        batch.add_column(sa.Column("external_stage_id", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("applications") as batch:
        batch.drop_column("external_stage_id")
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("harvest_credentials_enc")
    op.drop_index("ix_ats_writebacks_pending", table_name="ats_writebacks")
    op.drop_table("ats_writebacks")
