"""Create or migrate the database schema with Alembic."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config

from genecommons.config import Settings
from genecommons.db import DatabaseKey, node_database_key

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(
    url: str, *, key: DatabaseKey | Callable[[], DatabaseKey] | None = None
) -> Config:
    """An Alembic configuration for the database at `url` (an SQLite file opened with `key`)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["database_key"] = key
    return config


def upgrade(url: str, *, key: DatabaseKey | Callable[[], DatabaseKey] | None = None) -> None:
    """Bring the database at `url` (an SQLite file opened with `key`) to the newest schema;
    safe to run again."""
    command.upgrade(alembic_config(url, key=key), "head")


def upgrade_node(settings: Settings) -> None:
    """Bring the node's own database to the newest schema (an SQLite file opened with the key
    the node key store derives for it)."""
    upgrade(settings.effective_database_url, key=lambda: node_database_key(settings))
