"""chunks: lost_at and lost_reason, set when an update finds a chunk's blob missing or altered

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chunks") as batch:
        batch.add_column(sa.Column("lost_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("lost_reason", sa.String(500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chunks") as batch:
        batch.drop_column("lost_reason")
        batch.drop_column("lost_at")
