"""Slack delivery at Slack's pace: lanes and shared rate budgets, the outbox row's lane, card claims

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "slack_lanes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("tat", sa.Float(), nullable=False),
        sa.Column("held_by", sa.String(length=100), nullable=True),
        sa.Column("held_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_lanes")),
        sa.UniqueConstraint("key", name=op.f("uq_slack_lanes_key")),
    )
    with op.batch_alter_table("slack_outbox") as batch:
        batch.add_column(sa.Column("lane", sa.String(length=100), nullable=True))
        batch.create_index("ix_slack_outbox_lane", ["lane", "done_at"])
    with op.batch_alter_table("slack_cards") as batch:
        batch.add_column(sa.Column("held_by", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("held_until", sa.DateTime(timezone=True), nullable=True))
    # Rows still to deliver go to their card's channel (older DM rows keep no lane: they are delivered
    # in the workspace's catch-all lane).
    op.execute(
        "UPDATE slack_outbox SET lane = (SELECT channel_id FROM slack_cards WHERE slack_cards.application_id = slack_outbox.application_id)"
        " WHERE done_at IS NULL AND kind IN ('card', 'thread')"
    )


def downgrade() -> None:
    with op.batch_alter_table("slack_cards") as batch:
        batch.drop_column("held_until")
        batch.drop_column("held_by")
    with op.batch_alter_table("slack_outbox") as batch:
        batch.drop_index("ix_slack_outbox_lane")
        batch.drop_column("lane")
    op.drop_table("slack_lanes")
