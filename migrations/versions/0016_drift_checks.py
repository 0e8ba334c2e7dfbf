"""drift: each version's reference (its gate rows' confidences and classes) and the checks made

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("drift_reference", sa.JSON(), nullable=True))
    op.create_table(
        "drift_checks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id"), nullable=False),
        sa.Column("version_number", sa.Integer(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_rows", sa.Integer(), nullable=False),
        sa.Column("reference_rows", sa.Integer(), nullable=False),
        sa.Column("confidence_statistic", sa.Float(), nullable=False),
        sa.Column("confidence_p_value", sa.Float(), nullable=False),
        sa.Column("class_p_value", sa.Float(), nullable=False),
        sa.Column("drifted", sa.Boolean(), nullable=False),
        sa.Column("sealed_megabatch", sa.Integer(), nullable=True),
    )
    op.create_index("ix_drift_checks_model_id", "drift_checks", ["model_id"])


def downgrade() -> None:
    op.drop_index("ix_drift_checks_model_id", "drift_checks")
    op.drop_table("drift_checks")
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("drift_reference")
