"""update reliability: attempt records, promotion epochs, damaged versions, worker heartbeats

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(
            sa.Column("promotion_epoch", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("attempts_base", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("failures", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("runner", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("parent_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("promotion_epoch", sa.Integer(), nullable=True))
    with op.batch_alter_table("versions") as batch:
        batch.add_column(
            sa.Column("release", sa.String(length=16), nullable=False, server_default="live")
        )
        batch.add_column(sa.Column("release_note", sa.Text(), nullable=True))
        batch.add_column(sa.Column("damaged", sa.Text(), nullable=True))
        batch.add_column(sa.Column("damaged_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "workers",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("workers")
    with op.batch_alter_table("versions") as batch:
        for column in ("damaged_at", "damaged", "release_note", "release"):
            batch.drop_column(column)
    with op.batch_alter_table("jobs") as batch:
        for column in ("promotion_epoch", "parent_version", "runner", "failures", "attempts_base"):
            batch.drop_column(column)
    with op.batch_alter_table("models") as batch:
        batch.drop_column("promotion_epoch")
