"""Shared fixtures: databases (SQLite and PostgreSQL), settings, sample submissions."""

from __future__ import annotations

import functools
import hashlib
import os
import random
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pysam
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

import genecommons.access.tables
import genecommons.archive.tables
import genecommons.catalog.tables
import genecommons.ledger.tables
import genecommons.privacy.tables
import genecommons.variants.tables  # noqa: F401  (registers tables)
from genecommons.config import Settings
from genecommons.db import Base, DatabaseKey, make_session_factory, node_engine

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
POSTGRES_URL = os.environ.get(
    "GENECOMMONS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

# Hypothesis's default 200 ms deadline (and its too-slow health check) are timed assertions: on a
# shared, loaded machine they fail a correct property test. Property tests here assert what
# happens, not how fast.
hypothesis_settings.register_profile(
    "genecommons", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("genecommons")


def shared_path(*parts: str) -> Path:
    """A path under ../shared, skipping the test when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"../shared/{'/'.join(parts)} is not present on this machine")
    return path


CliRun = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="session")
def genecommons_cli() -> CliRun:
    """`run(env, *args)`: `python -m genecommons ARGS` in a process of its own with the
    environment `env`, failing the test with its output unless it exits 0."""

    def run(
        env: Mapping[str, str], *args: str, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "genecommons", *args],
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    return run


InThreads = Callable[[int, Callable[[int], object]], "list[BaseException | None]"]


@pytest.fixture(scope="session")
def in_threads() -> InThreads:
    """`run(count, work)`: `work(0)` ... `work(count - 1)` each in a thread of its own, all at
    once; what each raised (None where it returned), in thread order."""

    def run(count: int, work: Callable[[int], object]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = [None] * count

        def guarded(i: int) -> None:
            try:
                work(i)
            except BaseException as error:  # handed back to the test, not lost in the thread
                outcomes[i] = error

        threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return outcomes

    return run


_pg_state: dict[str, str | None] = {}


def _postgres_reason() -> str | None:
    """Why PostgreSQL cannot be used here, or None if it can."""
    if "reason" not in _pg_state:
        try:
            engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as connection:
                connection.execute(text("select 1"))
            engine.dispose()
            _pg_state["reason"] = None
        except Exception as error:  # any failure to connect means: skip
            _pg_state["reason"] = (
                f"PostgreSQL not reachable at {POSTGRES_URL.split('@')[-1]} "
                f"({type(error).__name__}); set GENECOMMONS_TEST_POSTGRES_URL to run these"
            )
    return _pg_state["reason"]


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A URL to a fresh, empty PostgreSQL schema, dropped afterwards."""
    reason = _postgres_reason()
    if reason:
        pytest.skip(reason)
    schema = f"gc_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    # Commits of the test's connections return without waiting for the WAL to reach the disk
    # (a few ms each here, most of a PostgreSQL test's time): what a commit makes visible, and
    # to whom, is unchanged; only a crash of the server itself could lose the last ones, and no
    # test crashes it.
    options = f"-csearch_path%3D{schema}%20-csynchronous_commit%3Doff"
    try:
        yield f"{POSTGRES_URL}{separator}options={options}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database URL, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def sqlcipher_key() -> DatabaseKey:
    """A new random SQLCipher key, for an SQLite database file a test makes on its own."""
    return DatabaseKey(os.urandom(32), "a test's own key")


@pytest.fixture(scope="session")
def node_key_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A node key and its passphrase file as `genecommons init` makes them, made once (scrypt
    runs twice when a node key is made and unlocked)."""
    from genecommons.secrets import node_keys

    made = Settings(data_dir=tmp_path_factory.mktemp("node-key") / "data", environment="test")
    node_keys(made, create=True)
    return {name: (made.key_dir / name).read_bytes() for name in ("node.key", "node-passphrase")}


@pytest.fixture
def engine(settings: Settings, node_key_files: dict[str, bytes]) -> Iterator[Engine]:
    """An engine on the test database with the current schema (an SQLite file encrypted with
    the key derived from the node key of `settings`, as the node opens it). A node without a
    key gets the session's (the same files in its own key directory)."""
    from genecommons.secrets import create_secret_file

    if settings.effective_database_url.startswith("sqlite"):
        for name, content in node_key_files.items():
            create_secret_file(settings.key_dir / name, content)  # kept when there is one
    engine = node_engine(settings)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory on the test database."""
    return make_session_factory(engine)


@pytest.fixture(scope="session")
def node_secret_files(
    tmp_path_factory: pytest.TempPathFactory, node_key_files: dict[str, bytes]
) -> dict[str, bytes]:
    """Every secret `genecommons init` makes (under the session's node key), made once, by
    path under the data directory."""
    from genecommons.node_init import create_node_secrets
    from genecommons.secrets import create_secret_file

    made = Settings(data_dir=tmp_path_factory.mktemp("node-secrets") / "data", environment="test")
    for name, content in node_key_files.items():
        create_secret_file(made.key_dir / name, content)
    create_node_secrets(made)
    return {
        str(path.relative_to(made.data_dir)): path.read_bytes()
        for path in sorted(made.data_dir.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="session")
def initialised(node_secret_files: dict[str, bytes]) -> Callable[[Settings], Settings]:
    """Give a node's data directory the secrets `genecommons init` makes (copied from the
    session's: RSA and scrypt are slow by design); the settings back."""
    from genecommons.secrets import create_secret_file, private_directory

    def lay(made: Settings) -> Settings:
        for name, content in node_secret_files.items():
            private_directory((made.data_dir / name).parent)
            create_secret_file(made.data_dir / name, content)
        return made

    return lay


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, initialised: Callable[[Settings], Settings]
) -> Settings:
    """Settings pointing at a temporary data directory and the test database, of a node
    `genecommons init` has made the secrets of."""
    return initialised(
        Settings(data_dir=tmp_path / "data", database_url=database_url, environment="test")
    )


@pytest.fixture
def bare_settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings of a node `genecommons init` has not run on: no secret anywhere."""
    return Settings(data_dir=tmp_path / "data", database_url=database_url, environment="test")


def write_sheets(folder: Path, sheets: dict[str, list[dict[str, Any]]]) -> Path:
    """Write rows as TSV sheets into `folder` (the submission format)."""
    folder.mkdir(parents=True, exist_ok=True)
    for sheet, rows in sheets.items():
        columns: list[str] = []
        for row in rows:
            columns.extend(c for c in row if c not in columns)
        lines = ["\t".join(columns)]
        lines.extend(
            "\t".join("" if r.get(c) is None else str(r[c]) for c in columns) for r in rows
        )
        (folder / f"{sheet}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def minimal_sheets(individuals: int = 3) -> dict[str, list[dict[str, Any]]]:
    """A small valid submission: one study, a trio's worth of individuals, samples, a dataset."""
    sheets: dict[str, list[dict[str, Any]]] = {
        "institutions": [
            {
                "alias": "BGC",
                "name_en": "Beijing Genome Center",
                "name_zh": "北京基因组中心",
                "country": "CN",
                "province": "110000",
                "kind": "research_institute",
            }
        ],
        "studies": [
            {
                "alias": "ST1",
                "title": "Hearing loss families",
                "institution": "BGC",
                "study_type": "family",
                "participants_planned": individuals,
                "collection_licence": "2024CJ0001" if individuals > 3000 else None,
            }
        ],
        "consents": [
            {
                "alias": "C1",
                "study": "ST1",
                "version": "2.1",
                "permission": "HMB",
                "modifiers": "NPU;IRB",
                "abroad_allowed": "no",
            }
        ],
        "ethics_approvals": [
            {
                "alias": "E1",
                "study": "ST1",
                "committee": "BGC IRB",
                "number": "IRB-2024-001",
                "approved_on": "2024-01-10",
            }
        ],
        "hgr_records": [
            {
                "alias": "H1",
                "study": "ST1",
                "category": "collection",
                "record_type": "approval",
                "number": "2024CJ0001",
                "issued_on": "2024-02-01",
            }
        ],
        "individuals": [],
        "phenotypes": [],
        "samples": [],
        "experiments": [],
        "runs": [],
        "datasets": [],
    }
    for i in range(1, individuals + 1):
        alias = f"P{i}"
        sheets["individuals"].append(
            {
                "alias": alias,
                "study": "ST1",
                "sex": "male" if i % 2 else "female",
                "birth_year": 1940 + i % 60,
                "ethnic_group": "01",
                "province": "440000",
                "consent": "C1",
            }
        )
        sheets["phenotypes"].append({"individual": alias, "kind": "feature", "term": "HP:0000365"})
        sheets["samples"].append(
            {
                "alias": f"{alias}-S1",
                "individual": alias,
                "tissue": "blood",
                "collection_date": "2024-03-01",
                "collection_institution": "BGC",
                "ethics_approval": "E1",
                "hgr_records": "H1",
            }
        )
        sheets["experiments"].append(
            {
                "alias": f"{alias}-X1",
                "sample": f"{alias}-S1",
                "library_strategy": "WES",
                "platform": "DNBSEQ",
                "instrument": "DNBSEQ-G400",
            }
        )
        sheets["runs"].append({"alias": f"{alias}-R1", "experiment": f"{alias}-X1"})
    sheets["datasets"].append(
        {
            "alias": "DS1",
            "study": "ST1",
            "title": "Exomes",
            "access_tier": "controlled",
            "duo_codes": "HMB;NPU",
            "dac": "BGC DAC",
            "runs": ";".join(r["alias"] for r in sheets["runs"]),
        }
    )
    return sheets


@pytest.fixture
def sheets() -> Any:
    """The factory of small valid submissions (`minimal_sheets`)."""
    return minimal_sheets


@pytest.fixture
def make_bundle(tmp_path: Path) -> Any:
    """A factory writing a submission folder from sheets (defaults to `minimal_sheets()`)."""
    counter = iter(range(1_000_000))

    def make(sheets: dict[str, list[dict[str, Any]]] | None = None) -> Path:
        return write_sheets(tmp_path / f"bundle{next(counter)}", sheets or minimal_sheets())

    return make


# -- data files: small real VCF and BAM files, and sheets declaring them ----------------------


def file_digest(path: Path) -> dict[str, Any]:
    """md5, sha256 and size of a file, as a files-sheet row declares them."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha256 = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            md5.update(chunk)
            sha256.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha256.hexdigest(), "size": path.stat().st_size}


def write_vcf(
    path: Path,
    *,
    samples: Sequence[str] = ("P1-S1", "P2-S1", "P3-S1"),
    records: int = 3000,
    contigs: Sequence[tuple[str, int]] = (("chr21", 46_709_983), ("chr22", 50_818_468)),
    unsorted: bool = False,
    seed: int = 7,
) -> Path:
    """A bgzipped VCF (GRCh38 contig names) with `records` sites per contig."""
    rng = random.Random(seed)
    header = pysam.VariantHeader()
    for name, length in contigs:
        header.contigs.add(name, length=length)
    header.add_line('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">')
    for sample in samples:
        header.add_sample(sample)
    lines = [str(header).rstrip("\n")]
    for name, _ in contigs:
        positions = sorted(rng.sample(range(10_000_000, 20_000_000), records))
        if unsorted:
            positions[10], positions[20] = positions[20], positions[10]
        for position in positions:
            ref, alt = rng.sample("ACGT", 2)
            genotypes = "\t".join(rng.choice(["0/0", "0/1", "1/1"]) for _ in samples)
            lines.append(f"{name}\t{position}\t.\t{ref}\t{alt}\t50\tPASS\t.\tGT\t{genotypes}")
    plain = path.with_suffix("")
    plain.write_text("\n".join(lines) + "\n", encoding="ascii")
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    return path


def write_bam(path: Path, *, reads: int = 20_000, seed: int = 11) -> Path:
    """A coordinate-sorted BAM on chr21 and chr22."""
    rng = random.Random(seed)
    header = {
        "HD": {"VN": "1.6", "SO": "coordinate"},
        "SQ": [{"SN": "chr21", "LN": 46_709_983}, {"SN": "chr22", "LN": 50_818_468}],
    }
    records = []
    for i in range(reads):
        reference = i % 2
        records.append((reference, rng.randrange(1_000_000, 3_000_000), i))
    records.sort()
    with pysam.AlignmentFile(str(path), "wb", header=header) as bam:
        for reference, start, i in records:
            read = pysam.AlignedSegment(bam.header)
            read.query_name = f"read{i}"
            read.reference_id = reference
            read.reference_start = start
            read.mapping_quality = 60
            read.cigarstring = "100M"
            read.query_sequence = "".join(rng.choice("ACGT") for _ in range(100))
            read.query_qualities = pysam.qualitystring_to_array("I" * 100)
            read.flag = 0
            bam.write(read)
    return path


def archive_sheets(folder: Path, *, vcf: Path | None, bam: Path | None) -> dict[str, Any]:
    """minimal_sheets plus an analysis with a VCF and a BAM of run P1-R1, both in DS1."""
    data = minimal_sheets()
    data["analyses"] = [
        {
            "alias": "A1",
            "study": "ST1",
            "analysis_type": "joint_genotyping",
            "reference_assembly": "GRCh38",
            "samples": "P1-S1;P2-S1;P3-S1",
        }
    ]
    data["files"] = []
    if vcf is not None:
        data["files"].append(
            {"alias": vcf.name, "analysis": "A1", "format": "vcf", **file_digest(vcf)}
        )
    if bam is not None:
        data["files"].append(
            {"alias": bam.name, "run": "P1-R1", "format": "bam", **file_digest(bam)}
        )
    data["datasets"][0]["analyses"] = "A1"
    return data


@pytest.fixture
def archive_settings(settings: Settings, node_key_files: dict[str, bytes]) -> Settings:
    """Settings whose node secrets all exist, made as `genecommons init` makes them (the node
    key the session's, as the `engine` fixture lays it: scrypt is slow by design)."""
    from genecommons.node_init import create_node_secrets
    from genecommons.secrets import create_secret_file

    for name, content in node_key_files.items():
        create_secret_file(settings.key_dir / name, content)  # kept when there is one
    create_node_secrets(settings)
    return settings


@pytest.fixture
def sealed_store() -> Callable[..., Any]:
    """`build(vcf, destination, samples={})`: a variant store of `vcf` at `destination` (bound
    to a dataset named as the directory, sealed under a node key store of its own), opened."""
    from genecommons.secrets import LocalNodeKeys
    from genecommons.variants.manifest import new_binding
    from genecommons.variants.store import VariantStore, build_store

    keys = LocalNodeKeys(os.urandom(32))

    def build(vcf: Path, destination: Path, samples: Mapping[str, Any] | None = None) -> Any:
        binding = new_binding(
            dataset=destination.name, source_sha256="0" * 64, source_name=vcf.name
        )
        summary = build_store(vcf, destination, samples=samples or {}, keys=keys, binding=binding)
        summary.lease.release()
        return SimpleNamespace(
            summary=summary, store=VariantStore(destination, keys=keys, binding=binding)
        )

    return build


@pytest.fixture
def catalog_dataset(factory: sessionmaker[Session]) -> Callable[[str], int]:
    """`make(accession)`: a catalog row for the dataset `accession` (with an institution and a
    study for it to belong to), written directly: what a variant store's binding refers to,
    without a submission. The dataset's row id."""
    return functools.partial(_insert_dataset, factory)


def _insert_dataset(factory: sessionmaker[Session], accession: str) -> int:
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from genecommons.catalog.tables import ENTITY_TABLES

    now = datetime.now(UTC)
    ids: dict[str, int] = {}
    with factory.begin() as session:
        for entity, prefix in (("institutions", "GCO"), ("studies", "GCS"), ("datasets", "GCD")):
            table = ENTITY_TABLES[entity]
            row: dict[str, Any] = {
                "accession": accession if entity == "datasets" else f"{prefix}{accession[3:]}",
                "alias": f"{entity}-{accession}",
                "revision": 1,
                "doc": {},
                "created_at": now,
                "updated_at": now,
                "created_by": "tests",
                "updated_by": "tests",
            }
            for column in table.columns:
                if column.name.endswith("_id") and not column.nullable and column.name != "id":
                    row[column.name] = ids[
                        {"institution_id": "institutions", "study_id": "studies"}[column.name]
                    ]
            inserted = insert(table).values(**row).returning(table.c.id)
            ids[entity] = session.execute(inserted).scalar_one()
    return ids["datasets"]


@pytest.fixture(scope="session")
def datafiles() -> SimpleNamespace:
    """Writers of small real data files and of the sheets that declare them."""
    return SimpleNamespace(
        digest=file_digest, vcf=write_vcf, bam=write_bam, sheets=archive_sheets, write=write_sheets
    )


# -- a real OpenID Connect provider on loopback ------------------------------------------------


class OidcProvider:
    """oidc-provider-mock (an OpenID provider built on authlib) served on 127.0.0.1 in a thread.

    `user(sub, **claims)` defines an account there; `authorize(url, sub)` plays that user
    consenting at the authorization endpoint and returns where the provider sends the browser;
    `id_token(...)` runs the whole code flow for another client, as a token a thief might hold.
    """

    def __init__(self) -> None:
        import threading

        import oidc_provider_mock
        import werkzeug.serving

        self.server = werkzeug.serving.make_server(
            "127.0.0.1", 0, oidc_provider_mock.app(require_nonce=True), threaded=True
        )
        self.issuer = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)
        self.server.server_close()

    def user(self, sub: str, **claims: Any) -> None:
        import httpx

        httpx.put(f"{self.issuer}/users/{sub}", json=claims, timeout=10).raise_for_status()

    def authorize(self, url: str, sub: str) -> str:
        import httpx

        assert url.startswith(self.issuer), url
        response = httpx.post(url, data={"sub": sub}, timeout=10)
        assert response.status_code == 302, response.text[:300]
        location: str = response.headers["location"]
        return location

    def jwks(self) -> dict[str, Any]:
        import httpx

        keys: dict[str, Any] = httpx.get(f"{self.issuer}/jwks", timeout=10).json()
        return keys

    def id_token(self, sub: str, *, client_id: str, nonce: str) -> str:
        from urllib.parse import parse_qs, urlsplit

        from authlib.integrations.httpx_client import OAuth2Client

        redirect = "http://127.0.0.1:9/callback"
        with OAuth2Client(
            client_id, "secret", scope="openid email profile", redirect_uri=redirect
        ) as client:
            url, _ = client.create_authorization_url(f"{self.issuer}/oauth2/authorize", nonce=nonce)
            query = parse_qs(urlsplit(self.authorize(url, sub)).query)
            token = client.fetch_token(f"{self.issuer}/oauth2/token", code=query["code"][0])
        value: str = token["id_token"]
        return value


@pytest.fixture
def oidc_provider() -> Iterator[OidcProvider]:
    """A real OpenID Connect provider on loopback (see `OidcProvider`)."""
    provider = OidcProvider()
    yield provider
    provider.stop()


@pytest.fixture
def oidc_settings(settings: Settings, oidc_provider: OidcProvider) -> Settings:
    """The test settings with sign-in through `oidc_provider` configured."""
    return settings.model_copy(
        update={
            "oidc_issuer": oidc_provider.issuer,
            "oidc_client_id": "genecommons",
            "oidc_client_secret": SecretStr("test-client-secret"),
        }
    )


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real, small filesystem (a 1 MiB tmpfs) mounted for the test, for a disk that fills
    up; skipped where mounting is not allowed."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["/usr/bin/mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["/usr/bin/umount", "--lazy", str(mount)], check=False)
