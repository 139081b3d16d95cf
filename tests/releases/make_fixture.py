"""Make the data directory of a previous release, for the upgrade test (tests/test_upgrade.py).

Run with that release's code first on the path, from a checkout of it, e.g.:

    git worktree add --detach /tmp/release c48314c
    PYTHONPATH=/tmp/release/src .venv/bin/python tests/releases/make_fixture.py \
        /tmp/release tests/releases/0.1.0-c48314c.tar.gz

It does what a node of that release would have done: `genecommons init`, a submission whose
folder holds a VCF and a BAM (archived, a variant store built), users with API tokens, a DAC, a
request approved into a grant, a DRS download and an htsget ticket by the grantee (deliveries and
audit events), and writes the data directory with `expected.json` (what the upgraded node must
still answer) into a tar.gz. Only that release's own functions are called.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

GRANTED = "granted@example.org"


def _release_conftest(release: Path) -> Any:
    spec = importlib.util.spec_from_file_location("release_conftest", release / "tests/conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make(release: Path, data_dir: Path, work: Path) -> dict[str, Any]:
    """Fill `data_dir` as a node of the release at `release` would; what it holds."""
    env = {
        **os.environ,
        "GENECOMMONS_DATA_DIR": str(data_dir),
        "GENECOMMONS_ENVIRONMENT": "development",
    }
    subprocess.run([sys.executable, "-m", "genecommons", "init"], env=env, check=True)
    os.environ.update(env)

    from fastapi.testclient import TestClient

    from genecommons.access import committees, institution_service, workflow
    from genecommons.access import service as access_service
    from genecommons.access.duo_models import ResearchPurpose
    from genecommons.app import create_app
    from genecommons.archive import ingestion
    from genecommons.catalog import service as catalog_service
    from genecommons.config import Settings
    from genecommons.db import make_engine
    from genecommons.policy.models import Subject
    from genecommons.variants.service import VariantStoreSink

    conftest = _release_conftest(release)
    settings = Settings()
    engine = make_engine(settings.effective_database_url)
    from sqlalchemy.orm import sessionmaker

    factory = sessionmaker(engine)
    operator = Subject.operator("release-fixture")
    folder = work / "bundle"
    folder.mkdir()
    vcf = conftest.write_vcf(folder / "calls.vcf.gz", records=400)
    bam = conftest.write_bam(folder / "P1.bam", reads=2_000)
    conftest.write_sheets(folder, conftest.archive_sheets(folder, vcf=vcf, bam=bam))
    result = catalog_service.submit(
        factory,
        folder,
        subject=operator,
        data_files=ingestion.BundleArchiver(
            settings, operator, after=VariantStoreSink(settings, operator)
        ),
    )
    institution = result.accessions["institutions"]["BGC"]
    tokens = {}
    for email, roles in [
        (GRANTED, ["researcher"]),
        ("steward@example.org", ["data_steward"]),
        ("dac@example.org", ["dac_member"]),
    ]:
        access_service.add_user(
            factory, email=email, roles=roles, institution=institution, actor=operator
        )
        tokens[email] = access_service.create_token(factory, email=email, actor=operator).token
    institution_service.verify_institution(
        factory,
        institution=institution,
        foreign_controlled=False,
        attestation="Registered in Beijing; no foreign ownership.",
        actor=operator,
    )
    committees.create_dac(factory, alias="BGC DAC", name="BGC DAC", actor=operator)
    committees.add_member(
        factory, dac="BGC DAC", email="dac@example.org", chair=True, actor=operator
    )
    dataset = result.accessions["datasets"]["DS1"]
    researcher = Subject.user(GRANTED, roles=frozenset({"researcher"}), institution=institution)
    member = Subject.user(
        "dac@example.org", roles=frozenset({"dac_member"}), institution=institution
    )
    workflow.request_access(
        factory,
        actor=researcher,
        purpose=ResearchPurpose(
            title="Hearing loss genetics",
            summary="Find variants.",
            institution="BGC",
            country="CN",
            biomedical=True,
            genetic_research=True,
            ethics_approval=True,
        ),
        datasets=[dataset],
        agreement_version="DAA v1",
    )
    (item,) = workflow.review_queue(factory, actor=member)
    expires = date.today() + timedelta(days=3 * 365 - 2)
    workflow.decide_request(
        factory,
        item_id=item["item"],
        approve=True,
        reason="Fits the consent.",
        actor=member,
        expires=expires,
    )
    vcf_accession = result.accessions["files"]["calls.vcf.gz"]
    headers = {"Authorization": f"Bearer {tokens[GRANTED]}"}
    from genecommons.archive.keys import format_public_key, generate_key_pair

    pair = generate_key_pair()
    app = create_app(settings)
    with TestClient(app) as client:
        registered = client.put(
            "/api/v1/me/crypt4gh-key",
            json={"public_key": format_public_key(pair.public)},
            headers=headers,
        )
        assert registered.status_code == 204, registered.text
        download = client.get(f"/ga4gh/drs/v1/objects/{vcf_accession}/download", headers=headers)
        assert download.status_code == 200, download.text
        ticket = client.get(
            f"/htsget/variants/{vcf_accession}", params={"referenceName": "chr22"}, headers=headers
        )
        assert ticket.status_code == 200, ticket.text
        studies = client.get("/api/v1/studies").json()
    with factory() as session:
        from sqlalchemy import func, select

        from genecommons.ledger.tables import audit_events

        events = session.execute(select(func.count()).select_from(audit_events)).scalar_one()
    engine.dispose()
    app.state.services.engine.dispose()
    return {
        "release": "0.1.0",
        "commit": subprocess.run(
            ["git", "-C", str(release), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip(),
        "made_on": date.today().isoformat(),
        "grant_expires": expires.isoformat(),
        "tokens": tokens,
        "accessions": result.accessions,
        "dataset": dataset,
        "vcf": vcf_accession,
        "vcf_sha256": conftest.file_digest(vcf)["sha256"],
        "variant": _first_variant(vcf),
        "vcf_records": sum(1 for line in gzip.open(vcf, "rt") if not line.startswith("#")),
        "grantee_crypt4gh_secret": pair.secret.hex(),
        "public_studies": studies,
        "audit_events": events,
    }


def _first_variant(vcf: Path) -> str:
    """The first record of `vcf` as CHROM-POS-REF-ALT."""
    with gzip.open(vcf, "rt") as lines:
        for line in lines:
            if not line.startswith("#"):
                chrom, pos, _, ref, alt = line.split("\t")[:5]
                return f"{chrom}-{pos}-{ref}-{alt.split(',')[0]}"
    raise ValueError(f"{vcf} has no record")


def main() -> None:
    release, target = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = Path(scratch) / "data"
        expected = make(release, data_dir, Path(scratch))
        with tarfile.open(target, "w:gz") as tar:
            tar.add(data_dir, arcname="data")
            encoded = json.dumps(expected, indent=2, sort_keys=True).encode()
            info = tarfile.TarInfo("expected.json")
            info.size = len(encoded)
            tar.addfile(info, io.BytesIO(encoded))
    print(f"{target}: {target.stat().st_size} bytes")


if __name__ == "__main__":
    main()
