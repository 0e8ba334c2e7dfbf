"""predictions.feedback_key: the labelled sample's chunk key, claimed before the chunk is stored

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("feedback_key", sa.String(64), nullable=True))
    op.create_index("ix_predictions_feedback_key", "predictions", ["feedback_key"])


def downgrade() -> None:
    op.drop_index("ix_predictions_feedback_key", "predictions")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("feedback_key")
