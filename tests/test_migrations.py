"""Alembic migrations create exactly the schema the code declares, on both databases."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from genecommons import migrations as migrations_package
from genecommons.db import Base, DatabaseKey, make_engine
from genecommons.migrate import upgrade

TABLES = sorted(Path(migrations_package.__file__).parents[1].glob("*/tables.py"))


def test_the_migrations_know_every_capabilitys_tables() -> None:
    # what autogenerate compares with: the tables env.py registers on the metadata
    env = (Path(migrations_package.__file__).parent / "env.py").read_text(encoding="utf-8")
    for path in TABLES:
        assert f"import genecommons.{path.parent.name}.tables" in env, path


def test_migrations_match_metadata_and_are_idempotent(
    database_url: str, sqlcipher_key: DatabaseKey
) -> None:
    for path in TABLES:  # every table on the metadata, whichever tests ran before
        importlib.import_module(f"genecommons.{path.parent.name}.tables")
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


MIGRATIONS = Path(migrations_package.__file__).parent / "versions"


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
    return names


def test_migrations_import_no_live_code() -> None:
    """A revision replays the same whatever the package becomes: it imports only Alembic,
    SQLAlchemy and libraries, never the package's own modules."""
    revisions = sorted(MIGRATIONS.glob("[0-9]*.py"))
    assert len(revisions) >= 17
    importing = {
        path.name: [name for name in _imported_modules(path) if _is_own(name)] for path in revisions
    }
    assert {name: found for name, found in importing.items() if found} == {}


def _is_own(module: str) -> bool:
    return module == "genecommons" or module.startswith(("genecommons.", "."))


def test_the_import_check_sees_every_form_of_import(tmp_path: Path) -> None:
    revision = tmp_path / "0099_x.py"
    revision.write_text(
        "import genecommons.audit\n"
        "def upgrade():\n"
        "    from genecommons.ledger.merkle import MerkleTree\n"
        "    from . import sibling\n",
        encoding="utf-8",
    )
    found = [name for name in _imported_modules(revision) if _is_own(name)]
    assert found == ["genecommons.audit", "genecommons.ledger.merkle", "."]


def _revision(name: str) -> ModuleType:
    path = next(MIGRATIONS.glob(f"{name}_*.py"))
    spec = importlib.util.spec_from_file_location(f"revision_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("size", [0, 1, 2, 3, 5, 8, 13, 31])
def test_revision_0006_hashes_existing_events_as_the_log_does(size: int) -> None:
    """The copy of the log's hashing in revision 0006 gives the leaves and nodes the live
    log gives (it was copied from it; this says the copy is faithful)."""
    from genecommons.ledger.events import leaf_document
    from genecommons.ledger.merkle import MemoryNodeStore, MerkleTree, canonical_leaf

    revision = _revision("0006")
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901)  # naive, as SQLite returns it
    facts = [
        {
            "tag": f"catalog:event:{i}",
            "actor": "user:1",
            "subject": None if i % 2 else f"GCS{i:06d}",
            "details": {"n": i, "text": "数据", "nested": {"b": [1, 2.5]}},
            "occurred_at": moment + timedelta(seconds=i),
        }
        for i in range(size)
    ]
    leaves = [revision._canonical_leaf(revision._leaf_document(**fact)) for fact in facts]
    assert leaves == [canonical_leaf(leaf_document(**fact)) for fact in facts]
    store = MemoryNodeStore()
    MerkleTree(store).append_many(leaves)
    live = []
    for level in range(size.bit_length()):
        hashes = []
        while (value := store.get(level, len(hashes))) is not None:
            hashes.append(value)
        live.append(hashes)
    assert revision._perfect_subtree_nodes(leaves) == [level for level in live if level]
