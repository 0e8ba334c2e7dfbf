"""chunk compaction: retention may shrink a chunk's blob to the rows a kept state can still reach

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chunks") as batch:
        batch.add_column(sa.Column("kept_samples", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("compacted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chunks") as batch:
        batch.drop_column("compacted_at")
        batch.drop_column("kept_samples")
