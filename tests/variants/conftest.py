"""Fixtures of the Beacon tests: a catalog with a dataset per tier and their variant stores,
callers at each granularity, and a validator for the official Beacon v2 JSON Schemas."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from genecommons.access import committees, institution_service, workflow
from genecommons.access import service as access_service
from genecommons.access.duo_models import ResearchPurpose
from genecommons.app import create_app
from genecommons.archive import ingestion, keys_and_store
from genecommons.archive.holdings import archived_here
from genecommons.catalog import service as catalog
from genecommons.config import Settings
from genecommons.db import Base, node_engine
from genecommons.policy.models import Subject
from genecommons.secrets import node_keys
from genecommons.variants.service import VariantStoreSink

OPERATOR = Subject.operator("beacon-tests")
TIERS = ("open", "registered", "controlled")
POPULATIONS = ("CHB", "CHB", "JPT")  # P1 and P3 are male, P2 female (minimal_sheets)
# P2's hearing impairment is sensorineural, a descendant of P1's and P3's HP:0000365
P2_TERM = "HP:0000407"
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
RAW = "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/"
VRS = "https://w3id.org/ga4gh/schema/vrs/1.3/vrs.json"


def build_world(settings: Settings, folder: Path, datafiles: SimpleNamespace) -> SimpleNamespace:
    """Submit three datasets (one per tier) releasing one joint-called VCF of P1-P3, so that a
    variant store is built for each; make a verified reader and a granted researcher."""
    engine = node_engine(settings)
    Base.metadata.create_all(engine)
    engine.dispose()
    node_keys(settings, create=True)
    keys_and_store.archive_keys(settings, create=True)
    folder.mkdir(parents=True)
    vcf = datafiles.vcf(folder / "calls.vcf.gz", records=60)
    sheets = datafiles.sheets(folder, vcf=vcf, bam=None)
    for row, population in zip(sheets["individuals"], POPULATIONS, strict=True):
        row["population"] = population
    sheets["phenotypes"][1]["term"] = P2_TERM
    dataset = sheets["datasets"][0]
    sheets["datasets"] = [dict(dataset, alias=f"DS-{tier}", access_tier=tier) for tier in TIERS]
    datafiles.write(folder, sheets)
    # the Beacon's mechanics are checked on the true answers; the defended guard (the default)
    # is tested in tests/privacy and by test_the_default_guard_withholds_rare_alleles
    app = create_app(settings.model_copy(update={"beacon_guard": "exact"}))
    factory = app.state.services.factory
    result = catalog.submit(
        factory,
        folder,
        subject=OPERATOR,
        data_files=ingestion.BundleArchiver(
            settings, OPERATOR, after=VariantStoreSink(settings, OPERATOR)
        ),
    )
    accessions = result.accessions
    institution = accessions["institutions"]["BGC"]
    institution_service.verify_institution(
        factory,
        institution=institution,
        foreign_controlled=False,
        attestation="checked by the tests",
        actor=OPERATOR,
    )
    committees.create_dac(factory, alias="BGC DAC", name="BGC", actor=OPERATOR)
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    for name, role in (
        ("reader", "researcher"),
        ("researcher", "researcher"),
        ("dac", "dac_member"),
    ):
        email = f"{name}@example.org"
        access_service.add_user(
            factory, email=email, roles=[role], institution=institution, actor=OPERATOR
        )
        token = access_service.create_token(factory, email=email, actor=OPERATOR).token
        headers[name] = {"Authorization": f"Bearer {token}"}
    committees.add_member(
        factory, dac="BGC DAC", email="dac@example.org", chair=True, actor=OPERATOR
    )
    datasets = {tier: accessions["datasets"][f"DS-{tier}"] for tier in TIERS}
    researcher = Subject.user(
        "researcher@example.org", roles=frozenset({"researcher"}), institution=institution
    )
    request_id, _ = workflow.request_access(
        factory,
        actor=researcher,
        purpose=ResearchPurpose(
            title="Hearing loss variants",
            summary="Which variants the families carry.",
            institution="BGC",
            country="CN",
            biomedical=True,
            genetic_research=True,
            ethics_approval=True,
        ),
        datasets=[datasets["controlled"]],
        agreement_version="DAA v1",
        archived_here=archived_here,
    )
    item = workflow.get_request(factory, request_id, actor=OPERATOR)["datasets"][0]["id"]
    workflow.decide_request(
        factory,
        item_id=item,
        approve=True,
        reason="approved",
        actor=Subject.user("dac@example.org", roles=frozenset({"dac_member"}), institution=None),
    )
    return SimpleNamespace(
        app=app,
        factory=factory,
        settings=settings,
        accessions=accessions,
        datasets=datasets,
        headers=headers,
        vcf=vcf,
        institution=institution,
    )


@pytest.fixture
def world(
    archive_settings: Settings, tmp_path: Path, datafiles: SimpleNamespace
) -> Iterator[SimpleNamespace]:
    """The three-tier Beacon world on SQLite and PostgreSQL, with an HTTP client."""
    built = build_world(archive_settings, tmp_path / "bundle", datafiles)
    with TestClient(built.app) as client:
        built.client = client
        yield built
    built.app.state.services.engine.dispose()


@pytest.fixture(scope="module")
def shared_world(
    tmp_path_factory: pytest.TempPathFactory,
    datafiles: SimpleNamespace,
    initialised: Callable[[Settings], Settings],
) -> Iterator[SimpleNamespace]:
    """The same world, built once for a module (SQLite), for the many read-only schema
    checks."""
    folder = tmp_path_factory.mktemp("beacon")
    settings = initialised(
        Settings(
            data_dir=folder / "data",
            database_url=f"sqlite:///{folder / 'catalog.sqlite3'}",
            environment="test",
        )
    )
    built = build_world(settings, folder / "bundle", datafiles)
    with TestClient(built.app) as client:
        built.client = client
        yield built
    built.app.state.services.engine.dispose()


class BeaconSchemas:
    """The official Beacon v2 JSON Schemas from ../shared/specs/beacon-v2, their relative and
    raw.githubusercontent.com references resolved to the files on disk."""

    def __init__(self, root: Path) -> None:
        from referencing import Registry, Resource
        from referencing.exceptions import NoSuchResource

        self.root = root

        def retrieve(uri: str) -> Resource[Any]:
            path = self._path(uri)
            if path is None or not path.is_file():
                raise NoSuchResource(ref=uri)
            return Resource.from_contents(json.loads(path.read_text(encoding="utf-8")))

        self.registry: Registry[Any] = Registry(retrieve=retrieve)  # type: ignore[call-arg]

    def _path(self, uri: str) -> Path | None:
        if uri.startswith(RAW):
            return self.root / uri.removeprefix(RAW).split("#")[0]
        if uri.startswith(VRS):
            # GA4GH VRS 1.3, which the genomicVariation model refers to, where it is provided
            return SHARED / "specs" / "vrs" / "1.3" / "vrs.json"
        if uri.startswith("file://"):
            path = Path(uri.removeprefix("file://").split("#")[0])
            if not path.exists() and path.name == "info.json" and path.parent.name == "common":
                # the default model's schemas refer to ../common/info.json, which upstream
                # keeps in the framework only (framework/json/common/info.json)
                return self.root / "framework" / "json" / "common" / "info.json"
            return path
        return None

    def errors(self, document: Any, schema: str) -> list[str]:
        """Where `document` breaks the schema at `schema` (a path under the specs folder)."""
        from jsonschema import Draft202012Validator

        uri = (self.root / schema).resolve().as_uri()
        validator = Draft202012Validator({"$ref": uri}, registry=self.registry)
        return [
            f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message[:300]}"
            for e in validator.iter_errors(document)
        ]


@pytest.fixture(scope="session")
def beacon_schemas() -> BeaconSchemas:
    """The validator of the official schemas (skips where ../shared/specs/beacon-v2 is absent)."""
    root = SHARED / "specs" / "beacon-v2"
    if not root.exists():
        pytest.skip("../shared/specs/beacon-v2 is not present on this machine")
    return BeaconSchemas(root)


class FailsAfterArchiving:
    """The real archiver (its objects stored, its variant store built), then the process dies
    before the commit: the submission's transaction never commits."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink

    def attach(self, session: Any, files: Any, paths: Any) -> list[str]:
        """Archive as the real sink does, then fail."""
        self.sink.attach(session, files, paths)
        raise RuntimeError("the process died here")

    def discard(self) -> None:
        """What the real sink does."""
        self.sink.discard()


@pytest.fixture
def pipeline_submit() -> Any:
    """`catalog.submit` through the real pipeline (the archive, then the variant store), as
    `genecommons submit` wires it; with `fails_after_archiving`, the process dies after both
    are built, before the commit."""

    def submit(
        factory: Any,
        settings: Settings,
        folder: Path,
        *,
        fails_after_archiving: bool = False,
        **options: Any,
    ) -> Any:
        sink: Any = ingestion.BundleArchiver(
            settings, OPERATOR, after=VariantStoreSink(settings, OPERATOR)
        )
        if fails_after_archiving:
            sink = FailsAfterArchiving(sink)
        return catalog.submit(factory, folder, subject=OPERATOR, data_files=sink, **options)

    return submit
