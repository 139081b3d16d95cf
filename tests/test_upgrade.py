"""Upgrades: a data directory made by the previous release (its database, keys, archive and
variant store, by `tests/releases/make_fixture.py` with that release's own code) is brought to
head by `genecommons init`, on SQLite and on PostgreSQL, and then everything it held still
verifies and answers: the audit log, the archive, the catalog, the accounts and the grant."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import crypt4gh.lib
import pytest
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, create_engine, func, select, text
from sqlalchemy import table as table_named

from genecommons.config import Settings
from genecommons.db import is_plaintext, make_session_factory, node_engine, sqlite_file
from genecommons.fingerprint import copy_jobs
from genecommons.migrate import alembic_config
from genecommons.policy.models import Subject
from genecommons.variants import store_service

RELEASE = Path(__file__).parent / "releases" / "0.1.0-c48314c.tar.gz"
RELEASE_REVISION = "0013"
GRANTED = "granted@example.org"


@pytest.fixture
def release(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """The previous release's data directory, unpacked, and what it is known to hold."""
    with tarfile.open(RELEASE) as tar:
        tar.extractall(tmp_path, filter="data")
    expected = json.loads((tmp_path / "expected.json").read_text(encoding="utf-8"))
    return tmp_path / "data", expected


def _copy_rows(source_url: str, target_url: str) -> dict[str, int]:
    """Every row of the database at `source_url` into the same tables at `target_url` (both at
    the same revision); the rows copied by table."""
    source, target = create_engine(source_url), create_engine(target_url)
    tables, into = MetaData(), MetaData()
    tables.reflect(source)
    into.reflect(target)
    copied = {}
    with source.connect() as reading, target.begin() as writing:
        for table in reversed(into.sorted_tables):  # rows the migrations seeded
            if table.name != "alembic_version":
                writing.execute(table.delete())
        for table in tables.sorted_tables:
            if table.name == "alembic_version":
                continue
            rows = [dict(row._mapping) for row in reading.execute(select(table))]
            if rows:
                writing.execute(into.tables[table.name].insert(), rows)
            copied[table.name] = len(rows)
            id_column = into.tables[table.name].c.get("id")
            if (
                id_column is not None
                and id_column.autoincrement is not False
                and (id_column.type.python_type is int)
            ):  # the sequence past the copied ids
                last = writing.execute(select(func.max(id_column))).scalar() or 0
                writing.execute(
                    text("SELECT setval(pg_get_serial_sequence(:table, 'id'), :next, false)"),
                    {"table": table.name, "next": last + 1},
                )
    source.dispose()
    target.dispose()
    return copied


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def upgraded(
    request: pytest.FixtureRequest,
    release: tuple[Path, dict[str, Any]],
    genecommons_cli: Callable[..., Any],
) -> tuple[Settings, dict[str, Any], dict[str, str]]:
    """The release's node upgraded by `genecommons init`: its settings, what it held, and the
    environment its commands run in."""
    data_dir, expected = release
    release_db = f"sqlite:///{data_dir / 'genecommons.sqlite3'}"
    env = {
        **os.environ,
        "GENECOMMONS_DATA_DIR": str(data_dir),
        "GENECOMMONS_ENVIRONMENT": "development",
    }
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_schema_url")
        from alembic import command

        command.upgrade(alembic_config(url), RELEASE_REVISION)
        copied = _copy_rows(release_db, url)
        assert copied["audit_events"] > 0 and copied["files"] > 0
        (data_dir / "genecommons.sqlite3").unlink()
        env["GENECOMMONS_DATABASE_URL"] = url
    else:
        url = release_db
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            RELEASE_REVISION
        )
    engine.dispose()
    genecommons_cli(env, "init")
    settings = Settings(data_dir=data_dir, database_url=url, environment="development")
    return settings, expected, env


def test_the_database_reaches_head(upgraded: Any) -> None:
    settings, _, _ = upgraded
    head = ScriptDirectory.from_config(alembic_config(settings.effective_database_url))
    engine = node_engine(settings)
    with engine.connect() as connection:
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    assert version == head.get_current_head()


def test_the_audit_log_and_the_archive_still_verify(
    upgraded: Any, genecommons_cli: Callable[..., Any]
) -> None:
    settings, expected, env = upgraded
    engine = node_engine(settings)
    with engine.connect() as connection:
        before = connection.execute(text("SELECT count(*) FROM audit_events")).scalar_one()
    engine.dispose()
    assert before >= expected["audit_events"]  # the release's events, and init's own since
    genecommons_cli(env, "audit", "verify")  # exits 0 only when every entry and head verifies
    genecommons_cli(env, "archive", "verify")  # exits 0 only when every object is whole


def test_the_catalog_accounts_and_grant_still_answer(
    upgraded: Any, genecommons_cli: Callable[..., Any]
) -> None:
    settings, expected, env = upgraded
    made_on = date.fromisoformat(expected["made_on"])
    grant_ends = date.fromisoformat(expected["grant_expires"])
    app = __import__("genecommons.app", fromlist=["create_app"]).create_app(settings)
    factory = make_session_factory(app.state.services.engine)
    with TestClient(app) as client:
        studies = client.get("/api/v1/studies").json()
        assert [s["accession"] for s in studies["items"]] == [
            s["accession"] for s in expected["public_studies"]["items"]
        ]
        steward = {"Authorization": f"Bearer {expected['tokens']['steward@example.org']}"}
        if date.today() < made_on + timedelta(days=89):  # the release's tokens live 90 days
            assert client.get("/api/v1/auth/me", headers=steward).status_code == 200
        for accession in expected["accessions"]["individuals"].values():
            shown = client.get(f"/api/v1/individuals/{accession}", headers=steward)
            if date.today() < made_on + timedelta(days=89):
                assert shown.status_code == 200, shown.text
        # the grantee's account and grant survived: a token made now opens the archived VCF
        token = genecommons_cli(env, "tokens", "create", GRANTED).stdout.strip()
        headers = {"Authorization": f"Bearer {token}"}
        url = f"/ga4gh/drs/v1/objects/{expected['vcf']}/download"
        answer = client.get(url, headers=headers)  # for the Crypt4GH key the release registered
        if date.today() >= grant_ends:
            assert answer.status_code == 403, answer.text  # the grant has ended since
            return
        if answer.status_code in (202, 503):  # the grantee's fingerprinted copy, made now
            assert copy_jobs.build_pending(factory, settings).built == 1
            answer = client.get(url, headers=headers)
        assert answer.status_code == 200, answer.text
    app.state.services.engine.dispose()
    plain = io.BytesIO()
    secret = bytes.fromhex(expected["grantee_crypt4gh_secret"])
    crypt4gh.lib.decrypt([(0, secret, None)], io.BytesIO(answer.content), plain)
    lines = gzip.decompress(plain.getvalue()).decode().splitlines()
    assert sum(1 for line in lines if not line.startswith("#")) == expected["vcf_records"]


def test_what_the_release_kept_in_plaintext_is_protected(
    upgraded: Any, genecommons_cli: Callable[..., Any]
) -> None:
    """The release's variant store held genotypes in plaintext and its folders were 0755:
    after `init`, the store is rebuilt sealed (and answers), and nothing under the data
    directory is readable by anyone but the node's user."""
    settings, expected, env = upgraded
    loose = [
        str(path.relative_to(settings.data_dir))
        for path in [settings.data_dir, *settings.data_dir.rglob("*")]
        if not path.is_symlink() and path.stat().st_mode & 0o077
    ]
    assert loose == []
    engine = node_engine(settings)
    findings = store_service.verify_stores(
        make_session_factory(engine), settings, subject=Subject.operator("tester")
    )
    engine.dispose()
    assert [(f.dataset, f.state) for f in findings] == [(expected["dataset"], "ok")]
    store = settings.data_dir / "variants" / expected["dataset"] / "calls.vcz"
    for chunk in store.rglob("*"):
        if chunk.is_file():
            assert b"P1-S1" not in chunk.read_bytes()  # no sample id readable anywhere
    shown = genecommons_cli(env, "variants", "show", expected["dataset"], expected["variant"])
    assert expected["variant"] in shown.stdout
    again = genecommons_cli(env, "init")  # a second run has nothing left to do
    assert "Protected at rest" not in again.stdout, again.stdout


def test_a_plaintext_vcf_a_killed_rebuild_left_is_removed_by_the_next_init(
    upgraded: Any, genecommons_cli: Callable[..., Any]
) -> None:
    settings, _, env = upgraded
    left = settings.staging_dir / "reseal" / "GCF00000001.vcf.gz"  # where a rebuild decrypts
    left.parent.mkdir(parents=True, exist_ok=True)
    left.write_bytes(b"##fileformat=VCFv4.3\n")
    genecommons_cli(env, "init")
    assert not left.exists()


def _plain_counts(path: Path) -> dict[str, int]:
    """The rows of each table of a plaintext SQLite database, read by the standard library."""
    with contextlib.closing(sqlite3.connect(path)) as plain:
        names = [n for (n,) in plain.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        count = 'SELECT count(*) FROM "{}"'  # names the database itself lists
        return {n: plain.execute(count.format(n)).fetchone()[0] for n in names}


def _refused_by_sqlite3(path: Path) -> bool:
    with contextlib.closing(sqlite3.connect(path)) as plain:
        try:
            plain.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as error:
            return error.sqlite_errorcode == sqlite3.SQLITE_NOTADB
    return False


def test_the_release_database_is_encrypted_in_place(upgraded: Any) -> None:
    settings, expected, _ = upgraded
    path = sqlite_file(settings.effective_database_url)
    if path is None:
        pytest.skip("PostgreSQL: encrypted at rest by its server, not by the node")
    assert not is_plaintext(path) and _refused_by_sqlite3(path)
    leftovers = [p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}")]
    assert leftovers == []
    for accession in expected["accessions"]["individuals"].values():
        assert accession.encode() not in path.read_bytes()


KILL_AT = ["locked", "exported", "synced", "replaced"]


@pytest.mark.parametrize("step", KILL_AT)
def test_a_conversion_killed_at_any_step_leaves_one_whole_database_that_init_encrypts(
    release: tuple[Path, dict[str, Any]], genecommons_cli: Callable[..., Any], step: str
) -> None:
    """kill -9 of the process encrypting the release's database, right after `step`: the
    database is there (plaintext and whole, or encrypted), and the next `init` leaves it
    encrypted, whole, with nothing in plaintext beside it."""
    data_dir, expected = release
    path = data_dir / "genecommons.sqlite3"
    before = _plain_counts(path)
    env = {
        **os.environ,
        "GENECOMMONS_DATA_DIR": str(data_dir),
        "GENECOMMONS_ENVIRONMENT": "development",
    }
    env.pop("GENECOMMONS_DATABASE_URL", None)
    script = (
        "import os, signal, sys\n"
        "from genecommons.config import Settings\n"
        "from genecommons.secrets import node_keys\n"
        "from genecommons.upgrade import encrypt_plaintext_database\n"
        "settings = Settings(data_dir=sys.argv[1], environment='development')\n"
        "node_keys(settings, create=True)\n"
        "def step(name):\n"
        "    if name == sys.argv[2]:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "encrypt_plaintext_database(settings, step=step)\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", script, str(data_dir), step],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert path.exists()  # never neither
    if is_plaintext(path):
        assert _plain_counts(path) == before  # whole, as it was
    done = genecommons_cli(env, "init").stdout
    assert is_plaintext(path) is False and _refused_by_sqlite3(path)
    assert ("the database" in done) == (step != "replaced")  # converted now, or already
    beside = sorted(p.name for p in data_dir.iterdir() if p.is_file())
    assert beside == ["genecommons.sqlite3"], beside
    plaintext = [
        str(p.relative_to(data_dir))
        for p in data_dir.rglob("*")
        if p.is_file() and p.read_bytes().startswith(b"SQLite format 3\x00")
    ]
    assert plaintext == []
    settings = Settings(data_dir=data_dir, environment="development")
    engine = node_engine(settings)
    with engine.connect() as connection:
        for table in ("individuals", "samples", "files", "users"):
            rows = select(func.count()).select_from(table_named(table))
            assert connection.execute(rows).scalar_one() == before[table], table
        accessions = set(connection.execute(text("SELECT accession FROM individuals")).scalars())
    engine.dispose()
    assert accessions == set(expected["accessions"]["individuals"].values())
