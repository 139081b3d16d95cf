"""Alembic migrations create exactly the schema the code declares, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from genecommons.db import Base, make_engine
from genecommons.migrate import upgrade


def test_migrations_match_metadata_and_are_idempotent(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)  # safe to run again
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            differences = compare_metadata(context, Base.metadata)
        assert differences == []
    finally:
        engine.dispose()
