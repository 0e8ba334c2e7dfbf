"""metrics: reset and importance seconds, so the row holds every field of the engine's UpdateMetrics

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        # versions published before this revision recorded only their sum (unlearn_seconds)
        batch.add_column(sa.Column("reset_seconds", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("importance_seconds", sa.Float(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        batch.drop_column("importance_seconds")
        batch.drop_column("reset_seconds")
