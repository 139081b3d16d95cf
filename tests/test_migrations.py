"""Alembic migrations create exactly the schema the code declares, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from genecommons.db import Base, DatabaseKey, make_engine
from genecommons.migrate import upgrade


def test_migrations_match_metadata_and_are_idempotent(
    database_url: str, sqlcipher_key: DatabaseKey
) -> None:
    upgrade(database_url, key=sqlcipher_key)
    upgrade(database_url, key=sqlcipher_key)  # safe to run again
    engine = make_engine(database_url, key=sqlcipher_key)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            differences = compare_metadata(context, Base.metadata)
        assert differences == []
    finally:
        engine.dispose()
