"""promotion gates and challengers: a gate record and audit inputs per version, sibling versions
(one per candidate strategy) of a mega-batch

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OLD_COLUMNS = ["model_id", "megabatch_id"]
NAMING = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}  # names SQLite's unnamed constraints


def _old_constraint_name() -> str:
    """PostgreSQL named it itself; SQLite left it unnamed (NAMING names it in batch mode)."""
    for constraint in sa.inspect(op.get_bind()).get_unique_constraints("versions"):
        if constraint["column_names"] == OLD_COLUMNS and constraint["name"]:
            return constraint["name"]
    return "uq_versions_model_id_megabatch_id"


def upgrade() -> None:
    name = _old_constraint_name()
    with op.batch_alter_table("versions", naming_convention=NAMING) as batch:
        batch.drop_constraint(name, type_="unique")
        batch.create_unique_constraint(
            "uq_versions_candidate", ["model_id", "megabatch_id", "strategy"]
        )
        batch.add_column(sa.Column("gate", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("inputs", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("candidate_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("versions", naming_convention=NAMING) as batch:
        batch.drop_column("candidate_seconds")
        batch.drop_column("inputs")
        batch.drop_column("gate")
        batch.drop_constraint("uq_versions_candidate", type_="unique")
        batch.create_unique_constraint("uq_versions_model_id_megabatch_id", OLD_COLUMNS)
