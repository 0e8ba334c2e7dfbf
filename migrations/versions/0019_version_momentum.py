"""versions.momentum_key/momentum_sha256: SGD momentum carried to the next update (carry_momentum)

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("momentum_key", sa.String(255), nullable=True))
        batch.add_column(sa.Column("momentum_sha256", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("momentum_sha256")
        batch.drop_column("momentum_key")
