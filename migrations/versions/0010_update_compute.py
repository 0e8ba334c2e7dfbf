"""metrics: the compute each update took (epochs trained and optimiser steps)

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        # null for versions published before this revision and for imported weights
        batch.add_column(sa.Column("epochs_trained", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("optimizer_steps", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        batch.drop_column("optimizer_steps")
        batch.drop_column("epochs_trained")
