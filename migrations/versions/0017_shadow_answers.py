"""shadow_answers: what shadow versions answered on logged requests

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shadow_answers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id"), nullable=False),
        sa.Column("prediction_id", sa.String(32), sa.ForeignKey("predictions.id"), nullable=False),
        sa.Column("version_number", sa.Integer(), nullable=False),
        sa.Column("predicted", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.UniqueConstraint("prediction_id", "version_number"),
    )
    op.create_index("ix_shadow_answers_model_id", "shadow_answers", ["model_id"])
    op.create_index("ix_shadow_answers_prediction_id", "shadow_answers", ["prediction_id"])


def downgrade() -> None:
    op.drop_index("ix_shadow_answers_prediction_id", "shadow_answers")
    op.drop_index("ix_shadow_answers_model_id", "shadow_answers")
    op.drop_table("shadow_answers")
