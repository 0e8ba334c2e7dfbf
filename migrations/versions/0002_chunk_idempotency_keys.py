"""chunk idempotency keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 02:59:06.677173
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=128), nullable=True))
        batch_op.create_unique_constraint(
            "uq_chunks_model_idempotency", ["model_id", "idempotency_key"]
        )


def downgrade() -> None:
    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.drop_constraint("uq_chunks_model_idempotency", type_="unique")
        batch_op.drop_column("idempotency_key")
