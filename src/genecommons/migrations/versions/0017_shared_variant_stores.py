"""variant stores shared by the datasets of one joint-called VCF

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 14:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # `store`: the name the store is sealed with (its dataset, or the datasets it was built for
    # joined by "+"); a store id may now be bound to each of those datasets
    with op.batch_alter_table("variant_stores", schema=None) as batch_op:
        batch_op.add_column(sa.Column("store", sa.String(length=255), nullable=True))
        batch_op.drop_constraint("uq_variant_stores_store_id", type_="unique")
        batch_op.create_index("ix_variant_stores_store_id", ["store_id"], unique=False)
    op.execute("UPDATE variant_stores SET store = dataset")
    with op.batch_alter_table("variant_stores", schema=None) as batch_op:
        batch_op.alter_column("store", existing_type=sa.String(length=255), nullable=False)


def downgrade() -> None:
    # a store shared by several datasets stays bound to the first of them only
    op.execute(
        "DELETE FROM variant_stores WHERE id NOT IN "
        "(SELECT MIN(id) FROM variant_stores GROUP BY store_id)"
    )
    with op.batch_alter_table("variant_stores", schema=None) as batch_op:
        batch_op.drop_index("ix_variant_stores_store_id")
        batch_op.create_unique_constraint("uq_variant_stores_store_id", ["store_id"])
        batch_op.drop_column("store")
