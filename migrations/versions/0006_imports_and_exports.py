"""imported versions (no mega-batch, origin), metrics of untrained weights, exported artefacts

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.alter_column("megabatch_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(
            sa.Column("origin", sa.String(length=16), nullable=False, server_default="update")
        )
    with op.batch_alter_table("metrics") as batch:
        batch.alter_column("train_accuracy", existing_type=sa.Float(), nullable=True)
        batch.alter_column("prequential_accuracy", existing_type=sa.Float(), nullable=True)
    op.create_table(
        "exports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("blob_key", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("card", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["versions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("version_id", "format"),
    )
    op.create_index("ix_exports_version_id", "exports", ["version_id"])


def downgrade() -> None:
    op.drop_index("ix_exports_version_id", table_name="exports")
    op.drop_table("exports")
    with op.batch_alter_table("metrics") as batch:
        batch.alter_column("prequential_accuracy", existing_type=sa.Float(), nullable=False)
        batch.alter_column("train_accuracy", existing_type=sa.Float(), nullable=False)
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("origin")
        batch.alter_column("megabatch_id", existing_type=sa.Integer(), nullable=False)
