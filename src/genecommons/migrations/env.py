"""Alembic environment: migrates the database named by the caller's configuration."""

from __future__ import annotations

from alembic import context

import genecommons.access.tables
import genecommons.archive.tables
import genecommons.catalog.tables
import genecommons.fingerprint.tables
import genecommons.ledger.tables
import genecommons.privacy.tables
import genecommons.variants.tables  # noqa: F401  (registers the tables on the metadata)
from genecommons.db import Base, make_engine

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "sqlalchemy.url must be set by the caller"

if context.is_offline_mode():
    context.configure(
        url=url, target_metadata=Base.metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    given = config.attributes.get("connection")  # a connection the caller opened itself
    if given is not None:
        context.configure(connection=given, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        # the SQLCipher key of an SQLite file, given by the caller (`migrate.upgrade`)
        engine = make_engine(url, key=config.attributes.get("database_key"))
        with engine.connect() as connection:
            context.configure(
                connection=connection, target_metadata=Base.metadata, render_as_batch=True
            )
            with context.begin_transaction():
                context.run_migrations()
        engine.dispose()
