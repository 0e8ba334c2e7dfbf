"""megabatches: the data gate's verdict (quarantined mega-batches, who released or discarded them)

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("megabatches") as batch:
        batch.add_column(sa.Column("data_gate", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("megabatches") as batch:
        batch.drop_column("data_gate")
